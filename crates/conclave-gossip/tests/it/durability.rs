//! What survives a restart: the LWW map with its stamps and tombstones (log and map image),
//! the clock's high-water mark, the watermarks and the generation.

use crate::cluster::{Cluster, fast_config, id};
use conclave_core::{Protocol, Recovered};
use conclave_gossip::{Gossip, GossipConfig, GossipError};
use std::collections::BTreeMap;

fn stamps(
    cluster: &Cluster,
    n: u64,
) -> BTreeMap<bytes::Bytes, (Option<bytes::Bytes>, conclave_gossip::Stamp)> {
    cluster
        .gossip(id(n))
        .map()
        .iter()
        .map(|(k, v)| (k.clone(), (v.value.clone(), v.stamp)))
        .collect()
}

fn populate(cluster: &mut Cluster) {
    cluster.put(id(1), "own", "1");
    cluster.put(id(2), "remote", "2");
    cluster.put(id(2), "gone", "3");
    cluster.ticks_until(50, Cluster::converged).expect("converges");
    cluster.delete(id(2), "gone");
    cluster
        .ticks_until(50, |c| c.gossip(id(1)).get(b"gone").is_some_and(|v| v.is_tombstone()))
        .expect("delete spreads");
}

#[test]
fn a_restarted_replica_rebuilds_its_map_from_the_log() {
    let config = GossipConfig { tombstone_grace_ms: 60_000, ..fast_config() };
    let mut cluster = Cluster::new(2, config);
    populate(&mut cluster);
    let before = stamps(&cluster, 1);
    let kv_before = cluster.kv_contents(id(1));
    let hlc_before = cluster.gossip(id(1)).hlc();
    cluster.crash(id(1));
    // Restarted with a clock far behind: the HLC must not go backwards.
    cluster.restart(id(1), 0);
    assert_eq!(stamps(&cluster, 1), before, "stamps and tombstones survive");
    assert_eq!(cluster.kv_contents(id(1)), kv_before, "the store re-applied the log");
    assert!(cluster.gossip(id(1)).hlc() > hlc_before);
    cluster.put(id(1), "after", "restart");
    assert!(cluster.gossip(id(1)).get(b"after").unwrap().stamp.hlc > hlc_before);
    cluster.ticks_until(50, Cluster::converged).expect("converges after restart");
}

#[test]
fn a_map_image_survives_log_compaction() {
    let config = GossipConfig { tombstone_grace_ms: 60_000, ..fast_config() };
    let mut cluster = Cluster::new(2, config);
    populate(&mut cluster);
    cluster.snapshot(id(1));
    let compacted_to = cluster.node(id(1)).disk.log.first().map(|e| e.index).unwrap();
    assert!(compacted_to > 1, "the log was compacted");
    cluster.put(id(1), "after-snapshot", "4");
    cluster.delete(id(1), "own");
    let before = stamps(&cluster, 1);
    let kv_before = cluster.kv_contents(id(1));
    cluster.crash(id(1));
    cluster.restart(id(1), 30_000);
    assert_eq!(stamps(&cluster, 1), before);
    assert_eq!(cluster.kv_contents(id(1)), kv_before);
    cluster.ticks_until(50, Cluster::converged).expect("converges after restart");
}

#[test]
fn watermarks_survive_a_restart() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "k", "v");
    cluster.delete(id(1), "k");
    cluster
        .ticks_until(300, |c| c.counter(id(1), "tombstones_collected_total") == 1)
        .expect("collected");
    let watermarks = cluster.gossip(id(1)).watermarks().clone();
    assert!(!watermarks.is_empty());
    cluster.crash(id(1));
    cluster.restart(id(1), 10_000);
    assert_eq!(cluster.gossip(id(1)).watermarks(), &watermarks);
    // Replaying the log brings the tombstone back (not the value); it is collected again.
    assert_eq!(cluster.value(id(1), "k"), None);
}

#[test]
fn the_hard_state_reserves_the_clock_ahead() {
    let mut cluster = Cluster::new(1, fast_config());
    let writes_before = |c: &Cluster| c.node(id(1)).disk.hard_state.clone();
    let first = writes_before(&cluster).expect("the first ready persists a generation");
    cluster.ticks(5);
    // A few ticks stay inside the reservation: no new hard state.
    assert_eq!(writes_before(&cluster).unwrap(), first);
    cluster.ticks(200);
    assert_ne!(writes_before(&cluster).unwrap(), first);
}

#[test]
fn a_corrupt_hard_state_is_refused() {
    let recovered = Recovered {
        hard_state: Some(bytes::Bytes::from_static(&[0xff; 3])),
        ..Recovered::default()
    };
    let error =
        Gossip::new(id(1), conclave_core::Membership::new([id(1)]), fast_config(), recovered, 1)
            .unwrap_err();
    assert!(matches!(error, GossipError::CorruptHardState(_)));
    assert!(error.to_string().starts_with("corrupt gossip hard state"));
    let g = Gossip::new(
        id(1),
        conclave_core::Membership::new([id(1)]),
        fast_config(),
        Recovered::default(),
        1,
    )
    .unwrap();
    assert_eq!(g.name(), "gossip");
}
