//! deploy/ against live clusters: a real Prometheus (Debian's `prometheus`) scrapes a local
//! cluster with deploy/prometheus's scrape settings and alert rules, and the backup procedures
//! of docs/operations.md round-trip a cluster's keys.
//!
//! The Prometheus config is deploy/prometheus/prometheus.yml with the compose targets replaced
//! by the cluster's metrics addresses and faster timings, so a test takes seconds, not minutes:
//! scrape and evaluate every second ([`TEST_INTERVAL`]) and every alert's `for:` cut to
//! [`TEST_FOR`]. The rules are deploy/prometheus/rules with only that change. Prometheus listens
//! on a free loopback port, keeps its data in a temporary directory and is killed on drop.
//!
//! Each scenario is a function over the protocol ([`scrape_and_alert`],
//! [`logical_backup_round_trip`], [`data_dir_backup_round_trip`]): adding paxos, totem or gossip
//! is a three-line `#[test]` calling it with the protocol's name.

use crate::support::{etcdctl_ok, leader, run_with_deadline, runtime, serial, start, tool};
use conclave_etcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use conclave_lab::client::connect_with_timeout;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Scrape and rule evaluation interval in the generated config (deploy: 15s).
const TEST_INTERVAL: &str = "1s";
/// Every alert's `for:` in the generated rules (deploy: 1m to 15m).
const TEST_FOR: &str = "1s";

/// Alerts this test makes fire by killing two of three nodes.
const QUORUM_ALERTS: &[&str] =
    &["ConclaveNoLeader", "ConclaveInsufficientMembers", "ConclaveNodeDown"];

fn leader_based(protocol: &str) -> bool {
    protocol == "raft" || protocol == "paxos"
}

