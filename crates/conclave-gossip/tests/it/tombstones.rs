//! Tombstones: kept until every live member acknowledged them and the grace period passed,
//! then collected; a collected delete never lets the deleted value come back.

use crate::cluster::{Cluster, fast_config, id};
use conclave_gossip::{GossipConfig, PlantedBug};

fn tombstones(cluster: &Cluster, n: u64) -> u64 {
    cluster.counter(id(n), "tombstones")
}

#[test]
fn a_delete_spreads_then_is_collected_everywhere() {
    let mut cluster = Cluster::new(3, fast_config());
    cluster.put(id(1), "k", "v");
    cluster.ticks_until(50, Cluster::converged).expect("put converges");
    cluster.delete(id(2), "k");
    cluster.ticks_until(50, |c| (1..=3).all(|n| tombstones(c, n) == 1)).expect("tombstone spreads");
    for n in 1..=3 {
        assert_eq!(cluster.kv_value(id(n), "k"), None);
        assert!(cluster.gossip(id(n)).get(b"k").unwrap().is_tombstone());
    }
    cluster
        .ticks_until(200, |c| (1..=3).all(|n| tombstones(c, n) == 0))
        .expect("every replica collects the tombstone");
    for n in 1..=3 {
        assert_eq!(cluster.gossip(id(n)).get(b"k"), None);
        assert_eq!(cluster.counter(id(n), "tombstones_collected_total"), 1);
        assert!(!cluster.gossip(id(n)).watermarks().is_empty(), "collection raises a watermark");
    }
}

#[test]
fn a_tombstone_waits_for_a_silent_live_member() {
    let config = GossipConfig { dead_timeout_ms: 5_000, ..fast_config() };
    let mut cluster = Cluster::new(3, config);
    cluster.put(id(1), "k", "v");
    cluster.ticks_until(50, Cluster::converged).expect("put converges");
    cluster.isolate(id(3));
    cluster.delete(id(1), "k");
    // Well past the grace period, node 3 is suspected but not dead: nobody may collect.
    cluster.ticks(200);
    assert!(cluster.gossip(id(1)).suspect_members().contains(&id(3)));
    assert_eq!(tombstones(&cluster, 1), 1);
    assert_eq!(tombstones(&cluster, 2), 1);
    cluster.heal();
    cluster
        .ticks_until(300, |c| (1..=3).all(|n| tombstones(c, n) == 0))
        .expect("collected after heal");
    assert!(cluster.converged());
}

/// Node 3 holds "k" = "v" while cut off; node 1 deletes "k"; nodes 1 and 2 prune node 3 and
/// collect the tombstone; then the partition heals. Returns whether "k" ever held a value on
/// node 1 or 2 after the delete, and the cluster.
fn zombie_scenario(bug: Option<PlantedBug>) -> (bool, Cluster) {
    let config = GossipConfig { planted_bug: bug, ..fast_config() };
    let mut cluster = Cluster::new(3, config);
    cluster.put(id(1), "k", "v");
    cluster.ticks_until(50, Cluster::converged).expect("put converges");
    cluster.isolate(id(3));
    cluster.delete(id(1), "k");
    let mut reappeared = false;
    let collected = |c: &Cluster| tombstones(c, 1) == 0 && tombstones(c, 2) == 0;
    for _ in 0..400 {
        cluster.tick();
        if collected(&cluster) && !cluster.gossip(id(1)).live_members().contains(&id(3)) {
            break;
        }
    }
    assert!(collected(&cluster), "nodes 1 and 2 collected the tombstone");
    assert_eq!(cluster.value(id(3), "k").unwrap(), "v", "node 3 still holds the old value");
    cluster.heal();
    for _ in 0..400 {
        cluster.tick();
        reappeared |= cluster.value(id(1), "k").is_some() || cluster.value(id(2), "k").is_some();
        reappeared |=
            cluster.kv_value(id(1), "k").is_some() || cluster.kv_value(id(2), "k").is_some();
    }
    (reappeared, cluster)
}

#[test]
fn a_collected_delete_is_never_resurrected() {
    let (reappeared, cluster) = zombie_scenario(None);
    assert!(!reappeared, "the deleted value came back");
    // The returning node was answered with a tombstone at the watermark and dropped its copy.
    assert_eq!(cluster.value(id(3), "k"), None);
    assert_eq!(cluster.kv_value(id(3), "k"), None);
    assert!(
        cluster.counter(id(1), "updates_refused_total")
            + cluster.counter(id(2), "updates_refused_total")
            > 0
    );
    assert!((1..=3).all(|n| cluster.gossip(id(n)).live_members().len() == 2), "node 3 rejoined");
    assert!(cluster.converged());
}

#[test]
fn planted_early_collection_resurrects_the_value() {
    let (reappeared, _) = zombie_scenario(Some(PlantedBug::CollectTombstonesEarly));
    assert!(reappeared, "collecting before acknowledgement must let the old value back");
}
