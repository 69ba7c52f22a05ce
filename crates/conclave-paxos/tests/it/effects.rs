//! Exact effects of single events on one replica, driven by hand.

use bytes::Bytes;
use conclave_core::{
    ConsensusError, Entry, EntryKind, Membership, NodeId, Protocol, Ready, Recovered, RequestId,
};
use conclave_paxos::{Ballot, HardState, Message, Paxos, PaxosConfig, PlantedBug};

fn members(n: u64) -> Membership {
    Membership::new((1..=n).map(NodeId))
}

fn replica(n: u64, config: PaxosConfig) -> Paxos {
    Paxos::new(NodeId(1), members(n), config, Recovered::default(), 42).unwrap()
}

fn step(node: &mut Paxos, from: u64, msg: Message) -> Ready<Message> {
    node.step(NodeId(from), msg);
    node.ready()
}

fn b(round: u64, node: u64) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn cmd(index: u64, ballot: Ballot, data: &'static str) -> Entry {
    Entry::command(index, ballot.to_u64(), Bytes::from_static(data.as_bytes()))
}

fn only_message(ready: &Ready<Message>) -> (NodeId, &Message) {
    assert_eq!(ready.messages.len(), 1, "expected one message, got {:?}", ready.messages);
    (ready.messages[0].to, &ready.messages[0].msg)
}

fn promised_in(ready: &Ready<Message>) -> Option<Ballot> {
    ready.hard_state.as_ref().map(|hs| HardState::decode(hs).unwrap().promised)
}

/// Node 1 follows node 2, leading at ballot 1.2, and accepted slots 1..=3 from it.
fn follower_with_three_slots(config: PaxosConfig) -> Paxos {
    let mut node = replica(3, config);
    let entries = vec![cmd(1, b(1, 2), "a"), cmd(2, b(1, 2), "b"), cmd(3, b(1, 2), "c")];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 1, commit: 0, entries });
    assert_eq!(promised_in(&ready), Some(b(1, 2)), "accepting raises the promise");
    assert_eq!(ready.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3]);
    node
}

// Reference: Paxos Made Simple §2.2, phase 1 (b); P1a.
#[test]
fn promise_reports_accepted_records_and_is_persisted_in_the_same_ready() {
    let mut node = follower_with_three_slots(PaxosConfig::default());
    let ready = step(&mut node, 2, Message::Prepare { ballot: b(2, 2), start: 2 });
    assert_eq!(promised_in(&ready), Some(b(2, 2)), "the promise is hard state of this Ready");
    let (to, msg) = only_message(&ready);
    assert_eq!(to, NodeId(2));
    assert_eq!(
        msg,
        &Message::Promise {
            ballot: b(2, 2),
            commit: 0,
            accepted: vec![cmd(2, b(1, 2), "b"), cmd(3, b(1, 2), "c")],
        }
    );
    assert_eq!(node.promised(), b(2, 2));
}

// Reference: Paxos Made Simple §2.2, P1a — ignore prepares ≤ and accepts < the promise.
#[test]
fn lower_or_equal_prepares_and_lower_accepts_are_refused() {
    let mut node = follower_with_three_slots(PaxosConfig::default());
    let _ = step(&mut node, 2, Message::Prepare { ballot: b(2, 2), start: 1 });
    let ready = step(&mut node, 2, Message::Prepare { ballot: b(2, 2), start: 1 });
    assert!(ready.hard_state.is_none());
    assert_eq!(
        only_message(&ready).1,
        &Message::Reject { ballot: b(2, 2), promised: b(2, 2), leader: Some(NodeId(2)) }
    );
    let entries = vec![cmd(4, b(1, 2), "d")];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 2, commit: 0, entries });
    assert!(ready.entries.is_empty(), "nothing accepted below the promise");
    assert!(
        matches!(only_message(&ready).1, Message::Reject { promised, .. } if *promised == b(2, 2))
    );
    assert!(node.accepted(4).is_none());
}

