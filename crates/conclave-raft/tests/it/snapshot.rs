//! Log compaction and InstallSnapshot (§7).

use crate::election::sent;
use crate::network::{Network, config, ids};
use bytes::Bytes;
use conclave_core::{Entry, Membership, NodeId, Protocol, Recovered, Snapshot, SnapshotMeta};
use conclave_raft::{HardState, Raft, RaftConfig, RaftMessage};

/// What the driver would hand `snapshot_taken` after applying through `index`.
fn snapshot_at(index: u64) -> Snapshot {
    Snapshot {
        // Raft fills in the term and membership from its own log.
        meta: SnapshotMeta { index, term: 0, membership: Membership::default() },
        data: Bytes::from(format!("state@{index}")),
    }
}

// Reference: §7 — once a snapshot covers a prefix, the log may drop it; a few entries are kept
// for followers that lag only a little.
#[test]
fn snapshot_taken_compacts_the_log_keeping_some_entries() {
    let mut net = Network::new(3, RaftConfig { snapshot_keep_entries: 2, ..config() });
    net.elect(1);
    for i in 0..8 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    assert_eq!(net.raft(1).commit_index(), 9);
    net.raft_mut(1).snapshot_taken(snapshot_at(8));
    let ready = net.raft_mut(1).ready();
    assert_eq!(ready.compact_to, Some(6));
    assert!(ready.messages.is_empty() && ready.entries.is_empty());
    assert_eq!(net.raft(1).first_index(), 7);
    assert_eq!(net.raft(1).term_at(6), Some(1));
    assert_eq!(net.raft(1).entry(6), None);
    // An older snapshot changes nothing.
    net.raft_mut(1).snapshot_taken(snapshot_at(5));
    assert!(!net.raft(1).has_ready());
}

// Reference: §7 — a follower that needs compacted entries receives the snapshot; it hands it to
// the driver in Ready.snapshot (persisted and restored before anything else), then catches up
// with entries.
#[test]
fn a_lagging_follower_is_sent_the_snapshot() {
    let mut net = Network::new(3, RaftConfig { snapshot_keep_entries: 0, ..config() });
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    net.snapshot_taken(1, snapshot_at(11));
    net.process(NodeId(1));
    assert_eq!(net.raft(1).first_index(), 12);
    net.propose(1, "after");
    net.heal();
    net.tick_all(5);
    let restored = &net.node(3).snapshots_restored;
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].index, 11);
    assert_eq!(restored[0].term, 1);
    assert_eq!(restored[0].membership, ids(&[1, 2, 3]));
    assert_eq!(net.commands(3), vec!["after"]);
    assert_eq!(net.raft(3).commit_index(), 12);
    assert_eq!(net.raft(3).first_index(), 12);
    let counters: std::collections::BTreeMap<_, _> = net.raft(1).counters().into_iter().collect();
    assert_eq!(counters["snapshots_sent_total"], 1);
    net.assert_state_machine_safety();
}

// Reference: §7 — "if the follower already has the entry in the snapshot, it retains the log
// entries following it": nothing is restored.
#[test]
fn a_follower_that_holds_the_snapshot_entry_keeps_its_log() {
    let entries: Vec<Entry> = (1..=5).map(|i| Entry::noop(i, 1)).collect();
    let recovered = Recovered {
        hard_state: Some(HardState { term: 1, voted_for: None, commit: 2 }.encode()),
        snapshot: None,
        entries,
    };
    let mut r = Raft::new(NodeId(2), ids(&[1, 2, 3]), config(), recovered, 1).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: 4, term: 1, membership: ids(&[1, 2, 3]) },
        data: Bytes::from_static(b"s"),
    };
    r.step(NodeId(1), RaftMessage::InstallSnapshot { term: 1, snapshot });
    let ready = r.ready();
    assert_eq!(ready.snapshot, None);
    assert_eq!(r.commit_index(), 4);
    assert_eq!(r.last_index(), 5);
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(
        sent(&ready),
        vec![(1, RaftMessage::InstallSnapshotResponse { term: 1, match_index: 4 })]
    );
}

