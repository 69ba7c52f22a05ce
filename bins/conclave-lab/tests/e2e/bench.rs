//! `conclave-lab bench` end to end, as small as it gets: Raft, Gossip and etcd, two workloads at
//! two client counts, one short round. Checks that bench.json is written and follows its
//! schema, that the figures are there and consistent (medians, ratios to etcd, Gossip's honest
//! "not offered"), and that bench.txt and the plot are written. No figure is judged: speed is
//! what the bench prints, not what a test asserts.

use crate::support::{node_binary, run_with_deadline, serial, tool};
use conclave_lab::bench_report::{BenchResults, CellStatus};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_tiny_bench_writes_its_results() {
    let _serial = serial();
    tool("etcd");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let mut command = Command::new(node_binary());
    command.args([
        "bench",
        "--quick",
        "--protocols",
        "raft,gossip",
        "--etcd",
        "--workloads",
        "put,get-linearizable",
        "--clients",
        "1,4",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--keys",
        "100",
        "--fsync-samples",
        "10",
        "--rtt-samples",
        "100",
    ]);
    command.arg("--out").arg(&out);
    let output = run_with_deadline(command, None, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "conclave-lab bench failed:\n{stdout}\n{stderr}");

    let json = std::fs::read_to_string(out.join("bench.json")).expect("bench.json written");
    let results: BenchResults = serde_json::from_str(&json).expect("bench.json follows the schema");
    assert_eq!(results.schema_version, 1);
    assert_eq!(results.options.targets, ["raft", "gossip", "etcd"]);
    assert_eq!(results.options.workloads, ["put", "get-linearizable"]);
    assert_eq!(results.options.clients, [1, 4]);
    assert_eq!(results.options.rounds, 1, "--quick runs one round");
    assert!(results.errors.is_empty(), "errors: {:?}", results.errors);
    assert_eq!(results.machine.fdatasync.samples, 10);
    assert_eq!(results.machine.loopback_rtt.samples, 100);
    assert!(results.machine.fdatasync.p50_us > 0.0 && results.machine.loopback_rtt.p50_us > 0.0);
    let after =
        results.machine_after.as_ref().expect("the probes are taken again after the matrix");
    assert_eq!((after.fdatasync.samples, after.loopback_rtt.samples), (10, 100));

    // One cell per workload × clients × target.
    assert_eq!(results.cells.len(), 2 * 2 * 3);
    for cell in &results.cells {
        let label = format!("{} {} clients on {}", cell.workload, cell.clients, cell.target);
        if cell.target == "gossip" && cell.workload == "get-linearizable" {
            assert_eq!(cell.status, CellStatus::Unsupported, "{label}");
            assert!(cell.median.is_none() && cell.rounds.is_empty(), "{label}");
            continue;
        }
        assert_eq!(cell.status, CellStatus::Ok, "{label}: {:?}", cell.note);
        assert_eq!(cell.rounds.len(), 1, "{label}");
        let median = cell.median.as_ref().unwrap_or_else(|| panic!("{label}: no median"));
        assert_eq!(median, &cell.rounds[0], "{label}: the median of one round is that round");
        assert!(median.ops > 0 && median.throughput_ops_per_s > 0.0, "{label}: {median:?}");
        assert!(
            median.p50_ms > 0.0
                && median.p50_ms <= median.p99_ms
                && median.p99_ms <= median.p999_ms,
            "{label}: percentiles out of order: {median:?}"
        );
        let ratios = cell.vs_etcd.as_ref().unwrap_or_else(|| panic!("{label}: no ratio to etcd"));
        if cell.target == "etcd" {
            assert_eq!((ratios.throughput, ratios.p50), (1.0, 1.0), "{label}");
        } else {
            assert!(ratios.throughput > 0.0 && ratios.p99 > 0.0, "{label}: {ratios:?}");
        }
    }

    let text = std::fs::read_to_string(out.join("bench.txt")).expect("bench.txt written");
    assert!(stdout.contains(text.trim_end()), "stdout shows bench.txt:\n{stdout}");
    assert!(text.contains("fdatasync") && text.contains("loopback"), "{text}");
    assert!(text.contains("machine after the matrix: "), "{text}");
    assert!(text.contains("not offered"), "gossip's linearizable get is marked:\n{text}");
    let svg = std::fs::read_to_string(out.join("bench-throughput.svg")).expect("svg written");
    for target in ["raft", "gossip", "etcd"] {
        assert!(svg.contains(target), "the plot has no legend for {target}");
    }
    let png = std::fs::File::open(out.join("bench-throughput.png")).expect("png written");
    png::Decoder::new(std::io::BufReader::new(png)).read_info().expect("a png");
    assert!(!out.join("data").exists(), "cluster data is removed after the run");
}

#[test]
fn bench_names_bad_options() {
    let mut command = Command::new(node_binary());
    command.args(["bench", "--rounds", "0", "--protocols", "raft"]);
    let output = run_with_deadline(command, None, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--rounds"), "{stderr}");
}