// Reference: Multi-Paxos leases — an acceptor that heard its leader refuses other proposers.
#[test]
fn a_loyal_acceptor_refuses_other_proposers_until_the_timeout() {
    let mut node = follower_with_three_slots(PaxosConfig::default());
    let ready = step(&mut node, 3, Message::Prepare { ballot: b(5, 3), start: 1 });
    assert!(ready.hard_state.is_none());
    assert_eq!(
        only_message(&ready).1,
        &Message::Reject { ballot: b(5, 3), promised: b(1, 2), leader: Some(NodeId(2)) }
    );
    // 15 ticks (the minimum timeout) without hearing node 2: node 1 may promise again. It may
    // also have started its own phase 1 meanwhile; the higher prepare still wins.
    for _ in 0..15 {
        node.tick();
        let _ = node.ready();
    }
    let ready = step(&mut node, 3, Message::Prepare { ballot: b(50, 3), start: 1 });
    assert_eq!(promised_in(&ready), Some(b(50, 3)));
    assert!(
        matches!(only_message(&ready).1, Message::Promise { accepted, .. } if accepted.len() == 3)
    );
}

// Reference: the planted bug breaks "persist before answering" (§2.2, P1a across crashes).
#[test]
fn planted_bug_answers_a_prepare_without_hard_state() {
    let config = PaxosConfig {
        planted_bug: Some(PlantedBug::AnswerPrepareBeforePersisting),
        ..PaxosConfig::default()
    };
    let mut node = follower_with_three_slots(config);
    let ready = step(&mut node, 2, Message::Prepare { ballot: b(2, 2), start: 1 });
    assert!(matches!(only_message(&ready).1, Message::Promise { .. }));
    assert!(ready.hard_state.is_none(), "the bug leaves the promise out of the hard state");
}

// Reference: Paxos Made Simple §2.2, P2c and §3 (gaps are filled with no-ops).
#[test]
fn new_leader_proposes_the_highest_ballot_value_per_slot_and_fills_gaps() {
    let mut node = replica(5, PaxosConfig::default());
    node.campaign();
    let ready = node.ready();
    let ballot = node.current_ballot();
    assert_eq!(ballot.node, NodeId(1));
    assert!(ready.hard_state.is_some(), "the round used is persisted before the prepares leave");
    let prepares: Vec<_> = ready.messages.iter().map(|m| (m.to, m.msg.clone())).collect();
    assert_eq!(prepares.len(), 4);
    assert!(prepares.iter().all(|(_, m)| *m == Message::Prepare { ballot, start: 1 }));
    assert_eq!(node.promised(), Ballot::ZERO, "a candidate promises itself only once it wins");

    let from2 = vec![cmd(1, b(1, 2), "a"), cmd(2, b(1, 2), "b"), cmd(5, b(1, 2), "e")];
    let ready = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: from2 });
    assert!(ready.messages.is_empty() && !node.is_leader());
    let from3 = vec![cmd(1, b(2, 3), "A"), cmd(3, b(1, 3), "c")];
    let ready = step(&mut node, 3, Message::Promise { ballot, commit: 0, accepted: from3 });
    assert!(node.is_leader());
    assert_eq!(promised_in(&ready), Some(ballot));
    let accept = ready
        .messages
        .iter()
        .find_map(|m| match &m.msg {
            Message::Accept { entries, .. } if m.to == NodeId(2) => Some(entries.clone()),
            _ => None,
        })
        .expect("an accept batch to node 2");
    let term = ballot.to_u64();
    assert_eq!(
        accept,
        vec![
            cmd(1, ballot, "A"),
            cmd(2, ballot, "b"),
            cmd(3, ballot, "c"),
            Entry::noop(4, term),
            cmd(5, ballot, "e"),
        ]
    );
    assert_eq!(ready.entries, accept, "the leader accepts its own proposals durably first");
}

