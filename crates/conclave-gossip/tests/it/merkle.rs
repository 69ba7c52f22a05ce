//! Merkle repair of what digests missed. Reference: Dynamo (DeCandia et al. 2007), §4.7,
//! replica synchronisation by hash trees.

use crate::cluster::{Cluster, fast_config, id};
use conclave_core::Protocol;
use conclave_gossip::{Body, Deltas, GossipConfig, Hlc, Message, VersionVector};

/// Tells `node` it covers every write of `origin` up to a far-future reading, without sending
/// any: from then on digests say it is up to date with `origin`, whatever it holds.
fn claim_coverage(cluster: &mut Cluster, node: u64, from: u64, origin: u64) {
    let mut through = VersionVector::new();
    through.raise(id(origin), Hlc::new(1 << 40, 0));
    let msg = Message {
        hlc: cluster.gossip(id(from)).hlc(),
        body: Body::Ack2 {
            digest: VersionVector::new(),
            deltas: Deltas { updates: Vec::new(), through },
        },
    };
    cluster.gossip_mut(id(node)).step(id(from), msg);
    cluster.process(id(node));
    cluster.deliver_all();
}

#[test]
fn merkle_repair_finds_a_key_the_digests_missed() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "missing", "value");
    claim_coverage(&mut cluster, 2, 1, 1);
    // Digests alone never deliver it: node 2 claims to have everything from node 1.
    let merkle_ticks = fast_config().merkle_interval_ms / fast_config().tick_interval_ms;
    cluster.ticks(merkle_ticks - 1);
    assert_eq!(cluster.value(id(2), "missing"), None);
    assert_eq!(cluster.counter(id(2), "merkle_repairs_total"), 0);
    // The first Merkle comparison finds the differing leaf and repairs it.
    cluster.ticks_until(merkle_ticks, |c| c.value(id(2), "missing").is_some()).expect("repaired");
    assert_eq!(cluster.kv_value(id(2), "missing").unwrap(), "value");
    assert_eq!(cluster.counter(id(2), "merkle_repairs_total"), 1);
    assert!(cluster.converged());
}

#[test]
fn merkle_repair_reconciles_both_ways_within_the_budget() {
    let config = GossipConfig { mtu_bytes: 2_048, ..fast_config() };
    let mut cluster = Cluster::new(2, config);
    for i in 0..100 {
        cluster.put(id(1), &format!("a/{i}"), &"1".repeat(50));
        cluster.put(id(2), &format!("b/{i}"), &"2".repeat(50));
    }
    claim_coverage(&mut cluster, 2, 1, 1);
    claim_coverage(&mut cluster, 1, 2, 2);
    cluster.ticks_until(3_000, Cluster::converged).expect("Merkle repair converges");
    assert_eq!(cluster.kv_contents(id(1)).len(), 200);
    assert!(cluster.delivered.iter().all(|d| d.3 <= 2_048));
    assert_eq!(cluster.counter(id(1), "merkle_repairs_total"), 100);
    assert_eq!(cluster.counter(id(2), "merkle_repairs_total"), 100);
}

#[test]
fn identical_trees_exchange_one_probe() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "k", "v");
    cluster.ticks_until(50, Cluster::converged).expect("converges");
    cluster.delivered.clear();
    cluster.ticks(100);
    let probes = cluster.delivered.iter().filter(|d| d.2 == "merkle_probe").count();
    let others = cluster
        .delivered
        .iter()
        .filter(|d| d.2.starts_with("merkle") && d.2 != "merkle_probe")
        .count();
    assert!(probes > 0);
    assert_eq!(others, 0, "equal roots need no further exchange");
    assert_eq!(cluster.gossip(id(1)).merkle_root(), cluster.gossip(id(2)).merkle_root());
}
