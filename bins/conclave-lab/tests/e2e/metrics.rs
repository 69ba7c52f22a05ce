//! Every node's `/metrics` passes `promtool check metrics` and carries the shared vocabulary.

use crate::support::{http_get, run_with_deadline, runtime, serial, start, tool};
use std::process::Command;
use std::time::Duration;

/// Series every protocol exports (DESIGN.md, Metrics), by name.
const SHARED: &[&str] = &[
    "conclave_build_info",
    "conclave_term",
    "conclave_proposals_total",
    "conclave_proposals_pending",
    "conclave_proposal_duration_seconds_bucket",
    "conclave_read_duration_seconds_bucket",
    "conclave_commit_index",
    "conclave_applied_index",
    "conclave_peer_messages_sent_total",
    "conclave_peer_messages_received_total",
    "conclave_peer_bytes_sent_total",
    "conclave_peer_round_trip_seconds_bucket",
    "conclave_wal_fsync_duration_seconds_bucket",
    "conclave_members",
    "grpc_server_handled_total",
];

/// Series only leader-based protocols export.
const LEADER: &[&str] =
    &["conclave_is_leader", "conclave_has_leader", "conclave_leader_changes_total"];

pub fn check(protocol: &str, specific: &[&str]) {
    let rt = runtime();
    let cluster = start(&rt, protocol, 3, "");
    let endpoints = cluster.endpoints();
    // Some traffic, so that histograms and per-method series exist; the peer round trip is
    // measured once a second.
    for i in 0..20 {
        rt.block_on(conclave_lab::client::put(&endpoints[i % 3], &format!("m/{i}"), "v")).unwrap();
        // Gossip offers no linearizable reads: read serializably there.
        let serializable = i % 2 == 0 || protocol == "gossip";
        rt.block_on(conclave_lab::client::get(&endpoints[i % 3], &format!("m/{i}"), serializable))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let leader_based = protocol == "raft" || protocol == "paxos";
    for node in &cluster.nodes {
        let (code, body) = http_get(node.metrics, "/metrics");
        assert_eq!(code, 200);
        let mut promtool = Command::new(tool("promtool"));
        promtool.args(["check", "metrics"]);
        let output = run_with_deadline(promtool, Some(&body), Duration::from_secs(20));
        assert!(
            output.status.success(),
            "promtool check metrics failed on node {}:\n{}{}",
            node.id,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let names = SHARED.iter().chain(specific).chain(if leader_based { LEADER } else { &[] });
        for name in names {
            let labelled = format!("{name}{{");
            let found = body.lines().any(|l| {
                l.starts_with(&labelled) && l.contains(&format!("protocol=\"{protocol}\""))
            });
            assert!(found, "node {}: no {name} with protocol=\"{protocol}\"", node.id);
        }
        if !leader_based {
            for name in LEADER {
                assert!(
                    !body.contains(name),
                    "node {}: {name} must be absent without a leader",
                    node.id
                );
            }
        }
        let (code, health) = http_get(node.metrics, "/health");
        assert_eq!(code, 200, "node {} unhealthy: {health}", node.id);
    }
}

#[test]
fn raft_metrics_pass_promtool() {
    let _serial = serial();
    check("raft", &["conclave_raft_elections_total"]);
}

#[test]
fn paxos_metrics_pass_promtool() {
    let _serial = serial();
    check("paxos", &["conclave_paxos_phase1_total"]);
}

#[test]
fn gossip_metrics_pass_promtool() {
    let _serial = serial();
    check("gossip", &["conclave_gossip_rounds_total"]);
}

#[test]
fn totem_metrics_pass_promtool() {
    let _serial = serial();
    check("totem", &["conclave_totem_ring_changes_total"]);
}