// Reference: a learned (chosen) slot is adopted, not proposed again.
#[test]
fn new_leader_adopts_slots_a_promise_reports_as_chosen() {
    let mut node = replica(3, PaxosConfig::default());
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    let from2 = vec![cmd(1, b(1, 2), "a"), cmd(2, b(1, 2), "b")];
    let ready = step(&mut node, 2, Message::Promise { ballot, commit: 1, accepted: from2 });
    assert!(node.is_leader());
    assert_eq!(ready.committed, vec![cmd(1, Ballot::ZERO, "a")], "committed entries carry term 0");
    let accepted: Vec<_> = ready
        .messages
        .iter()
        .filter_map(|m| match &m.msg {
            Message::Accept { entries, .. } => Some(entries.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, vec![vec![cmd(2, ballot, "b")]; 2]);
}

// Reference: the planted bug breaks P2c: the leader ignores what promises reported.
#[test]
fn planted_bug_makes_the_leader_use_its_own_value() {
    let config = PaxosConfig {
        planted_bug: Some(PlantedBug::IgnoreAcceptedValuesInPromises),
        ..PaxosConfig::default()
    };
    let mut node = replica(3, config);
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    let from2 = vec![cmd(1, b(1, 2), "a")];
    let _ = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: from2 });
    assert!(node.is_leader());
    node.propose(RequestId(1), Bytes::from_static(b"mine"));
    let ready = node.ready();
    assert_eq!(ready.entries, vec![cmd(1, ballot, "mine")]);
}

// Reference: acceptors accept in slot order, so the stored log has no holes.
#[test]
fn an_accept_past_a_hole_is_not_accepted() {
    let mut node = replica(3, PaxosConfig::default());
    let entries = vec![cmd(3, b(1, 2), "c")];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 7, commit: 0, entries });
    assert!(ready.entries.is_empty());
    assert_eq!(
        only_message(&ready).1,
        &Message::Accepted {
            ballot: b(1, 2),
            tick: 7,
            first: 3,
            last: 2,
            commit: 0,
            log_last: 0,
            need_from: None
        }
    );
    let entries = vec![cmd(1, b(1, 2), "a"), cmd(2, b(1, 2), "b")];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 8, commit: 1, entries });
    assert_eq!(ready.entries.len(), 2);
    assert_eq!(ready.committed, vec![cmd(1, Ballot::ZERO, "a")], "commit 1 learned with the batch");
    assert!(matches!(
        only_message(&ready).1,
        Message::Accepted { first: 1, last: 2, commit: 1, .. }
    ));
}

// Reference: Paxos Made Simple §2.3 — learners learn from the distinguished proposer.
#[test]
fn learner_learns_matching_ballots_and_asks_for_the_rest() {
    let mut node = follower_with_three_slots(PaxosConfig::default());
    let ready = step(&mut node, 2, Message::Heartbeat { ballot: b(1, 2), tick: 3, commit: 2 });
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    // A new leader (ballot 3.3) says slot 3 is chosen; node 1's record is from ballot 1.2, so
    // it cannot know the value and asks for it.
    let ready = step(&mut node, 3, Message::Heartbeat { ballot: b(3, 3), tick: 1, commit: 4 });
    assert!(ready.committed.is_empty());
    assert!(matches!(
        only_message(&ready).1,
        Message::HeartbeatAck { commit: 2, need_from: Some(3), .. }
    ));
    let entries = vec![cmd(3, b(3, 3), "C"), Entry::noop(4, b(3, 3).to_u64())];
    let ready =
        step(&mut node, 3, Message::Chosen { ballot: b(3, 3), tick: 2, commit: 4, entries });
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(ready.committed[0].data, Bytes::from_static(b"C"));
    assert_eq!(ready.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(node.commit_index(), 4);
}

#[test]
fn proposals_are_forwarded_to_the_known_leader_or_refused() {
    let mut node = replica(3, PaxosConfig::default());
    node.propose(RequestId(9), Bytes::from_static(b"x"));
    let ready = node.ready();
    assert_eq!(ready.rejected.len(), 1);
    assert_eq!(ready.rejected[0].error, ConsensusError::NotLeader { leader: None });

    let _ = step(&mut node, 2, Message::Heartbeat { ballot: b(1, 2), tick: 1, commit: 0 });
    node.propose(RequestId(10), Bytes::from_static(b"y"));
    node.propose(RequestId(11), Bytes::from_static(b"z"));
    let ready = node.ready();
    assert!(ready.rejected.is_empty() && ready.messages.is_empty());
    assert_eq!(ready.eager_messages.len(), 1, "a forward waits for no sync");
    let (to, msg) = (ready.eager_messages[0].to, &ready.eager_messages[0].msg);
    assert_eq!(to, NodeId(2));
    let Message::Forward { commands, seq, .. } = msg else { panic!("expected a forward: {msg:?}") };
    assert_eq!(commands, &vec![Bytes::from_static(b"y"), Bytes::from_static(b"z")]);
    assert_eq!(*seq, 1);
}

// A duplicated forward must not be proposed twice (it would be applied twice).
#[test]
fn a_leader_takes_a_forwarded_batch_once() {
    let mut node = replica(3, PaxosConfig::default());
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    let _ = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: vec![] });
    assert!(node.is_leader());
    let forward =
        Message::Forward { session: 9, seq: 1, commands: vec![Bytes::from_static(b"once")] };
    let first = step(&mut node, 2, forward.clone());
    assert_eq!(first.entries, vec![cmd(1, ballot, "once")]);
    let again = step(&mut node, 2, forward);
    assert!(again.entries.is_empty() && again.messages.is_empty(), "the duplicate is dropped");
}

