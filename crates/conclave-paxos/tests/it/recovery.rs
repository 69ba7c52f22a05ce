//! Crashes and restarts: what the store gives back is enough to keep every promise.

use crate::cluster::Cluster;
use conclave_core::{NodeId, Protocol};

#[test]
fn a_restarted_acceptor_keeps_its_promise_and_records() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("c{i}"));
    }
    c.deliver_all();
    let promised = c.node(2).promised();
    let record = c.node(2).accepted(5).map(|(b, e)| (b, e.clone()));
    c.crash_restart(2);
    assert_eq!(c.node(2).promised(), promised);
    assert_eq!(c.node(2).accepted(5).map(|(b, e)| (b, e.clone())), record);
    c.ticks(10);
    assert_eq!(c.commands(2).len(), 5, "chosen slots are learned again and re-applied");
    c.check_prefixes();
}

#[test]
fn a_restarted_leader_rejoins_with_a_new_ballot() {
    let mut c = Cluster::new(3);
    let leader = c.run_until_leader(200);
    let ballot = c.replicas[&leader].node.current_ballot();
    c.propose(leader.0, "before");
    c.deliver_all();
    c.crash_restart(leader.0);
    assert!(!c.replicas[&leader].node.is_leader());
    let new = c.run_until_leader(300);
    assert!(c.replicas[&new].node.current_ballot() > ballot);
    c.propose(new.0, "after");
    c.ticks(10);
    for id in 1..=3 {
        assert_eq!(c.commands(id), vec!["before", "after"], "node {id}");
    }
}

// A restarted node may have acknowledged a leader just before crashing; it refuses prepares
// for a whole timeout so that the leader's lease stays safe.
#[test]
fn a_restarted_node_is_loyal_for_a_timeout() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.crash_restart(2);
    c.isolate(1);
    c.node_mut(3).campaign();
    c.process(NodeId(3));
    c.deliver_all();
    assert!(!c.node(3).is_leader(), "node 2 just restarted and refuses");
    let counters = c.node(2).counters();
    assert!(counters.contains(&("prepares_rejected_total", 1)));
    // Node 1's lease was at most 10 ticks; after 15 node 2 promises again.
    c.ticks(40);
    assert!(c.leaders().iter().any(|l| *l != NodeId(1)));
}

#[test]
fn every_replica_restarting_loses_nothing_chosen() {
    let mut c = Cluster::new(3);
    let leader = c.run_until_leader(200);
    for i in 0..20 {
        c.propose(leader.0, &format!("c{i}"));
    }
    c.ticks(5);
    for id in 1..=3 {
        c.crash_restart(id);
    }
    let leader = c.run_until_leader(300);
    c.propose(leader.0, "last");
    c.ticks(10);
    for id in 1..=3 {
        let commands = c.commands(id);
        assert_eq!(commands.len(), 21, "node {id}");
        assert_eq!(commands.last().map(String::as_str), Some("last"));
    }
    c.check_prefixes();
}

// The commit index is stored with the hard state: after the whole cluster restarts, the new
// leader does not propose every slot since the snapshot again. It used to, and each such slot
// rewrote the acceptors' records from it to the end of their logs (quadratic in the log: 4,035
// entries written for these 401 slots).
#[test]
fn a_cluster_restart_keeps_the_commit_index_and_rewrites_nothing() {
    let mut c = Cluster::new(3);
    let leader = c.run_until_leader(200);
    for i in 0..400 {
        c.propose(leader.0, &format!("c{i}"));
    }
    c.ticks(5);
    let commits: Vec<u64> = (1..=3).map(|id| c.node(id).commit_index()).collect();
    assert!(commits.iter().all(|&commit| commit >= 400), "{commits:?}");
    for id in 1..=3 {
        c.crash_restart(id);
    }
    let after: Vec<u64> = (1..=3).map(|id| c.node(id).commit_index()).collect();
    assert_eq!(after, commits, "each replica restarts at its stored commit index");
    let written_before: usize = (1..=3).map(|id| c.replica(id).store.written).sum();
    let leader = c.run_until_leader(300);
    c.propose(leader.0, "last");
    c.ticks(10);
    let written: usize =
        (1..=3).map(|id| c.replica(id).store.written).sum::<usize>() - written_before;
    assert!(written <= 3 * 4, "{written} entries written after the restart");
    for id in 1..=3 {
        let commands = c.commands(id);
        assert_eq!(commands.len(), 401, "node {id}");
        assert_eq!(commands.last().map(String::as_str), Some("last"));
    }
    c.check_prefixes();
}
