//! Log replication (§5.3): the consistency check, conflict back-off with a hint, pipelining,
//! batching, heartbeats carrying the commit index, and forwarded proposals.

use crate::election::{hard_state, sent};
use crate::network::{Network, config, ids};
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{ConsensusError, Entry, NodeId, Protocol, Recovered, RequestId, Role};
use conclave_raft::{HardState, Raft, RaftConfig, RaftMessage};

fn cmd(index: u64, term: u64, s: &'static str) -> Entry {
    Entry::command(index, term, Bytes::from_static(s.as_bytes()))
}

fn follower_with_log(terms: &[u64], term: u64) -> Raft {
    let entries = terms.iter().enumerate().map(|(i, &t)| Entry::noop(i as u64 + 1, t)).collect();
    let hs = HardState { term, voted_for: None, commit: 0 }.encode();
    let recovered = Recovered { hard_state: Some(hs), snapshot: None, entries };
    Raft::new(NodeId(2), ids(&[1, 2, 3]), config(), recovered, 1).unwrap()
}

fn append(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> RaftMessage {
    RaftMessage::AppendEntries {
        term,
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit: commit,
        round: 7,
    }
}

// Reference: §5.3 — a follower accepts entries after a matching (index, term), persists them in
// the same Ready as its acknowledgement, and learns the commit index up to what matched.
#[test]
fn follower_appends_and_acknowledges_in_one_ready() {
    let mut r = follower_with_log(&[1], 1);
    r.step(NodeId(1), append(1, (1, 1), vec![cmd(2, 1, "a"), cmd(3, 1, "b")], 2));
    let ready = r.ready();
    assert_eq!(ready.entries, vec![cmd(2, 1, "a"), cmd(3, 1, "b")]);
    assert_eq!(hard_state(&ready), Some(HardState { term: 1, voted_for: None, commit: 2 }));
    assert_eq!(ready.committed, vec![Entry::noop(1, 1), cmd(2, 1, "a")]);
    let ack = RaftMessage::AppendEntriesResponse {
        term: 1,
        success: true,
        match_index: 3,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
        round: 7,
    };
    assert_eq!(sent(&ready), vec![(1, ack)]);
    assert_eq!(r.leader(), Some(NodeId(1)));
}

// Reference: §5.3 — on a mismatch the follower answers with the term of its conflicting entry
// and the first index it holds of that term, so the leader can skip the whole term.
#[test]
fn conflict_answer_carries_term_and_its_first_index() {
    let mut r = follower_with_log(&[1, 2, 2, 2, 2], 3);
    r.step(NodeId(1), append(3, (5, 3), vec![], 0));
    let reject = RaftMessage::AppendEntriesResponse {
        term: 3,
        success: false,
        match_index: 0,
        reject_index: 5,
        conflict_term: Some(2),
        conflict_index: 2,
        round: 7,
    };
    assert_eq!(sent(&r.ready()), vec![(1, reject)]);

    // Too short a log: the hint is its last index + 1.
    r.step(NodeId(1), append(3, (9, 3), vec![], 0));
    let reject = RaftMessage::AppendEntriesResponse {
        term: 3,
        success: false,
        match_index: 0,
        reject_index: 9,
        conflict_term: None,
        conflict_index: 6,
        round: 7,
    };
    assert_eq!(sent(&r.ready()), vec![(1, reject)]);
}

// Reference: §5.3 — conflicting entries and all that follow them are deleted; the Ready re-writes
// the log from the conflict on (the store drops its suffix from the first entry's index).
#[test]
fn follower_truncates_a_conflicting_suffix() {
    let mut r = follower_with_log(&[1, 2, 2, 2], 3);
    r.step(NodeId(1), append(3, (2, 2), vec![Entry::noop(3, 2), Entry::noop(4, 3)], 0));
    let ready = r.ready();
    assert_eq!(ready.entries, vec![Entry::noop(4, 3)]);
    assert_eq!(r.last_index(), 4);
    assert_eq!(r.term_at(4), Some(3));
    // A stale, shorter append from the same leader truncates nothing.
    r.step(NodeId(1), append(3, (1, 1), vec![Entry::noop(2, 2)], 0));
    assert!(r.ready().entries.is_empty());
    assert_eq!(r.last_index(), 4);
}

// Reference: §5.3 and Figure 7 — a leader brings every follower's log to match its own, however
// they diverged, and the hint keeps the number of round trips per conflicting term small.
#[test]
fn leader_repairs_divergent_followers_with_few_round_trips() {
    let mut net = Network::new(3, RaftConfig { pre_vote: false, ..config() });
    let store = |terms: &[u64], term: u64| {
        let entries =
            terms.iter().enumerate().map(|(i, &t)| Entry::noop(i as u64 + 1, t)).collect();
        crate::network::Store {
            hard_state: Some(HardState { term, voted_for: None, commit: 0 }.encode()),
            snapshot: None,
            entries,
        }
    };
    // Leader-to-be as in Figure 7 (its log ends in term 6); followers as in (e) and (f).
    net.nodes.get_mut(&NodeId(1)).unwrap().store = store(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 6);
    net.nodes.get_mut(&NodeId(2)).unwrap().store = store(&[1, 1, 1, 4, 4, 4, 4], 6);
    net.nodes.get_mut(&NodeId(3)).unwrap().store = store(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 6);
    for id in 1..=3 {
        net.restart(id);
    }
    net.elect(1);
    let rejections = net
        .delivered
        .iter()
        .filter(|(_, to, m)| {
            *to == NodeId(1)
                && matches!(m, RaftMessage::AppendEntriesResponse { success: false, .. })
        })
        .count();
    assert!(rejections <= 5, "{rejections} rejections");
    for id in 2..=3 {
        assert_eq!(net.raft(id).last_index(), 11);
        for index in 1..=11 {
            assert_eq!(net.raft(id).term_at(index), net.raft(1).term_at(index), "index {index}");
        }
    }
    net.assert_state_machine_safety();
}

// Reference: §5.3 — proposals made before effects are collected travel in one AppendEntries per
// follower (batching), split by `max_entries_per_append`.
#[test]
fn proposals_are_batched_per_append() {
    let mut net = Network::new(3, RaftConfig { max_entries_per_append: 4, ..config() });
    net.elect(1);
    net.delivered.clear();
    for i in 0..10 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_all();
    let appends: Vec<usize> = net
        .delivered
        .iter()
        .filter_map(|(_, to, m)| match m {
            RaftMessage::AppendEntries { entries, .. }
                if *to == NodeId(2) && !entries.is_empty() =>
            {
                Some(entries.len())
            }
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![4, 4, 2]);
    assert_eq!(net.commands(2).len(), 10);
}

// Reference: §5.3 (pipelining, as in the thesis §10.2.2) — the leader sends further appends
// without waiting for acknowledgements, up to `max_inflight_appends`, then pauses.
#[test]
fn pipelining_stops_at_the_inflight_window() {
    let mut net = Network::new(
        3,
        RaftConfig { max_entries_per_append: 1, max_inflight_appends: 3, ..config() },
    );
    net.elect(1);
    net.isolate(2);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, &format!("c{i}"));
    }
    net.process(NodeId(1));
    let to_2 = net.queue.iter().filter(|(_, to, _)| *to == NodeId(2)).count();
    assert_eq!(to_2, 3);
    net.queue.clear();
    // Once the links heal, the acknowledgements reopen the window and everything commits.
    net.heal();
    net.tick_all(10);
    assert_eq!(net.commands(3).len(), 10);
}