// Reference: §7 — a snapshot that conflicts with the log replaces it whole.
#[test]
fn a_conflicting_log_is_replaced_by_the_snapshot() {
    let entries: Vec<Entry> = (1..=5).map(|i| Entry::noop(i, 1)).collect();
    let recovered = Recovered { hard_state: None, snapshot: None, entries };
    let mut r = Raft::new(NodeId(2), ids(&[1, 2, 3]), config(), recovered, 1).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: 4, term: 2, membership: ids(&[1, 2, 3]) },
        data: Bytes::from_static(b"s"),
    };
    r.step(NodeId(1), RaftMessage::InstallSnapshot { term: 2, snapshot: snapshot.clone() });
    let ready = r.ready();
    assert_eq!(ready.snapshot, Some(snapshot));
    assert!(ready.committed.is_empty());
    assert_eq!((r.first_index(), r.last_index(), r.commit_index()), (5, 4, 4));
    assert_eq!(r.term_at(4), Some(2));
}

/// Replica 1 leads and has compacted its log into a snapshot at 2 while replica 3 was cut off;
/// the link is still cut.
fn follower_3_behind_a_snapshot() -> Network {
    let mut net = Network::new(3, RaftConfig { snapshot_keep_entries: 0, ..config() });
    net.elect(1);
    net.isolate(3);
    net.propose(1, "x");
    net.deliver_all();
    net.snapshot_taken(1, snapshot_at(2));
    net
}

// Reference: §7 — the snapshot or its answer may be lost; the leader sends it again.
#[test]
fn a_lost_snapshot_is_sent_again() {
    let mut net = follower_3_behind_a_snapshot();
    net.heal();
    let mut dropped = 0;
    for _ in 0..30 {
        for id in 1..=3 {
            net.raft_mut(id).tick();
        }
        net.deliver_filtered(|_, _, m| {
            let drop = matches!(m, RaftMessage::InstallSnapshot { .. }) && dropped == 0;
            dropped += drop as u32;
            !drop
        });
    }
    assert_eq!(dropped, 1);
    assert_eq!(net.node(3).snapshots_restored.len(), 1);
    assert_eq!(net.raft(3).commit_index(), 2);
}

// The leader keeps only its snapshot's metadata: the follower that needs it has the leader ask
// for the data once (read back from the store), and it is let go again a while after sending.
#[test]
fn the_snapshot_data_is_read_back_for_a_follower_and_let_go() {
    let mut net = follower_3_behind_a_snapshot();
    net.process(NodeId(1));
    assert_eq!(net.snapshots_loaded, 0, "nothing is read back while no follower needs it");
    net.heal();
    net.tick_all(5);
    assert_eq!(net.node(3).snapshots_restored.len(), 1);
    assert_eq!(net.snapshots_loaded, 1);
    net.tick_all(conclave_core::held_snapshot::HELD_SNAPSHOT_RELEASE_TICKS as usize);
    assert_eq!(net.snapshots_loaded, 1, "read back once");
}

// Reference: §7 — a replica restarts from its snapshot and the entries after it, and re-applies
// the committed ones.
#[test]
fn restart_from_snapshot_and_log() {
    let mut net = Network::new(3, RaftConfig { snapshot_keep_entries: 1, ..config() });
    net.elect(1);
    for i in 0..4 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    net.snapshot_taken(2, snapshot_at(3));
    net.process(NodeId(2));
    // Storage may keep entries below its snapshot; recovery ignores them.
    net.nodes.get_mut(&NodeId(2)).unwrap().store.snapshot = Some(Snapshot {
        meta: SnapshotMeta { index: 3, term: 1, membership: ids(&[1, 2, 3]) },
        data: Bytes::from_static(b"s"),
    });
    net.crash(2);
    net.restart(2);
    assert_eq!(net.raft(2).first_index(), 4);
    net.tick_all(3);
    assert_eq!(net.commands(2), vec!["c2", "c3"]);
    net.assert_state_machine_safety();
}
