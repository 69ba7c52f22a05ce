//! Reconfiguration through the log, taking effect α slots after the slot it is chosen in.

use crate::cluster::Cluster;
use conclave_core::{ConsensusError, EntryKind, Membership, NodeId, Protocol, RequestId};
use conclave_paxos::PaxosConfig;

fn members(ids: &[u64]) -> Membership {
    Membership::new(ids.iter().map(|&i| NodeId(i)))
}

fn small_window() -> PaxosConfig {
    PaxosConfig { max_inflight_slots: 4, ..PaxosConfig::default() }
}

// Reference: Paxos Made Simple §3 — a configuration chosen in slot s governs slots from s + α.
#[test]
fn adding_a_member_takes_effect_alpha_slots_later() {
    let mut c = Cluster::with_config(3, small_window());
    c.warm_up();
    c.elect(1);
    c.propose(1, "a");
    c.deliver_all();
    c.add_replica(NodeId(4), members(&[1, 2, 3, 4]));
    c.node_mut(1).propose_membership(RequestId(100), members(&[1, 2, 3, 4]));
    c.process(NodeId(1));
    c.deliver_all();
    // The change sits in slot 2; the leader fills slots 3..=5 with no-ops so that slot 6, the
    // first one the new configuration governs, can come.
    let applied = &c.replica(1).applied;
    assert_eq!(applied[1].kind, EntryKind::Membership);
    assert!(applied[2..].iter().all(|e| e.kind == EntryKind::Noop));
    assert_eq!(c.node(1).commit_index(), 5);
    assert_eq!(c.node(1).membership(), &members(&[1, 2, 3, 4]));
    c.propose(1, "b");
    c.ticks(10);
    assert_eq!(c.commands(4), vec!["a", "b"], "the new member caught up and learns");
    assert_eq!(c.node(4).status().members.len(), 4);
    c.check_prefixes();
}

#[test]
fn removing_the_leader_hands_over_to_the_remaining_members() {
    let mut c = Cluster::with_config(3, small_window());
    c.warm_up();
    c.elect(1);
    c.propose(1, "a");
    c.node_mut(1).propose_membership(RequestId(100), members(&[2, 3]));
    c.process(NodeId(1));
    c.deliver_all();
    assert!(!c.node(1).is_leader(), "the leader stepped down once it was no longer a member");
    let leader = c.run_until_leader(300);
    assert_ne!(leader, NodeId(1));
    c.propose(leader.0, "b");
    c.ticks(40);
    assert_eq!(c.commands(2), vec!["a", "b"]);
    assert_eq!(c.commands(3), vec!["a", "b"]);
    assert!(!c.node(1).is_leader(), "a removed node never campaigns");
    assert_eq!(c.node(2).guarantees().fault_tolerance, Some(0));
    c.check_prefixes();
}

#[test]
fn one_membership_change_at_a_time() {
    let mut c = Cluster::with_config(3, small_window());
    c.warm_up();
    c.elect(1);
    c.isolate(1);
    c.node_mut(1).propose_membership(RequestId(1), members(&[1, 2]));
    c.node_mut(1).propose_membership(RequestId(2), members(&[1, 3]));
    c.process(NodeId(1));
    let rejected = &c.replica(1).rejected;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].request, RequestId(2));
    assert!(matches!(rejected[0].error, ConsensusError::Unavailable(_)));
    c.node_mut(2).propose_membership(RequestId(3), members(&[2, 3]));
    c.process(NodeId(2));
    assert_eq!(
        c.replica(2).rejected[0].error,
        ConsensusError::NotLeader { leader: Some(NodeId(1)) }
    );
}