#[test]
fn promise_and_accepted_records_survive_a_restart() {
    let mut node = follower_with_three_slots(PaxosConfig::default());
    let mut stored = Recovered::default();
    let ready = step(&mut node, 2, Message::Prepare { ballot: b(2, 2), start: 1 });
    stored.hard_state = ready.hard_state;
    stored.entries = vec![cmd(1, b(1, 2), "a"), cmd(2, b(1, 2), "b"), cmd(3, b(1, 2), "c")];
    let restarted = Paxos::new(NodeId(1), members(3), PaxosConfig::default(), stored, 1).unwrap();
    assert_eq!(restarted.promised(), b(2, 2));
    let (ballot, entry) = restarted.accepted(2).unwrap();
    assert_eq!(ballot, b(1, 2));
    assert_eq!(entry.data, Bytes::from_static(b"b"));
    assert_eq!(restarted.commit_index(), 0, "chosen slots are learned again from the leader");
}

#[test]
fn status_counters_and_guarantees() {
    let mut node = replica(3, PaxosConfig::default());
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    let _ = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: vec![] });
    let status = node.status();
    assert_eq!(status.role, conclave_core::Role::Leader);
    assert_eq!(status.leader, Some(NodeId(1)));
    assert_eq!(status.term, ballot.round);
    assert_eq!(status.members, vec![NodeId(1), NodeId(2), NodeId(3)]);
    let counters = node.counters();
    assert!(counters.contains(&("phase1_total", 1)));
    assert!(counters.contains(&("ballot", ballot.round)));
    assert!(counters.contains(&("leader_changes_total", 1)));
    let g = node.guarantees();
    assert!(g.linearizable_writes && g.linearizable_reads && g.has_leader);
    assert_eq!(g.fault_tolerance, Some(1));
    assert_eq!(EntryKind::Noop, Entry::noop(1, 1).kind);
}

fn accepts_to(msgs: &[conclave_core::Envelope<Message>], to: u64) -> Vec<Vec<u64>> {
    msgs.iter()
        .filter(|m| m.to == NodeId(to))
        .filter_map(|m| match &m.msg {
            Message::Accept { entries, .. } => Some(entries.iter().map(|e| e.index).collect()),
            _ => None,
        })
        .collect()
}

