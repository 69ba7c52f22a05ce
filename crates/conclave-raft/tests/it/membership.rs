//! Single-server membership changes (thesis §4.1): one voter added or removed at a time, in
//! effect as soon as the entry is appended, and a removed leader stepping down (§4.2.2).

use crate::network::{Network, config, decode_membership, ids};
use bytes::Bytes;
use conclave_core::{
    ConsensusError, Entry, EntryKind, Membership, NodeId, Protocol, RequestId, Role,
};
use conclave_raft::{Raft, RaftMessage};

fn rejection(net: &Network, id: u64, request: RequestId) -> Option<ConsensusError> {
    net.node(id).rejected.iter().find(|r| r.request == request).map(|r| r.error.clone())
}

// Reference: thesis §4.1 and §4.2.1 — a new server joins with an empty log and no membership of
// its own (so it never campaigns), catches up, and votes from the moment the entry is appended.
#[test]
fn a_voter_is_added() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.propose(1, "before");
    net.deliver_all();
    net.add_node(NodeId(4), Membership::default());
    net.raft_mut(1).propose_membership(RequestId(100), ids(&[1, 2, 3, 4]));
    // In effect on the leader as soon as it is appended.
    assert_eq!(net.raft(1).membership(), &ids(&[1, 2, 3, 4]));
    net.deliver_all();
    net.tick_all(3);
    assert_eq!(net.raft(4).membership(), &ids(&[1, 2, 3, 4]));
    assert_eq!(net.commands(4), vec!["before"]);
    let last = net.raft(1).last_index();
    assert_eq!(net.raft(1).commit_index(), last);
    let entry = net.raft(4).entry(3).unwrap();
    assert_eq!(decode_membership(entry), Some(ids(&[1, 2, 3, 4])));
    // Four voters need three: with two of the old ones down, nothing commits...
    net.crash(2);
    net.crash(3);
    net.propose(1, "stuck");
    net.deliver_all();
    assert_eq!(net.raft(1).commit_index(), last);
    // ...and with one back, it does.
    net.restart(3);
    net.tick_all(5);
    assert_eq!(net.commands(4), vec!["before", "stuck"]);
    assert_eq!(net.raft(1).guarantees().fault_tolerance, Some(1));
    assert_eq!(net.raft(1).status().members, vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4)]);
}

// Reference: thesis §4.1 — only one voter changes at a time, and only once the previous change
// has committed; only the leader takes changes.
#[test]
fn invalid_or_concurrent_changes_are_refused() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.raft_mut(1).propose_membership(RequestId(1), ids(&[1, 2, 3, 4, 5]));
    net.raft_mut(1).propose_membership(RequestId(2), ids(&[1, 4, 5]));
    net.raft_mut(1).propose_membership(RequestId(3), Membership::default());
    net.raft_mut(2).propose_membership(RequestId(4), ids(&[1, 2]));
    net.raft_mut(1).propose_membership(RequestId(5), ids(&[1, 2]));
    net.raft_mut(1).propose_membership(RequestId(6), ids(&[1, 2, 3]));
    net.process_all();
    assert!(matches!(rejection(&net, 1, RequestId(1)), Some(ConsensusError::Unsupported { .. })));
    assert!(matches!(rejection(&net, 1, RequestId(2)), Some(ConsensusError::Unsupported { .. })));
    assert!(matches!(rejection(&net, 1, RequestId(3)), Some(ConsensusError::Unsupported { .. })));
    assert_eq!(
        rejection(&net, 2, RequestId(4)),
        Some(ConsensusError::NotLeader { leader: Some(NodeId(1)) })
    );
    assert_eq!(rejection(&net, 1, RequestId(5)), None);
    assert!(matches!(rejection(&net, 1, RequestId(6)), Some(ConsensusError::Unavailable(_))));
    net.deliver_all();
    assert_eq!(net.raft(3).membership(), &ids(&[1, 2]));
}

// Reference: thesis §4.1 — once a follower is removed, the remaining voters form the majority.
#[test]
fn a_voter_is_removed() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.raft_mut(1).propose_membership(RequestId(1), ids(&[1, 2]));
    net.deliver_all();
    net.crash(3);
    net.propose(1, "two-of-two");
    net.deliver_all();
    assert_eq!(net.commands(2), vec!["two-of-two"]);
    assert_eq!(net.raft(1).membership(), &ids(&[1, 2]));
}

// Reference: thesis §4.2.2 — a leader that removes itself manages the cluster until the change
// commits (without counting itself), then steps down; it never campaigns again.
#[test]
fn a_leader_removes_itself_and_steps_down() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let term = net.raft(1).term();
    net.raft_mut(1).propose_membership(RequestId(1), ids(&[2, 3]));
    net.deliver_all();
    assert_eq!(net.raft(1).role(), Role::Follower);
    net.tick_all(60);
    let leader = net.leader().unwrap();
    assert_ne!(leader, 1);
    assert!(net.raft(leader).term() > term);
    // Not a voter any more, replica 1 never campaigned.
    assert_eq!(net.raft(1).term(), term);
    net.propose(leader, "without-1");
    net.deliver_all();
    assert_eq!(net.commands(2), vec!["without-1"]);
}

// Reference: thesis §4.1 — a change takes effect when appended, so truncating its entry undoes it.
#[test]
fn a_truncated_change_is_undone() {
    let mut r = Raft::new(NodeId(2), ids(&[1, 2, 3]), config(), Default::default(), 1).unwrap();
    let change = Entry {
        index: 1,
        term: 1,
        kind: EntryKind::Membership,
        data: Bytes::from(postcard::to_allocvec(&ids(&[1, 2])).unwrap()),
    };
    let append = |term, entries| RaftMessage::AppendEntries {
        term,
        prev_log_index: 0,
        prev_log_term: 0,
        entries,
        leader_commit: 0,
        round: 0,
    };
    r.step(NodeId(1), append(1, vec![change]));
    assert_eq!(r.membership(), &ids(&[1, 2]));
    r.step(NodeId(3), append(2, vec![Entry::noop(1, 2)]));
    assert_eq!(r.membership(), &ids(&[1, 2, 3]));
}
