//! Leadership transfer (thesis §3.10): catch the transferee up, send TimeoutNow, refuse new
//! proposals meanwhile, give up after an election timeout.

use crate::network::{Network, config};
use conclave_core::{ConsensusError, NodeId, Protocol, Rejection, Role};
use conclave_raft::RaftMessage;

// Reference: thesis §3.10 — an up-to-date transferee is told to campaign at once, and wins even
// though the voters heard from the leader recently (the request is marked as a transfer).
#[test]
fn transfer_to_an_up_to_date_follower() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let term = net.raft(1).term();
    net.raft_mut(1).transfer_leadership(NodeId(2)).unwrap();
    net.process(NodeId(1));
    assert!(
        matches!(net.queue.front(), Some((_, to, RaftMessage::TimeoutNow { .. })) if *to == NodeId(2))
    );
    net.deliver_all();
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.raft(2).term(), term + 1);
    assert_eq!(net.raft(1).role(), Role::Follower);
    assert_eq!(net.raft(1).leader(), Some(NodeId(2)));
    // No pre-vote round was needed.
    let counters: std::collections::BTreeMap<_, _> = net.raft(2).counters().into_iter().collect();
    assert_eq!(counters["pre_votes_total"], 0);
}

// Reference: thesis §3.10 — a lagging transferee is first brought up to date; proposals are
// refused meanwhile so that it can catch up.
#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    net.raft_mut(1).transfer_leadership(NodeId(3)).unwrap();
    let refused = net.propose(1, "refused");
    net.process(NodeId(1));
    let not_leader = ConsensusError::NotLeader { leader: Some(NodeId(3)) };
    assert_eq!(net.node(1).rejected, vec![Rejection { request: refused, error: not_leader }]);
    net.heal();
    net.tick_all(5);
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.raft(3).last_index(), 7);
    net.propose(3, "after");
    net.deliver_all();
    assert_eq!(net.commands(1), vec!["c0", "c1", "c2", "c3", "c4", "after"]);
}

// Reference: thesis §3.10 — a transfer that does not finish within an election timeout is
// abandoned and the leader accepts proposals again.
#[test]
fn a_stuck_transfer_is_abandoned() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.isolate(3);
    net.raft_mut(1).transfer_leadership(NodeId(3)).unwrap();
    net.tick_all(11);
    assert_eq!(net.leader(), Some(1));
    net.propose(1, "accepted");
    net.deliver_all();
    assert_eq!(net.commands(2), vec!["accepted"]);
    // Transfers to itself or to a non-member are ignored.
    let _ = net.raft_mut(1).transfer_leadership(NodeId(1));
    let _ = net.raft_mut(1).transfer_leadership(NodeId(9));
    net.propose(1, "still-accepted");
    net.deliver_all();
    assert_eq!(net.commands(2), vec!["accepted", "still-accepted"]);
}

// Through the `Protocol` face, as the driver asks for it: only the leader hands over, and it
// says why it will not.
#[test]
fn the_protocol_face_refuses_what_it_cannot_hand_over() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let follower = Protocol::transfer_leadership(net.raft_mut(2), NodeId(3));
    assert_eq!(follower, Err(ConsensusError::NotLeader { leader: Some(NodeId(1)) }));
    let stranger = Protocol::transfer_leadership(net.raft_mut(1), NodeId(9));
    assert_eq!(stranger, Err(ConsensusError::Unavailable("node 9 is not a voter".into())));
    assert_eq!(Protocol::transfer_leadership(net.raft_mut(1), NodeId(1)), Ok(()));
    assert_eq!(net.leader(), Some(1));
    assert_eq!(Protocol::transfer_leadership(net.raft_mut(1), NodeId(3)), Ok(()));
    net.deliver_all();
    assert_eq!(net.leader(), Some(3));
}