/// The repository's deploy/ folder.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A free loopback port. The listener closes before Prometheus binds it; on loopback in a
/// serialized test a clash is rare, and Prometheus then fails to start with a clear log.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET over HTTP/1.0, so the server answers without chunked encoding; `None` when the
/// connection fails.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replaces the line of `text` that trims to `from` by `to` (same indentation), failing the
/// test if the deploy file no longer has exactly one such line.
fn replace_line(text: &str, from: &str, to: &[String], file: &str) -> String {
    let matches = text.lines().filter(|l| l.trim() == from).count();
    assert_eq!(matches, 1, "{file}: expected one line `{from}`; the test rewrites it");
    let mut out = String::new();
    for line in text.lines() {
        if line.trim() == from {
            for replacement in to {
                out.push_str(&format!("{}{replacement}\n", indent(line)));
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The leading whitespace of a line.
fn indent(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// deploy/prometheus/prometheus.yml for a local cluster: the compose targets replaced by the
/// nodes' metrics addresses, Prometheus's own target by its real address, faster timings.
fn test_config(deployed: &str, addr: SocketAddr, metrics: &[SocketAddr]) -> String {
    let file = "deploy/prometheus/prometheus.yml";
    let mut config = deployed.to_string();
    for (from, to) in [
        ("scrape_interval: 15s", format!("scrape_interval: {TEST_INTERVAL}")),
        ("scrape_timeout: 10s", format!("scrape_timeout: {TEST_INTERVAL}")),
        ("evaluation_interval: 15s", format!("evaluation_interval: {TEST_INTERVAL}")),
        ("- targets: [\"localhost:9090\"]", format!("- targets: [\"{addr}\"]")),
    ] {
        config = replace_line(&config, from, &[to], file);
    }
    let targets: Vec<String> = metrics.iter().map(|m| format!("- {m}")).collect();
    config = replace_line(&config, "- conclave-1:9379", &targets, file);
    config = replace_line(&config, "- conclave-2:9379", &[], file);
    replace_line(&config, "- conclave-3:9379", &[], file)
}

/// Alert rules with every `for:` cut to [`TEST_FOR`]; the expressions stay as deployed.
fn shorten_for(rules: &str) -> String {
    let mut shortened = 0;
    let mut out = String::new();
    for line in rules.lines() {
        if line.trim_start().starts_with("for: ") {
            out.push_str(&format!("{}for: {TEST_FOR}\n", indent(line)));
            shortened += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(shortened > 0, "deploy/prometheus/rules: no `for:` to shorten");
    out
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Writes the test config and rules from deploy/prometheus and starts Prometheus on them.
    fn start(metrics: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let deploy = deploy_dir().join("prometheus");

        let deployed = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
        let config = test_config(&deployed, addr, metrics);
        std::fs::write(dir.path().join("prometheus.yml"), &config).unwrap();
        // rule_files is `rules/*.yml`, relative to the config: the same layout in the tempdir.
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for entry in std::fs::read_dir(deploy.join("rules")).unwrap() {
            let path = entry.unwrap().path();
            let rules = shorten_for(&std::fs::read_to_string(&path).unwrap());
            std::fs::write(dir.path().join("rules").join(path.file_name().unwrap()), rules)
                .unwrap();
        }

        let mut check = Command::new(tool("promtool"));
        check.args(["check", "config"]).arg(dir.path().join("prometheus.yml"));
        let output = run_with_deadline(check, None, Duration::from_secs(20));
        assert!(
            output.status.success(),
            "the generated config fails promtool:\n{}{}\n{config}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self { child, addr, dir };
        prometheus.wait(Duration::from_secs(30), "Prometheus ready", || {
            matches!(get(prometheus.addr, "/-/ready"), Some((200, _)))
        });
        prometheus
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `done` every 250 ms until it holds; fails the test with Prometheus's log after
    /// `timeout`. Returns how long it took.
    fn wait(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < timeout,
                "{what}: not within {timeout:?}\n--- prometheus log ---\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        started.elapsed()
    }

    /// `data` of an API call, or `None` until the API answers with success.
    fn api(&self, path: &str) -> Option<Value> {
        let (code, body) = get(self.addr, path)?;
        let value: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && value["status"] == "success").then(|| value["data"].clone())
    }

    /// The value of an instant query that returns one sample.
    fn scalar(&self, query: &str) -> Option<f64> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(query)))?;
        data["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Active targets as (scrape URL, health).
    fn targets(&self) -> Vec<(String, String)> {
        let Some(data) = self.api("/api/v1/targets?state=active") else { return Vec::new() };
        data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["scrapeUrl"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Alerts as (name, state, instance label).
    fn alerts(&self) -> Vec<(String, String, String)> {
        let Some(data) = self.api("/api/v1/alerts") else { return Vec::new() };
        data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                (
                    label("alertname"),
                    a["state"].as_str().unwrap_or("").to_string(),
                    label("instance"),
                )
            })
            .collect()
    }

    fn firing(&self, name: &str) -> Vec<String> {
        let alerts = self.alerts().into_iter();
        alerts.filter(|(n, s, _)| n == name && s == "firing").map(|(_, _, i)| i).collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus scrapes every node, sees proposals rise under a workload, stays quiet while the
/// cluster is healthy, and fires the quorum alerts once two of three nodes are killed.
pub fn scrape_and_alert(protocol: &str) {
    let rt = runtime();
    let mut cluster = start(&rt, protocol, 3, "");
    let metrics: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.metrics).collect();
    let prometheus = Prometheus::start(&metrics);

    // Every target is up: the three nodes and Prometheus itself.
    prometheus.wait(Duration::from_secs(20), "every target up", || {
        let targets = prometheus.targets();
        targets.len() == metrics.len() + 1 && targets.iter().all(|(_, health)| health == "up")
    });
    for addr in &metrics {
        let url = format!("http://{addr}/metrics");
        assert!(prometheus.targets().iter().any(|(u, _)| *u == url), "no target {url}");
    }

    // conclave_proposals_total rises under a workload of 60 writes.
    let committed = format!(
        "sum(conclave_proposals_total{{job=\"conclave\", protocol=\"{protocol}\", outcome=\"committed\"}})"
    );
    let mut before = 0.0;
    prometheus.wait(Duration::from_secs(15), "conclave_proposals_total scraped", || {
        prometheus.scalar(&committed).map(|v| before = v).is_some()
    });
    let endpoints = cluster.endpoints();
    for i in 0..60 {
        let endpoint = &endpoints[i % endpoints.len()];
        rt.block_on(conclave_lab::client::put(endpoint, &format!("prom/{i}"), "v")).expect("put");
    }
    let mut after = before;
    let took = prometheus.wait(Duration::from_secs(15), "conclave_proposals_total +60", || {
        after = prometheus.scalar(&committed).unwrap_or(before);
        after >= before + 60.0
    });
    println!("{protocol}: committed proposals {before} -> {after}, seen after {took:?}");

    // A healthy cluster raises none of the quorum alerts, not even as pending. A few
    // evaluations first, so a rule that would fire has had the chance to.
    std::thread::sleep(Duration::from_secs(3));
    let raised: Vec<_> = prometheus
        .alerts()
        .into_iter()
        .filter(|(n, _, _)| QUORUM_ALERTS.contains(&n.as_str()))
        .collect();
    assert!(raised.is_empty(), "a healthy cluster raised {raised:?}");

    // Kill two of three: the survivor has no quorum. Keep the leader alive if there is one,
    // so that the alert also covers a leader that steps down (check quorum).
    let survivor = leader(&mut cluster).unwrap_or(1);
    let victims: Vec<u64> =
        cluster.nodes.iter().map(|n| n.id).filter(|&id| id != survivor).collect();
    for &id in &victims {
        cluster.kill(id).unwrap();
    }
    let survivor_metrics = cluster.node(survivor).unwrap().metrics.to_string();
    let victims_metrics: Vec<String> =
        victims.iter().map(|&id| cluster.node(id).unwrap().metrics.to_string()).collect();
    let took =
        prometheus.wait(Duration::from_secs(30), "ConclaveInsufficientMembers firing", || {
            !prometheus.firing("ConclaveInsufficientMembers").is_empty()
        });
    println!(
        "{protocol}: killed nodes {victims:?}; ConclaveInsufficientMembers fired after {took:?}"
    );
    prometheus.wait(Duration::from_secs(30), "ConclaveNodeDown firing for both", || {
        let mut down = prometheus.firing("ConclaveNodeDown");
        down.sort();
        let mut expected = victims_metrics.clone();
        expected.sort();
        down == expected
    });
    if leader_based(protocol) {
        let took = prometheus.wait(Duration::from_secs(30), "ConclaveNoLeader firing", || {
            prometheus.firing("ConclaveNoLeader") == vec![survivor_metrics.clone()]
        });
        println!("{protocol}: ConclaveNoLeader fired for node {survivor} after {took:?}");
    }
}

/// Every key of a cluster as (key, value), through `endpoint`.
async fn all_keys(endpoint: &str, serializable: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut client = connect_with_timeout(endpoint, Duration::from_secs(5)).await.unwrap();
    let request = RangeRequest {
        key: vec![0].into(),
        range_end: vec![0].into(),
        serializable,
        ..Default::default()
    };
    let response = client.range(request).await.unwrap().into_inner();
    response.kvs.into_iter().map(|kv| (kv.key.to_vec(), kv.value.to_vec())).collect()
}

/// Runs deploy/scripts/conclave-backup with `args`; returns (success, stdout + stderr).
fn backup_script(args: &[&str]) -> (bool, String) {
    let mut command = Command::new(tool("python3"));
    command
        .arg(deploy_dir().join("scripts/conclave-backup"))
        .arg("--etcdctl")
        .arg(tool("etcdctl"))
        .args(args);
    let output = run_with_deadline(command, None, Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The logical backup of docs/operations.md: `conclave-backup save` on one cluster, `restore`
/// into a fresh one, `verify`, and the two clusters hold the same keys and values, byte for
/// byte (binary keys, newlines, quotes, a leading dash, an empty value, a leased key, and more
/// keys than one restore transaction holds).
pub fn logical_backup_round_trip(protocol: &str) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let source = start(&rt, protocol, 3, "");
    let endpoint = source.endpoints()[0].clone();
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"app/plain".to_vec(), b"value".to_vec()),
        (b"app/space key".to_vec(), b"two words\nand a line".to_vec()),
        (b"app/quote\"\\".to_vec(), b"\"quoted\" \\ back".to_vec()),
        (b"-leading-dash".to_vec(), b"--not-a-flag".to_vec()),
        (vec![1, 0xff, b'k'], vec![0, 0xfe, b'\n', 0x7f]),
        (b"app/empty".to_vec(), Vec::new()),
        ("app/ünïcode".as_bytes().to_vec(), "värde ✓".as_bytes().to_vec()),
    ];
    pairs.extend(
        (0..250).map(|i| (format!("bulk/{i:04}").into_bytes(), format!("v{i}").into_bytes())),
    );
    rt.block_on(async {
        let mut client = connect_with_timeout(&endpoint, Duration::from_secs(5)).await.unwrap();
        for (key, value) in &pairs {
            let request = PutRequest {
                key: key.clone().into(),
                value: value.clone().into(),
                ..Default::default()
            };
            client.put(request).await.expect("put");
        }
    });
    let granted = etcdctl_ok(std::slice::from_ref(&endpoint), &["lease", "grant", "600"]);
    let lease = granted.split_whitespace().nth(1).expect("lease id").to_string();
    etcdctl_ok(
        std::slice::from_ref(&endpoint),
        &["put", &format!("--lease={lease}"), "app/leased", "v"],
    );

    let serializable: &[&str] = if protocol == "gossip" { &["--serializable"] } else { &[] };
    let file = dir.path().join("backup.json");
    let file = file.to_str().unwrap();
    let (ok, out) =
        backup_script(&[&["save", "--endpoints", &endpoint], serializable, &["-o", file]].concat());
    assert!(ok, "save failed: {out}");
    let expected = pairs.len() + 2; // the lab's readiness key and the leased key
    assert!(out.contains(&format!("saved {expected} keys")), "save: {out}");

    // A fresh cluster: empty but for the lab's readiness key, which the backup also holds.
    // One endpoint throughout, so that gossip's reads see its own writes.
    let target = start(&rt, protocol, 3, "");
    let to = target.endpoints()[0].clone();
    let restore = [&["restore", "--endpoints", &to], serializable, &[file]].concat();
    let (ok, out) = backup_script(&restore);
    assert!(!ok && out.contains("already holds"), "restore into a non-empty cluster: {out}");
    etcdctl_ok(std::slice::from_ref(&to), &["del", "conclave-lab/ready"]);
    let (ok, out) = backup_script(&restore);
    assert!(ok, "restore failed: {out}");
    assert!(out.contains(&format!("restored {expected} keys")), "restore: {out}");
    assert!(out.contains("1 keys that had leases were restored without"), "restore: {out}");
    let verify = [&["verify", "--endpoints", &to], serializable, &[file]].concat();
    let (ok, out) = backup_script(&verify);
    assert!(ok, "verify failed: {out}");

    // Independently of the script: both clusters serve the same keys and values.
    let local = protocol == "gossip";
    let (before, after) = rt.block_on(async {
        // Gossip applies remote writes asynchronously: give the target a moment to converge.
        tokio::time::sleep(Duration::from_millis(if local { 2000 } else { 0 })).await;
        (all_keys(&endpoint, local).await, all_keys(&target.endpoints()[2], local).await)
    });
    assert_eq!(before.len(), expected);
    assert!(before == after, "the restored cluster differs from the source");

    // verify notices a key that differs.
    etcdctl_ok(std::slice::from_ref(&to), &["put", "app/plain", "changed"]);
    let (ok, out) = backup_script(&verify);
    assert!(!ok && out.contains("1 with other values"), "verify must catch a changed value: {out}");
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The cold backup of docs/operations.md: stop every node, copy every data directory, start
/// again; later, stop every node and put the copies back: the cluster comes up with exactly the
/// keys it had at the copy, and what was written after it is gone.
pub fn data_dir_backup_round_trip(protocol: &str) {
    let rt = runtime();
    let backup = tempfile::tempdir().unwrap();
    let mut cluster = start(&rt, protocol, 3, "");
    let endpoints = cluster.endpoints();
    for i in 0..50 {
        rt.block_on(conclave_lab::client::put(
            &endpoints[i % 3],
            &format!("cold/before/{i:02}"),
            "v",
        ))
        .unwrap();
    }
    let grace = Duration::from_secs(10);
    cluster.stop_all(grace).expect("clean stop");
    let nodes: Vec<(u64, PathBuf)> =
        cluster.nodes.iter().map(|n| (n.id, n.data_dir.clone())).collect();
    for (id, data) in &nodes {
        copy_dir(data, &backup.path().join(format!("node-{id}")));
    }
    for (id, _) in &nodes {
        cluster.restart(*id).unwrap();
    }
    rt.block_on(cluster.wait_ready(Duration::from_secs(30))).expect("ready after the copy");
    for i in 0..10 {
        rt.block_on(conclave_lab::client::put(
            &endpoints[i % 3],
            &format!("cold/after/{i:02}"),
            "v",
        ))
        .unwrap();
    }

    // Restore: every node stopped, every data directory replaced by its copy.
    cluster.stop_all(grace).expect("clean stop");
    for (id, data) in &nodes {
        std::fs::remove_dir_all(data).unwrap();
        copy_dir(&backup.path().join(format!("node-{id}")), data);
    }
    for (id, _) in &nodes {
        cluster.restart(*id).unwrap();
    }
    rt.block_on(cluster.wait_ready(Duration::from_secs(30))).expect("ready after the restore");
    let keys = rt.block_on(all_keys(&endpoints[1], protocol == "gossip"));
    let names: Vec<String> =
        keys.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
    let before = names.iter().filter(|k| k.starts_with("cold/before/")).count();
    let after = names.iter().filter(|k| k.starts_with("cold/after/")).count();
    assert_eq!((before, after), (50, 0), "after the restore: {names:?}");
    cluster.stop_all(grace).expect("clean stop");
}

#[test]
fn raft_prometheus_scrapes_and_alerts() {
    let _serial = serial();
    scrape_and_alert("raft");
}

#[test]
fn raft_logical_backup_round_trip() {
    let _serial = serial();
    logical_backup_round_trip("raft");
}

#[test]
fn raft_data_dir_backup_round_trip() {
    let _serial = serial();
    data_dir_backup_round_trip("raft");
}

#[test]
fn paxos_prometheus_scrapes_and_alerts() {
    let _serial = serial();
    scrape_and_alert("paxos");
}

#[test]
fn gossip_prometheus_scrapes_and_alerts() {
    let _serial = serial();
    scrape_and_alert("gossip");
}

#[test]
fn totem_prometheus_scrapes_and_alerts() {
    let _serial = serial();
    scrape_and_alert("totem");
}
