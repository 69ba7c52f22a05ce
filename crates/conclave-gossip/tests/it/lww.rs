//! Last-writer-wins by (HLC, node id), and what the planted wall-clock bug breaks.

use crate::cluster::{Cluster, fast_config, id};
use conclave_core::Membership;
use conclave_gossip::{GossipConfig, PlantedBug};

#[test]
fn concurrent_writes_converge_to_the_highest_stamp() {
    let mut cluster = Cluster::new(3, fast_config());
    cluster.partition(&[id(1)], &[id(2), id(3)]);
    cluster.ticks(3);
    cluster.put(id(1), "k", "from-1");
    cluster.put(id(2), "k", "from-2");
    cluster.heal();
    cluster.ticks_until(100, Cluster::converged).expect("converges");
    let s1 = cluster.gossip(id(1)).get(b"k").unwrap().stamp;
    let winner = if s1.node == id(1) { "from-1" } else { "from-2" };
    for n in 1..=3 {
        assert_eq!(cluster.value(id(n), "k").unwrap(), winner);
        assert_eq!(cluster.kv_value(id(n), "k").unwrap(), winner);
    }
}

#[test]
fn equal_clock_readings_are_ordered_by_node_id() {
    let config = GossipConfig { clock_offset_ms: 5_000, ..fast_config() };
    let mut cluster = Cluster::new(2, config);
    cluster.partition(&[id(1)], &[id(2)]);
    // Before any tick both clocks read the same physical time: the stamps tie on the HLC.
    cluster.put(id(2), "k", "two");
    cluster.put(id(1), "k", "one");
    let (a, b) = (
        cluster.gossip(id(1)).get(b"k").unwrap().stamp,
        cluster.gossip(id(2)).get(b"k").unwrap().stamp,
    );
    assert_eq!(a.hlc, b.hlc);
    cluster.heal();
    cluster.ticks_until(100, Cluster::converged).expect("converges");
    assert_eq!(cluster.value(id(1), "k").unwrap(), "two");
    assert_eq!(cluster.kv_value(id(1), "k").unwrap(), "two");
}

/// Node 1's clock runs 500 ms fast, node 2's 500 ms slow. Node 2 overwrites a key after it has
/// seen node 1's write: its write happened later and must win everywhere.
fn skewed_overwrite(bug: Option<PlantedBug>) -> Cluster {
    let mut cluster = Cluster::empty();
    let members = Membership::new([id(1), id(2), id(3)]);
    for (n, skew) in [(1, 500), (2, -500), (3, 0)] {
        let config =
            GossipConfig { clock_offset_ms: 10_000 + skew, planted_bug: bug, ..fast_config() };
        cluster.add(id(n), members.clone(), config);
    }
    cluster.ticks(10);
    cluster.put(id(1), "k", "first");
    // Only node 2 moves on: it pulls the write from node 1 and overwrites it at once, its
    // clock still at the reading node 1's answer carried.
    for _ in 0..10 {
        cluster.tick_only(id(2));
        if cluster.value(id(2), "k").is_some() {
            break;
        }
    }
    assert!(cluster.value(id(2), "k").is_some(), "node 2 pulled the write");
    cluster.put(id(2), "k", "second");
    let (first, second) = (
        cluster.gossip(id(1)).get(b"k").unwrap().stamp,
        cluster.gossip(id(2)).get(b"k").unwrap().stamp,
    );
    assert!(second > first, "the HLC orders the overwrite after what it saw");
    assert_eq!(second.hlc.physical_ms, first.hlc.physical_ms, "slow node took the fast clock");
    cluster.ticks(100);
    cluster
}

#[test]
fn a_causally_later_write_wins_despite_a_slow_clock() {
    // Reference: HLC §3: the receive rule orders node 2's write after node 1's although
    // node 2's physical clock is a second behind.
    let cluster = skewed_overwrite(None);
    assert!(cluster.converged());
    for n in 1..=3 {
        assert_eq!(cluster.value(id(n), "k").unwrap(), "second");
    }
}

#[test]
fn planted_wall_clock_bug_loses_the_acknowledged_write() {
    let cluster = skewed_overwrite(Some(PlantedBug::LwwByWallClockOnly));
    // Node 2 acknowledged "second", but the replicas that held "first" keep it.
    assert_eq!(cluster.value(id(2), "k").unwrap(), "second");
    assert_eq!(cluster.value(id(1), "k").unwrap(), "first");
}
