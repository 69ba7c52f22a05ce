//! Automatic compaction (`server.auto_compaction_*`): the history below the retention window is
//! dropped by the server itself, on every protocol, and what is inside the window stays
//! readable. Checked with etcdctl's `get --rev`, which answers "required revision has been
//! compacted" below the compaction point.

use crate::support::{etcdctl, etcdctl_ok, http_get, runtime, serial, start, text};
use std::time::{Duration, Instant};

const COMPACTED: &str = "required revision has been compacted";

/// Puts `count` values of one key through `endpoint`; returns the revision of the last.
fn put_many(endpoint: &str, key: &str, count: usize) -> i64 {
    let rt = runtime();
    rt.block_on(async {
        let mut revision = 0;
        for i in 0..count {
            let deadline = Instant::now() + Duration::from_secs(10);
            revision = loop {
                match conclave_lab::client::put(endpoint, key, &format!("v{i}")).await {
                    Ok(revision) => break revision,
                    Err(error) if Instant::now() < deadline => {
                        eprintln!("put {key}: {error:#}; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(error) => panic!("put {key} failed: {error:#}"),
                }
            };
        }
        revision
    })
}

/// Polls `get key --rev=rev` on `endpoint` until it is refused as compacted, for up to 10 s.
/// Reads are serializable: gossip offers no other, and a compaction is visible locally.
fn wait_compacted(endpoint: &str, key: &str, rev: i64) -> Duration {
    let started = Instant::now();
    let args = ["get", key, &format!("--rev={rev}"), "--consistency=s"];
    loop {
        let output = etcdctl(&[endpoint.to_string()], &args, None, Duration::from_secs(10));
        if !output.status.success() && text(&output).contains(COMPACTED) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "revision {rev} on {endpoint} was not compacted within 10 s: {}",
            text(&output)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sum of `conclave_auto_compactions_total` over the cluster's nodes.
fn auto_compactions(metrics: &[std::net::SocketAddr]) -> f64 {
    metrics
        .iter()
        .flat_map(|addr| {
            let (_, body) = http_get(*addr, "/metrics");
            body.lines()
                .filter(|l| l.starts_with("conclave_auto_compactions_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Revision mode with a window of 20 revisions: after 60 writes every member has dropped the
/// first ones and still serves the last 20.
fn keeps_the_last_revisions(protocol: &str) {
    let _serial = serial();
    let rt = runtime();
    let config = "[server]\nauto_compaction_mode = \"revision\"\nauto_compaction_retention = 20\n";
    let cluster = start(&rt, protocol, 3, config);
    let endpoints = cluster.endpoints();
    // Gossip replicates a key's latest value, not each write, and every member counts its own
    // revisions: write through each of them so that each has history to compact.
    let writers = if protocol == "gossip" { &endpoints[..] } else { &endpoints[..1] };
    let mut last = 0;
    for writer in writers {
        last = put_many(writer, "compact/key", 60);
    }
    for endpoint in &endpoints {
        let took = wait_compacted(endpoint, "compact/key", 2);
        println!("{protocol}: {endpoint} compacted revision 2 after {took:?}");
        // The window itself is kept: etcd's --rev reads of the last 20 revisions still work.
        // Under gossip each member counts its own revisions; the last write is at least as
        // recent there, so read relative to what the member itself reports.
        let node = [endpoint.clone()];
        let deadline = Instant::now() + Duration::from_secs(10);
        let head = loop {
            let json = etcdctl_ok(&node, &["get", "compact/key", "--consistency=s", "-w", "json"]);
            let json: serde_json::Value = serde_json::from_str(&json).unwrap();
            let value = json["kvs"][0]["value"].as_str().unwrap_or_default().to_string();
            // etcdctl prints values in base64 in JSON: "djU5" is "v59".
            if value == "djU5" {
                break json["header"]["revision"].as_i64().unwrap();
            }
            assert!(Instant::now() < deadline, "{endpoint} never served the last write: {json}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(head >= last || protocol == "gossip", "{endpoint}: head {head} < {last}");
        let rev = format!("--rev={}", head - 5);
        let recent = etcdctl_ok(&node, &["get", "compact/key", &rev, "--consistency=s"]);
        assert!(recent.contains("compact/key"), "{endpoint}: {recent}");
    }
    let metrics: Vec<_> = cluster.nodes.iter().map(|n| n.metrics).collect();
    assert!(auto_compactions(&metrics) >= 1.0, "conclave_auto_compactions_total counted them");
}

#[test]
fn raft_keeps_the_last_revisions() {
    keeps_the_last_revisions("raft");
}

#[test]
fn paxos_keeps_the_last_revisions() {
    keeps_the_last_revisions("paxos");
}

#[test]
fn totem_keeps_the_last_revisions() {
    keeps_the_last_revisions("totem");
}

#[test]
fn gossip_keeps_the_last_revisions() {
    keeps_the_last_revisions("gossip");
}

/// Periodic mode with a 2 s window: what was current 2 s ago becomes the compaction point, and
/// writes of the last 2 s stay readable.
#[test]
fn raft_keeps_the_last_period() {
    let _serial = serial();
    let rt = runtime();
    let config =
        "[server]\nauto_compaction_mode = \"periodic\"\nauto_compaction_retention = \"2s\"\n";
    let cluster = start(&rt, "raft", 3, config);
    let endpoint = cluster.endpoints()[0].clone();
    let first = put_many(&endpoint, "period/key", 5);
    std::thread::sleep(Duration::from_millis(2500));
    let after = put_many(&endpoint, "period/key", 5);
    let took = wait_compacted(&endpoint, "period/key", first - 1);
    println!("raft: revision {} compacted {took:?} after the second batch", first - 1);
    let recent = etcdctl_ok(
        std::slice::from_ref(&endpoint),
        &["get", "period/key", &format!("--rev={after}")],
    );
    assert!(recent.contains("period/key"), "{recent}");
}
