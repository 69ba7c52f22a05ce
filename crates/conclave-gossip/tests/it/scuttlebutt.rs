//! Scuttlebutt reconciliation within an MTU budget, and flow control.
//! Reference: van Renesse et al., "Efficient Reconciliation and Flow Control for Anti-Entropy
//! Protocols" (2008), §3.2 (scuttlebutt) and §4 (flow control).

use crate::cluster::{Cluster, fast_config, id};
use conclave_gossip::GossipConfig;

fn small_mtu() -> GossipConfig {
    GossipConfig { mtu_bytes: 1_024, ..fast_config() }
}

#[test]
fn deltas_stay_within_the_budget_and_still_converge() {
    // Reference: §3.2: when deltas exceed the message size, send a prefix per origin.
    let mut cluster = Cluster::new(4, small_mtu());
    let value = "x".repeat(100);
    for i in 0..200 {
        cluster.put(id(1 + i % 2), &format!("key/{i:03}"), &value);
    }
    cluster.ticks_until(2_000, Cluster::converged).expect("converges");
    assert_eq!(cluster.kv_contents(id(4)).len(), 200);
    let largest = cluster.delivered.iter().map(|&(_, _, _, size)| size).max().unwrap();
    assert!(largest <= 1_024, "a message of {largest} bytes broke the 1024-byte budget");
    assert!(cluster.delivered.iter().filter(|d| d.2 == "ack" || d.2 == "ack2").count() > 20);
    for n in 1..=4 {
        assert_eq!(cluster.counter(id(n), "oversized_messages_total"), 0);
    }
}

#[test]
fn digests_send_only_what_the_peer_lacks() {
    // Reference: §3.2: a gossiper never sends an update the receiver already knows.
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "a", "1");
    cluster.ticks_until(50, Cluster::converged).expect("converges");
    cluster.delivered.clear();
    cluster.ticks(50);
    let carrying_updates = cluster.delivered.iter().filter(|d| d.2 == "receipt").count();
    assert_eq!(carrying_updates, 0, "no deltas flow once both hold everything");
    assert_eq!(cluster.counter(id(1), "version_lag_max"), 0);
}

#[test]
fn version_lag_is_measured_from_digests() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.ticks(10);
    cluster.partition(&[id(1)], &[id(2)]);
    for i in 0..5 {
        cluster.put(id(1), &format!("k{i}"), "v");
    }
    cluster.ticks(2);
    assert_eq!(cluster.gossip(id(1)).version_lag(id(2)), 5);
    assert_eq!(cluster.counter(id(1), "version_lag_max"), 5);
    cluster.heal();
    cluster.ticks_until(50, |c| c.counter(id(1), "version_lag_max") == 0).expect("lag drains");
    // Convergence time is measured from acknowledgements.
    assert!(cluster.counter(id(1), "converged_writes_total") >= 5);
    assert!(cluster.counter(id(1), "convergence_ticks_last") > 0);
}

#[test]
fn a_busy_writer_does_not_starve_a_quiet_one() {
    // Reference: §3.2 (scuttle-breadth ordering) and §4 (flow control).
    let mut cluster = Cluster::new(3, small_mtu());
    cluster.ticks(5);
    let value = "y".repeat(200);
    for i in 0..500 {
        cluster.put(id(1), &format!("busy/{i:03}"), &value);
    }
    cluster.put(id(2), "quiet", "q");
    let ticks = cluster
        .ticks_until(200, |c| c.value(id(3), "quiet").is_some())
        .expect("the quiet writer's update arrives");
    assert!(ticks <= 20, "the quiet write took {ticks} ticks behind a busy writer");
    assert!(cluster.kv_contents(id(3)).len() < 500, "the busy backlog was still draining");
    // The overflowing messages slowed the busy writer's publication down.
    cluster.ticks(10);
    assert!(cluster.counter(id(1), "flow_rate_per_round") < 4_096);
    cluster.ticks_until(5_000, Cluster::converged).expect("the backlog drains");
}