// Reference: Raft thesis §10.2.1 applied to phase 2 — the leader's Accepts may leave before its
// own records are durable, but then its own vote counts only once they are (`advance`); and
// never before its promise of the ballot is durable, since phase 1 counted it as a promiser.
#[test]
fn leader_sends_accepts_eagerly_once_its_promise_is_durable_and_votes_once_synced() {
    let mut node = replica(3, PaxosConfig::default());
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    node.advance();
    node.step(NodeId(2), Message::Promise { ballot, commit: 0, accepted: vec![] });
    assert!(node.is_leader());
    node.propose(RequestId(1), Bytes::from_static(b"x"));
    let ready = node.ready();
    assert_eq!(promised_in(&ready), Some(ballot), "the promise is persisted in this Ready");
    assert!(ready.must_sync());
    assert!(accepts_to(&ready.eager_messages, 2).is_empty(), "not before the promise is durable");
    assert_eq!(accepts_to(&ready.messages, 2), vec![vec![1]]);
    node.advance();
    assert_eq!(node.commit_index(), 0, "a lone vote chooses nothing in a 3-node cluster");

    node.propose(RequestId(2), Bytes::from_static(b"y"));
    let ready = node.ready();
    assert_eq!(ready.entries, vec![cmd(2, ballot, "y")]);
    assert_eq!(accepts_to(&ready.eager_messages, 2), vec![vec![2]], "sent while writing");
    assert_eq!(accepts_to(&ready.eager_messages, 3), vec![vec![2]]);
    assert!(accepts_to(&ready.messages, 2).is_empty());
    // Node 2 accepted both slots before this leader's write of slot 2 is durable: slot 1
    // (durable here) is chosen, slot 2 is not yet.
    let accepted = Message::Accepted {
        ballot,
        tick: 0,
        first: 1,
        last: 2,
        commit: 0,
        log_last: 2,
        need_from: None,
    };
    let ready = step(&mut node, 2, accepted);
    assert_eq!(node.commit_index(), 1, "the leader's own vote for slot 2 is not durable yet");
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
    node.advance();
    assert_eq!(node.commit_index(), 2, "durable now: slot 2 is chosen");
    // Nothing new to propose: a heartbeat tells the learners at once, without waiting for
    // the heartbeat timer.
    let ready = node.ready();
    assert_eq!(ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2]);
    let beats: Vec<_> = ready
        .eager_messages
        .iter()
        .filter(|m| matches!(m.msg, Message::Heartbeat { commit: 2, .. }))
        .map(|m| m.to)
        .collect();
    assert_eq!(beats, vec![NodeId(2), NodeId(3)]);
}

// A lone acceptor chooses its own proposals, but only once they are durable.
#[test]
fn a_lone_leader_chooses_once_its_write_is_durable() {
    let mut node = replica(1, PaxosConfig::default());
    node.campaign();
    let _ = node.ready();
    node.advance();
    assert!(node.is_leader());
    node.propose(RequestId(1), Bytes::from_static(b"x"));
    let ready = node.ready();
    assert_eq!(ready.entries.len(), 1);
    assert!(ready.committed.is_empty(), "not chosen before the write is durable");
    assert_eq!(node.commit_index(), 0);
    node.advance();
    assert_eq!(node.commit_index(), 1);
    assert!(node.has_ready());
    assert_eq!(node.ready().committed.len(), 1);
}

// A leader whose acceptors keep answering, however late, is not cut off: under load a reply
// may echo a tick older than the minimum timeout. One that hears nothing steps down.
#[test]
fn a_leader_steps_down_when_unheard_not_when_answered_late() {
    let mut node = replica(3, PaxosConfig::default());
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    node.advance();
    let _ = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: vec![] });
    node.advance();
    assert!(node.is_leader());
    // 40 ticks (the minimum timeout is 15), with node 2 answering every tick, but always
    // echoing tick 0: the replies are late, not missing.
    for _ in 0..40 {
        node.tick();
        let _ = step(
            &mut node,
            2,
            Message::HeartbeatAck { ballot, tick: 0, commit: 0, log_last: 0, need_from: None },
        );
        node.advance();
    }
    assert!(node.is_leader(), "answered late is still answered");
    assert!(!node.has_lease(), "but the lease counts from the echoed tick");
    for _ in 0..15 {
        node.tick();
        let _ = node.ready();
        node.advance();
    }
    assert!(!node.is_leader(), "unheard for a minimum timeout: steps down");
    assert!(node.counters().contains(&("quorum_step_downs_total", 1)));
}

/// Node 1, following node 2 (leading at ballot 1.2), with nothing proposed yet.
fn following_node_2() -> Paxos {
    let mut node = replica(3, PaxosConfig::default());
    let _ = step(&mut node, 2, Message::Heartbeat { ballot: b(1, 2), tick: 1, commit: 0 });
    node
}

/// A command node 1 proposes for its caller `request`, with the header the driver adds.
fn own_proposal(request: u64) -> Bytes {
    conclave_core::proposal::Proposal {
        origin: NodeId(1),
        request: RequestId(request),
        command: Bytes::from("x"),
    }
    .encode()
}

