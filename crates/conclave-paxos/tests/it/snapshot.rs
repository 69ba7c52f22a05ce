//! Slot-log compaction with snapshots, and snapshots for learners that lag past it.

use crate::cluster::Cluster;
use conclave_core::{NodeId, Protocol};

#[test]
fn snapshot_taken_compacts_the_log() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    for i in 0..10 {
        c.propose(1, &format!("c{i}"));
    }
    c.deliver_all();
    c.snapshot(1);
    assert_eq!(c.node(1).log_bounds(), (11, 10));
    assert!(c.replica(1).store.entries.is_empty(), "the store dropped compacted entries");
    c.propose(1, "after");
    c.ticks(5);
    assert_eq!(c.commands(2).len(), 11);
}

// Reference: a lagging learner gets the snapshot when the slots it needs were compacted.
#[test]
fn a_lagging_learner_gets_the_snapshot() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.isolate(3);
    for i in 0..30 {
        c.propose(1, &format!("c{i}"));
    }
    c.deliver_all();
    c.snapshot(1);
    c.propose(1, "tail");
    c.deliver_all();
    c.heal();
    // The first heartbeat's answer has the leader read its snapshot back; the next sends it.
    c.ticks(20);
    assert_eq!(c.commands(3).len(), 31);
    assert_eq!(c.replica(3).store.snapshot.as_ref().map(|s| s.meta.index), Some(30));
    assert!(c.node(1).counters().contains(&("snapshots_sent_total", 1)));
    c.check_prefixes();
}

#[test]
fn restart_from_a_snapshot_and_later_slots() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    for i in 0..10 {
        c.propose(1, &format!("c{i}"));
    }
    c.ticks(5);
    c.snapshot(2);
    c.propose(1, "c10");
    c.ticks(5);
    c.crash_restart(2);
    assert_eq!(c.node(2).commit_index(), 11, "restarts at its stored commit index");
    assert_eq!(c.node(2).log_bounds(), (11, 11));
    c.process(NodeId(2));
    assert_eq!(c.commands(2).len(), 11, "the chosen slot after the snapshot is applied again");
    c.ticks(10);
    assert_eq!(c.commands(2).len(), 11);
    c.check_prefixes();
}

// An acceptor that compacted past a candidate's start slot cannot report those records: it
// answers with its snapshot instead of a promise (read back from its store at the first
// prepare, sent at the next).
#[test]
fn a_candidate_behind_a_snapshot_catches_up_before_leading() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.isolate(3);
    for i in 0..10 {
        c.propose(1, &format!("c{i}"));
    }
    c.ticks(5);
    c.snapshot(1);
    c.snapshot(2);
    c.heal();
    c.isolate(1);
    c.warm_up();
    c.node_mut(3).campaign();
    c.process(conclave_core::NodeId(3));
    c.deliver_all();
    assert!(!c.node(3).is_leader());
    assert_eq!(c.node(3).commit_index(), 0, "no promise and no snapshot yet");
    c.node_mut(3).campaign();
    c.process(conclave_core::NodeId(3));
    c.deliver_all();
    assert!(!c.node(3).is_leader());
    assert_eq!(c.node(3).commit_index(), 10, "installed node 2's snapshot");
    let leader = c.run_until_leader(300);
    c.propose(leader.0, "next");
    c.ticks(10);
    assert_eq!(c.commands(3).len(), 11);
    assert_eq!(c.commands(2).len(), 11);
    c.check_prefixes();
}
