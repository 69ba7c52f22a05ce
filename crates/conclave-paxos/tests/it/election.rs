//! Leader election by ballots and the tick-driven failure detector.

use crate::cluster::Cluster;
use conclave_core::{NodeId, Protocol, Role};

// Reference: Paxos Made Simple §3 — a distinguished proposer chosen by a failure detector.
#[test]
fn three_and_five_node_clusters_elect_one_leader_by_ticks() {
    for n in [3, 5] {
        let mut c = Cluster::new(n);
        let leader = c.run_until_leader(200);
        c.ticks(10);
        assert_eq!(c.leaders(), vec![leader], "one stable leader in a {n}-node cluster");
        for id in c.ids() {
            assert_eq!(c.replicas[&id].node.leader(), Some(leader));
            let status = c.replicas[&id].node.status();
            let role = if id == leader { Role::Leader } else { Role::Follower };
            assert_eq!(status.role, role);
        }
    }
}

// Reference: Paxos Made Simple §3 — when the leader fails, another proposer takes over with a
// higher ballot.
#[test]
fn a_failed_leader_is_replaced_with_a_higher_ballot() {
    let mut c = Cluster::new(3);
    let old = c.run_until_leader(200);
    let old_ballot = c.replicas[&old].node.current_ballot();
    c.isolate(old.0);
    let mut new = None;
    for _ in 0..200 {
        c.tick();
        let others: Vec<NodeId> = c.leaders().into_iter().filter(|l| *l != old).collect();
        if let [l] = others[..] {
            new = Some(l);
            break;
        }
    }
    let new = new.expect("a new leader among the connected majority");
    assert!(c.replicas[&new].node.current_ballot() > old_ballot);
    // Cut off from its quorum, the old leader stepped down on its own.
    assert!(!c.replicas[&old].node.is_leader());
    c.heal();
    c.ticks(20);
    assert_eq!(c.leaders(), vec![new]);
    assert_eq!(c.replicas[&old].node.leader(), Some(new));
}

// Reference: loyalty to a live leader (the lease's promise) keeps a rejoining node from
// disrupting it.
#[test]
fn a_partitioned_follower_does_not_depose_a_live_leader_when_it_returns() {
    let mut c = Cluster::new(3);
    let leader = c.run_until_leader(200);
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    let ballot = c.replicas[&leader].node.current_ballot();
    c.isolate(follower.0);
    c.ticks(100);
    assert!(c.replicas[&follower].node.status().role == Role::Candidate);
    c.heal();
    c.ticks(20);
    assert_eq!(c.leaders(), vec![leader], "the leader kept its ballot {ballot}");
    assert_eq!(c.replicas[&leader].node.current_ballot(), ballot);
    assert_eq!(c.replicas[&follower].node.leader(), Some(leader));
}

#[test]
fn a_minority_elects_no_leader() {
    let mut c = Cluster::new(5);
    let leader = c.run_until_leader(200);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != leader).collect();
    // Leave the leader with one follower: two of five is no majority.
    for id in &others[1..] {
        c.isolate(id.0);
    }
    c.ticks(100);
    assert!(!c.replicas[&leader].node.is_leader(), "the leader steps down without a quorum");
    assert!(c.leaders().is_empty());
}

#[test]
fn counters_count_phase1_and_leader_changes() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(2);
    let counters = c.node(2).counters();
    let get = |name| counters.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(get("phase1_total") >= 1);
    assert!(get("leader_changes_total") >= 1);
    assert_eq!(get("ballot"), c.node(2).current_ballot().round);
}