// Reference: §5.3 — heartbeats carry the commit index, capped at what the follower holds.
#[test]
fn heartbeats_carry_the_commit_index() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.propose(1, "x");
    // Drop the empty append that would announce the commit, so only heartbeats can.
    net.deliver_filtered(
        |_, _, m| !matches!(m, RaftMessage::AppendEntries { entries, .. } if entries.is_empty()),
    );
    assert_eq!(net.raft(1).commit_index(), 2);
    assert_eq!(net.raft(2).commit_index(), 1);
    net.tick_all(2);
    let heartbeat_commits: Vec<u64> = net
        .delivered
        .iter()
        .filter_map(|(_, _, m)| match m {
            RaftMessage::Heartbeat { commit, .. } => Some(*commit),
            _ => None,
        })
        .collect();
    assert!(heartbeat_commits.contains(&2));
    assert_eq!(net.raft(2).commit_index(), 2);
    assert_eq!(net.commands(2), vec!["x"]);
}

// Reference: §5.3 — lost AppendEntries are retried: heartbeats reveal the gap and the leader
// probes back.
#[test]
fn lost_appends_are_recovered() {
    let mut net = Network::new(3, config());
    net.elect(1);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    net.deliver_filtered(|_, to, m| {
        !(to == NodeId(3) && matches!(m, RaftMessage::AppendEntries { .. }))
    });
    assert_eq!(net.raft(3).last_index(), 1);
    net.propose(1, "after");
    net.tick_all(10);
    assert_eq!(net.commands(3), vec!["c0", "c1", "c2", "c3", "c4", "after"]);
    net.assert_state_machine_safety();
}

// Reference: §5.1 ("the leader handles all client requests") — a follower forwards a proposal
// to its leader; the entry keeps the follower's header, so the follower answers its caller when
// it applies the entry.
#[test]
fn followers_forward_proposals() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let request = net.propose(2, "from-2");
    net.deliver_all();
    let applied = net.node(2).applied.last().unwrap().2.clone();
    let proposal = Proposal::decode(&applied).unwrap();
    assert_eq!((proposal.origin, proposal.request), (NodeId(2), request));
    assert_eq!(net.commands(1), vec!["from-2"]);
}

