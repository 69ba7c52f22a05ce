//! Persistence and recovery (§5.1, Figure 2 "persistent state"): what a replica keeps across a
//! crash, when its hard state is handed out, and how bad recovered state is refused.

use crate::election::{hard_state, raft};
use crate::network::{Network, config, ids};
use bytes::Bytes;
use conclave_core::{Entry, NodeId, Protocol, Recovered};
use conclave_raft::{HardState, Raft, RaftError, RaftMessage};

// Reference: §5.1 and §5.2 — term and vote survive a crash, so a replica cannot vote twice in a
// term by restarting.
#[test]
fn term_and_vote_survive_a_restart() {
    let mut net = Network::new(3, config());
    net.raft_mut(2).step(
        NodeId(1),
        RaftMessage::RequestVote {
            term: 5,
            last_log_index: 0,
            last_log_term: 0,
            pre_vote: false,
            transfer: false,
        },
    );
    net.process(NodeId(2));
    net.crash(2);
    net.restart(2);
    assert_eq!((net.raft(2).term(), net.raft(2).voted_for()), (5, Some(NodeId(1))));
    net.raft_mut(2).step(
        NodeId(3),
        RaftMessage::RequestVote {
            term: 5,
            last_log_index: 9,
            last_log_term: 4,
            pre_vote: false,
            transfer: false,
        },
    );
    let ready = net.raft_mut(2).ready();
    assert_eq!(
        ready.messages[0].msg,
        RaftMessage::RequestVoteResponse { term: 5, granted: false, pre_vote: false }
    );
}

// The hard state is handed out only when it changed.
#[test]
fn hard_state_is_emitted_only_on_change() {
    let mut r = raft(2, &[1, 2, 3], config());
    let heartbeat = |commit| RaftMessage::Heartbeat { term: 1, commit, round: 1 };
    r.step(NodeId(1), heartbeat(0));
    assert_eq!(hard_state(&r.ready()), Some(HardState { term: 1, voted_for: None, commit: 0 }));
    r.step(NodeId(1), heartbeat(0));
    assert_eq!(r.ready().hard_state, None);
}

// Reference: §5.1 — a whole cluster restarts from disk: committed entries are applied again and
// the cluster goes on.
#[test]
fn a_whole_cluster_restarts() {
    let mut net = Network::new(3, config());
    net.elect(1);
    for i in 0..3 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    for id in 1..=3 {
        net.crash(id);
    }
    for id in 1..=3 {
        net.restart(id);
    }
    net.process_all();
    assert_eq!(net.commands(1), vec!["c0", "c1", "c2"]);
    net.tick_all(60);
    let leader = net.leader().unwrap();
    net.propose(leader, "again");
    net.deliver_all();
    for id in 1..=3 {
        assert_eq!(net.commands(id), vec!["c0", "c1", "c2", "again"]);
    }
    net.assert_state_machine_safety();
}

// Recovery refuses a log with a gap, a log that does not follow the snapshot, and a hard state
// that is not one.
#[test]
fn inconsistent_recovered_state_is_refused() {
    let build = |recovered| Raft::new(NodeId(1), ids(&[1]), config(), recovered, 1).map(|_| ());
    let gap =
        Recovered { entries: vec![Entry::noop(1, 1), Entry::noop(3, 1)], ..Default::default() };
    assert!(matches!(build(gap), Err(RaftError::RecoveredLog(_))));
    let late_start = Recovered { entries: vec![Entry::noop(2, 1)], ..Default::default() };
    assert!(matches!(build(late_start), Err(RaftError::RecoveredLog(_))));
    let terms_down =
        Recovered { entries: vec![Entry::noop(1, 2), Entry::noop(2, 1)], ..Default::default() };
    assert!(matches!(build(terms_down), Err(RaftError::RecoveredLog(_))));
    let garbage =
        Recovered { hard_state: Some(Bytes::from_static(&[0xff; 3])), ..Default::default() };
    assert!(matches!(build(garbage), Err(RaftError::HardStateDecode(_))));
}
