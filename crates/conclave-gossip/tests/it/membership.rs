//! Failure detection, pruning, joining through seeds and rejoining after losing every peer.
//! Reference: SWIM (Das et al. 2002), §4.2 suspicion; gossip-style failure detection
//! (van Renesse, Minsky and Hayden 1998).

use crate::cluster::{Cluster, fast_config, id};
use conclave_core::{Membership, Protocol};
use conclave_gossip::{GossipConfig, Liveness};

fn ticks(ms: u64) -> u64 {
    ms / fast_config().tick_interval_ms
}

#[test]
fn a_silent_member_is_suspected_then_pruned() {
    let config = fast_config();
    let mut cluster = Cluster::new(4, config.clone());
    cluster.ticks(20);
    assert!(cluster.gossip(id(1)).suspect_members().is_empty());
    cluster.isolate(id(4));
    cluster.ticks(ticks(config.suspect_timeout_ms) + 10);
    for n in 1..=3 {
        assert_eq!(cluster.gossip(id(n)).liveness(id(4)), Some(Liveness::Suspect));
        assert_eq!(cluster.counter(id(n), "suspect_members"), 1);
    }
    cluster.ticks(ticks(config.dead_timeout_ms));
    for n in 1..=3 {
        assert!(!cluster.gossip(id(n)).live_members().contains(&id(4)));
        assert_eq!(cluster.counter(id(n), "pruned_members_total"), 1);
        assert_eq!(cluster.gossip(id(n)).status().members, vec![id(1), id(2), id(3)]);
    }
    // The isolated node pruned everyone.
    assert!(cluster.gossip(id(4)).live_members().is_empty());
}

#[test]
fn a_node_that_lost_every_peer_rejoins_through_the_seeds() {
    let config = GossipConfig { seeds: vec![id(1)], ..fast_config() };
    let mut cluster = Cluster::new(3, config.clone());
    cluster.ticks(10);
    cluster.isolate(id(3));
    cluster.ticks(ticks(config.dead_timeout_ms) + 20);
    assert!(cluster.gossip(id(3)).live_members().is_empty());
    cluster.put(id(3), "written-alone", "x");
    cluster.heal();
    let rejoined = cluster
        .ticks_until(50, |c| (1..=3).all(|n| c.gossip(id(n)).live_members().len() == 2))
        .expect("rejoins through the seed");
    assert!(rejoined <= 20, "rejoining took {rejoined} ticks");
    cluster.ticks_until(100, Cluster::converged).expect("and converges");
    assert_eq!(cluster.value(id(2), "written-alone").unwrap(), "x");
}

#[test]
fn a_new_node_joins_knowing_only_a_seed() {
    let mut cluster = Cluster::new(3, fast_config());
    cluster.put(id(2), "old", "data");
    cluster.ticks(10);
    let config = GossipConfig { seeds: vec![id(1)], ..fast_config() };
    cluster.add(id(9), Membership::new([id(1)]), config);
    cluster
        .ticks_until(100, |c| c.running().iter().all(|&n| c.gossip(n).live_members().len() == 3))
        .expect("everyone learns of everyone");
    cluster.ticks_until(100, Cluster::converged).expect("the newcomer catches up");
    assert_eq!(cluster.kv_value(id(9), "old").unwrap(), "data");
}

#[test]
fn healed_halves_that_pruned_each_other_find_each_other_again() {
    let config = fast_config();
    let mut cluster = Cluster::new(4, config.clone());
    cluster.ticks(10);
    cluster.partition(&[id(1), id(2)], &[id(3), id(4)]);
    cluster.ticks(ticks(config.dead_timeout_ms) + 20);
    assert_eq!(cluster.gossip(id(1)).live_members(), vec![id(2)]);
    assert_eq!(cluster.gossip(id(3)).live_members(), vec![id(4)]);
    cluster.put(id(1), "left", "l");
    cluster.put(id(4), "right", "r");
    cluster.heal();
    // Each half still has a live peer, so only the periodic contact with lost seeds reunites
    // them.
    cluster
        .ticks_until(200, |c| (1..=4).all(|n| c.gossip(id(n)).live_members().len() == 3))
        .expect("halves reunite");
    cluster.ticks_until(100, Cluster::converged).expect("and converge");
}

#[test]
fn a_restarted_member_is_taken_back_by_its_new_generation() {
    let config = fast_config();
    let mut cluster = Cluster::new(3, config.clone());
    cluster.ticks(10);
    let generation = cluster.gossip(id(3)).generation();
    cluster.crash(id(3));
    cluster.ticks(ticks(config.dead_timeout_ms) + 20);
    assert!(!cluster.gossip(id(1)).live_members().contains(&id(3)));
    cluster.restart(id(3), 20_000);
    assert_eq!(cluster.gossip(id(3)).generation(), generation + 1);
    cluster
        .ticks_until(50, |c| c.gossip(id(1)).live_members().contains(&id(3)))
        .expect("taken back");
}