// A replica that knows no leader refuses at once, so the client can retry elsewhere.
#[test]
fn proposals_without_a_leader_are_refused() {
    let mut net = Network::new(3, config());
    let request = net.propose(2, "lost");
    net.process_all();
    assert_eq!(
        net.node(2).rejected,
        vec![conclave_core::Rejection {
            request,
            error: ConsensusError::NotLeader { leader: None }
        }]
    );
    // A replica that is not the leader drops a forwarded proposal rather than refuse it: the
    // message may be a duplicate of one it appended while it led, so "not applied" could be
    // false; the client's timeout ("possibly applied") is always true.
    let mut old = Raft::new(NodeId(1), ids(&[1, 2, 3]), config(), Recovered::default(), 1).unwrap();
    old.step(NodeId(2), RaftMessage::Propose { request: RequestId(9), command: Bytes::new() });
    let ready = old.ready();
    assert!(sent(&ready).is_empty() && ready.rejected.is_empty());
    assert_eq!(old.role(), Role::Follower);
}

// Reference: a network may duplicate messages; a duplicated forwarded proposal is appended once.
#[test]
fn a_duplicated_forwarded_proposal_is_appended_once() {
    let mut r = leader();
    let before = r.last_index();
    for _ in 0..2 {
        r.step(
            NodeId(2),
            RaftMessage::Propose { request: RequestId(7), command: Bytes::from_static(b"x") },
        );
    }
    assert_eq!(r.last_index(), before + 1);
}

/// A leader of term 1 over voters 1, 2 and 3 whose no-op (index 1) both followers hold.
fn leader() -> Raft {
    let config = RaftConfig { pre_vote: false, ..config() };
    let mut r = Raft::new(NodeId(1), ids(&[1, 2, 3]), config, Recovered::default(), 1).unwrap();
    crate::election::tick_until_ready(&mut r);
    r.step(NodeId(2), RaftMessage::RequestVoteResponse { term: 1, granted: true, pre_vote: false });
    for follower in [2, 3] {
        r.step(NodeId(follower), ack(1, 0));
    }
    r.ready();
    r.advance();
    assert_eq!((r.role(), r.commit_index()), (Role::Leader, 1));
    r
}

fn ack(match_index: u64, round: u64) -> RaftMessage {
    RaftMessage::AppendEntriesResponse {
        term: 1,
        success: true,
        match_index,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
        round,
    }
}

// Reference: §5.3 and §5.4.2 — the leader's exact effects for one proposal: the entry to persist
// and one AppendEntries per follower, which may leave before the entry is durable (thesis
// §10.2.1); then, on one acknowledgement once its own write is durable, the commit (a hard state
// that needs no sync of its own, and the committed entry) and an empty AppendEntries telling the
// followers.
#[test]
fn leader_effects_for_one_proposal() {
    let mut r = leader();
    r.propose(RequestId(1), Bytes::from_static(b"x"));
    let ready = r.ready();
    assert_eq!(ready.entries, vec![cmd(2, 1, "x")]);
    assert_eq!(ready.hard_state, None);
    assert!(ready.committed.is_empty());
    // No heartbeat round has started yet, so the appends carry round 0.
    let leader_append = |prev_log_index, entries, leader_commit| RaftMessage::AppendEntries {
        term: 1,
        prev_log_index,
        prev_log_term: 1,
        entries,
        leader_commit,
        round: 0,
    };
    let to_both = |m: RaftMessage| vec![(2, m.clone()), (3, m)];
    assert_eq!(sent(&ready), to_both(leader_append(1, vec![cmd(2, 1, "x")], 1)));
    assert!(ready.messages.is_empty(), "the appends are eager");

    // Until its own write is durable, the leader counts only follower 2: no majority.
    r.step(NodeId(2), ack(2, 0));
    let ready = r.ready();
    assert!(ready.committed.is_empty() && ready.hard_state.is_none());
    r.advance();
    let ready = r.ready();
    assert_eq!(
        hard_state(&ready),
        Some(HardState { term: 1, voted_for: Some(NodeId(1)), commit: 2 })
    );
    assert!(ready.hard_state_lazy && !ready.must_sync());
    assert_eq!(ready.committed, vec![cmd(2, 1, "x")]);
    assert_eq!(sent(&ready), to_both(leader_append(2, vec![], 2)));
}

// Reference: thesis §10.2.1 — an entry stored by a majority of the other servers commits even
// before the leader's own write is durable.
#[test]
fn a_majority_of_followers_commits_without_the_leaders_disk() {
    let mut r = leader();
    r.propose(RequestId(1), Bytes::from_static(b"x"));
    let _ = r.ready();
    r.step(NodeId(2), ack(2, 0));
    r.step(NodeId(3), ack(2, 0));
    assert_eq!(r.ready().committed, vec![cmd(2, 1, "x")]);
}
