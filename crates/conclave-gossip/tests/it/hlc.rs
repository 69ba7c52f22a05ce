//! Hybrid logical clock rules. Reference: Kulkarni et al., "Logical Physical Clocks" (2014),
//! §3, the HLC algorithm's send/local and receive rules.

use crate::cluster::{Cluster, fast_config, id};
use conclave_gossip::{Clock, GossipConfig, Hlc};

#[test]
fn local_event_follows_physical_time_or_counts() {
    // Reference: HLC §3, send or local event.
    let mut clock = Clock::new(Hlc::ZERO);
    assert_eq!(clock.local_event(100), Hlc::new(100, 0));
    assert_eq!(clock.local_event(100), Hlc::new(100, 1));
    // Physical time going backwards never moves the clock back.
    assert_eq!(clock.local_event(90), Hlc::new(100, 2));
    assert_eq!(clock.local_event(101), Hlc::new(101, 0));
}

#[test]
fn receive_takes_the_max_and_continues_the_right_counter() {
    // Reference: HLC §3, receive event: the four cases of which clock supplies `l`.
    let mut clock = Clock::new(Hlc::new(100, 3));
    assert_eq!(clock.receive(50, Hlc::new(100, 7)), Hlc::new(100, 8), "l = l' = l_m");
    assert_eq!(clock.receive(50, Hlc::new(90, 9)), Hlc::new(100, 9), "l = l'");
    assert_eq!(clock.receive(50, Hlc::new(120, 4)), Hlc::new(120, 5), "l = l_m");
    assert_eq!(clock.receive(130, Hlc::new(125, 4)), Hlc::new(130, 0), "l = pt");
}

#[test]
fn multi_key_writes_take_consecutive_readings() {
    let mut clock = Clock::new(Hlc::ZERO);
    assert_eq!(clock.local_events(100, 3), Hlc::new(100, 0));
    assert_eq!(clock.now(), Hlc::new(100, 2));
    assert_eq!(clock.local_event(100), Hlc::new(100, 3));
}

#[test]
fn skewed_clocks_stay_within_the_skew() {
    // Reference: HLC §3 (bounded drift): l never exceeds the largest physical clock seen.
    let mut cluster = Cluster::empty();
    let members = conclave_core::Membership::new([id(1), id(2), id(3)]);
    for (n, offset) in [(1, 500), (2, -500), (3, 0)] {
        let config = GossipConfig { clock_offset_ms: 10_000 + offset, ..fast_config() };
        cluster.add(id(n), members.clone(), config);
    }
    for _ in 0..200 {
        cluster.tick();
        cluster.put(id(2), "k", "v");
        for n in 1..=3 {
            let g = cluster.gossip(id(n));
            let fastest = cluster.gossip(id(1)).physical_ms();
            assert!(g.hlc().physical_ms <= fastest, "node {n} ran ahead of every physical clock");
        }
    }
    // The slow node's clock was pulled up to the fast one's through gossip.
    let slow = cluster.gossip(id(2));
    assert!(slow.hlc().physical_ms > slow.physical_ms() + 400);
}