// A proposal forwarded to a leader that is then replaced may or may not be chosen: its caller
// learns that at once (a timeout: outcome unknown) instead of waiting for the request timeout.
// One seen chosen meanwhile is not refused.
#[test]
fn forwarded_proposals_are_answered_as_unknown_when_the_leader_changes() {
    let mut node = following_node_2();
    node.propose(RequestId(10), own_proposal(10));
    node.propose(RequestId(11), own_proposal(11));
    let ready = node.ready();
    assert!(ready.rejected.is_empty() && ready.eager_messages.len() == 1);
    // Slot 1 (request 10) is chosen and learned here.
    let entries = vec![Entry::command(1, b(1, 2).to_u64(), own_proposal(10))];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 2, commit: 1, entries });
    assert_eq!(ready.committed.len(), 1);
    // Node 3 takes over: request 11's fate is unknown.
    let ready = step(&mut node, 3, Message::Heartbeat { ballot: b(2, 3), tick: 1, commit: 1 });
    assert_eq!(ready.rejected.len(), 1, "{:?}", ready.rejected);
    assert_eq!(ready.rejected[0].request, RequestId(11));
    assert!(matches!(ready.rejected[0].error, ConsensusError::Timeout(_)));
}

// A deposed leader answers the callers of its proposals in flight as "unknown", and those still
// queued as "not leader" (never proposed).
#[test]
fn a_deposed_leader_answers_its_waiting_callers() {
    let mut node = replica(3, PaxosConfig { max_inflight_slots: 1, ..PaxosConfig::default() });
    node.campaign();
    let ballot = node.current_ballot();
    let _ = node.ready();
    let _ = step(&mut node, 2, Message::Promise { ballot, commit: 0, accepted: vec![] });
    node.propose(RequestId(1), Bytes::from_static(b"in flight"));
    node.propose(RequestId(2), Bytes::from_static(b"queued"));
    let _ = node.ready();
    let ready = step(&mut node, 3, Message::Prepare { ballot: b(9, 3), start: 1 });
    assert!(ready.rejected.is_empty(), "a leader is loyal to itself: {:?}", ready.rejected);
    let ready = step(&mut node, 2, Message::Reject { ballot, promised: b(9, 3), leader: None });
    assert!(!node.is_leader());
    let mut rejected: Vec<_> = ready.rejected.iter().map(|r| (r.request, &r.error)).collect();
    rejected.sort_by_key(|(r, _)| *r);
    assert!(matches!(
        rejected[..],
        [
            (RequestId(1), ConsensusError::Timeout(_)),
            (RequestId(2), ConsensusError::NotLeader { .. })
        ]
    ));
}

// A follower that suspects its leader wrongly (the leader was only slow) campaigns without
// failing its callers: its forwarded proposals stay with that leader, new ones keep going
// there, and hearing the leader again ends the campaign.
#[test]
fn a_candidate_keeps_forwarding_to_the_leader_it_followed() {
    let mut node = following_node_2();
    node.propose(RequestId(10), own_proposal(10));
    let _ = node.ready();

    node.campaign();
    let ready = node.ready();
    assert!(ready.rejected.is_empty(), "campaigning fails no caller: {:?}", ready.rejected);
    assert_eq!(node.status().leader, Some(NodeId(2)), "the leader it followed stays its leader");
    node.propose(RequestId(11), own_proposal(11));
    let ready = node.ready();
    assert!(ready.rejected.is_empty(), "{:?}", ready.rejected);
    let forwards: Vec<_> = ready
        .eager_messages
        .iter()
        .filter(|e| matches!(e.msg, Message::Forward { .. }))
        .map(|e| e.to)
        .collect();
    assert_eq!(forwards, vec![NodeId(2)], "a candidate forwards to the leader it followed");

    // The leader is alive after all: the campaign ends and nothing was lost on the way.
    let entries = vec![
        Entry::command(1, b(1, 2).to_u64(), own_proposal(10)),
        Entry::command(2, b(1, 2).to_u64(), own_proposal(11)),
    ];
    let ready =
        step(&mut node, 2, Message::Accept { ballot: b(1, 2), tick: 2, commit: 2, entries });
    assert!(ready.rejected.is_empty(), "{:?}", ready.rejected);
    assert_eq!(ready.committed.len(), 2);
    assert!(!node.is_leader());
    assert_eq!(node.status().leader, Some(NodeId(2)));
}
