//! Leader election: §5.2, the election restriction §5.4.1, pre-vote (thesis §9.6),
//! check-quorum (thesis §6.2) and vote refusal while a leader is alive (thesis §4.2.3).

use crate::network::{Network, config, ids};
use conclave_core::{Entry, NodeId, Protocol, Ready, Recovered, Role};
use conclave_raft::{HardState, Raft, RaftConfig, RaftMessage};

pub fn raft(id: u64, voters: &[u64], config: RaftConfig) -> Raft {
    Raft::new(NodeId(id), ids(voters), config, Recovered::default(), 1).unwrap()
}

/// Ticks until the replica has something to say (an election timeout fired).
pub fn tick_until_ready(r: &mut Raft) -> Ready<RaftMessage> {
    for _ in 0..1000 {
        r.tick();
        if r.has_ready() {
            return r.ready();
        }
    }
    panic!("no election timeout fired");
}

pub fn hard_state(ready: &Ready<RaftMessage>) -> Option<HardState> {
    ready.hard_state.as_ref().map(|b| HardState::decode(b).unwrap())
}

pub fn sent(ready: &Ready<RaftMessage>) -> Vec<(u64, RaftMessage)> {
    ready.eager_messages.iter().chain(&ready.messages).map(|e| (e.to.0, e.msg.clone())).collect()
}

fn vote_request(term: u64, pre_vote: bool) -> RaftMessage {
    RaftMessage::RequestVote {
        term,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote,
        transfer: false,
    }
}

// Reference: §5.2 — a lone voter wins at once; §5.4.2/§8 — a new leader appends a no-op, which
// commits once its write is durable.
#[test]
fn single_voter_elects_itself_and_commits_a_noop() {
    let mut r = raft(1, &[1], config());
    let ready = tick_until_ready(&mut r);
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(
        hard_state(&ready),
        Some(HardState { term: 1, voted_for: Some(NodeId(1)), commit: 0 })
    );
    assert_eq!(ready.entries, vec![Entry::noop(1, 1)]);
    assert!(ready.committed.is_empty());
    assert!(sent(&ready).is_empty());
    r.advance();
    let ready = r.ready();
    assert_eq!(ready.committed, vec![Entry::noop(1, 1)]);
    assert!(ready.hard_state_lazy, "only the commit index moved");
    let counters: std::collections::BTreeMap<_, _> = r.counters().into_iter().collect();
    assert_eq!(counters["elections_total"], 1);
    assert_eq!(counters["pre_votes_total"], 1);
    assert_eq!(counters["leader_changes_total"], 1);
}

// Reference: thesis §9.6 — a pre-candidate asks about term + 1 without entering it, so it
// persists nothing.
#[test]
fn pre_vote_round_changes_no_durable_state() {
    let mut r = raft(1, &[1, 2, 3], config());
    let ready = tick_until_ready(&mut r);
    assert!(r.is_pre_candidate());
    assert_eq!(r.term(), 0);
    assert_eq!(ready.hard_state, None);
    assert_eq!(sent(&ready), vec![(2, vote_request(1, true)), (3, vote_request(1, true))]);

    // One grant makes a majority with its own: now a real election in term 1.
    r.step(NodeId(2), RaftMessage::RequestVoteResponse { term: 1, granted: true, pre_vote: true });
    let ready = r.ready();
    assert_eq!(r.role(), Role::Candidate);
    assert!(!r.is_pre_candidate());
    assert_eq!(
        hard_state(&ready),
        Some(HardState { term: 1, voted_for: Some(NodeId(1)), commit: 0 })
    );
    assert_eq!(sent(&ready), vec![(2, vote_request(1, false)), (3, vote_request(1, false))]);

    // Reference: §5.2 — a majority of votes wins; §5.3 — the leader probes from its last index.
    r.step(NodeId(3), RaftMessage::RequestVoteResponse { term: 1, granted: true, pre_vote: false });
    let ready = r.ready();
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(ready.entries, vec![Entry::noop(1, 1)]);
    let append = |to| {
        (
            to,
            RaftMessage::AppendEntries {
                term: 1,
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry::noop(1, 1)],
                leader_commit: 0,
                round: 0,
            },
        )
    };
    assert_eq!(sent(&ready), vec![append(2), append(3)]);
}

// Reference: Figure 2 "RequestVote RPC" and §5.1 — the vote is durable before the answer leaves:
// both are in one Ready, whose hard state is persisted before its messages are sent.
#[test]
fn vote_is_in_the_same_ready_as_its_response() {
    let mut r = raft(2, &[1, 2, 3], config());
    r.step(NodeId(1), vote_request(1, false));
    let ready = r.ready();
    assert_eq!(
        hard_state(&ready),
        Some(HardState { term: 1, voted_for: Some(NodeId(1)), commit: 0 })
    );
    assert_eq!(
        sent(&ready),
        vec![(1, RaftMessage::RequestVoteResponse { term: 1, granted: true, pre_vote: false })]
    );
    assert!(ready.must_sync());
}

// Reference: §5.2 — each server votes for at most one candidate in a term.
#[test]
fn one_vote_per_term() {
    let mut r = raft(2, &[1, 2, 3], config());
    r.step(NodeId(1), vote_request(1, false));
    r.ready();
    r.step(NodeId(3), vote_request(1, false));
    let ready = r.ready();
    assert_eq!(
        sent(&ready),
        vec![(3, RaftMessage::RequestVoteResponse { term: 1, granted: false, pre_vote: false })]
    );
    // Asking again is answered the same way, and the vote stands.
    r.step(NodeId(1), vote_request(1, false));
    assert_eq!(
        sent(&r.ready()),
        vec![(1, RaftMessage::RequestVoteResponse { term: 1, granted: true, pre_vote: false })]
    );
    assert_eq!(r.voted_for(), Some(NodeId(1)));
}

// Reference: §5.4.1 — a voter denies a candidate whose log is less up-to-date than its own.
#[test]
fn election_restriction_denies_stale_logs() {
    let hs = HardState { term: 2, voted_for: None, commit: 0 }.encode();
    let recovered = Recovered {
        hard_state: Some(hs),
        snapshot: None,
        entries: vec![Entry::noop(1, 1), Entry::noop(2, 2)],
    };
    let mut r = Raft::new(NodeId(2), ids(&[1, 2, 3]), config(), recovered, 1).unwrap();
    let stale = |last_log_index, last_log_term| RaftMessage::RequestVote {
        term: 3,
        last_log_index,
        last_log_term,
        pre_vote: false,
        transfer: false,
    };
    // Longer log but older last term: denied.
    r.step(NodeId(1), stale(5, 1));
    // Same last term, shorter: denied.
    r.step(NodeId(3), stale(1, 2));
    let answers = sent(&r.ready());
    let deny = RaftMessage::RequestVoteResponse { term: 3, granted: false, pre_vote: false };
    assert_eq!(answers, vec![(1, deny.clone()), (3, deny)]);
    assert_eq!(r.term(), 3);
    assert_eq!(r.voted_for(), None);
    // Same last term and as long: granted.
    r.step(NodeId(3), stale(2, 2));
    let grant = RaftMessage::RequestVoteResponse { term: 3, granted: true, pre_vote: false };
    assert_eq!(sent(&r.ready()), vec![(3, grant)]);
}

// Reference: thesis §9.6 — a replica that has heard from a leader within the election timeout
// refuses pre-votes, so a rejoining replica cannot disturb a working cluster.
#[test]
fn pre_vote_keeps_a_rejoining_replica_from_disrupting_the_leader() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let term = net.raft(1).term();
    net.isolate(3);
    net.tick_all(100);
    // Cut off, replica 3 keeps trying pre-votes that never reach anyone, and its term stays.
    assert_eq!(net.raft(3).term(), term);
    assert!(net.raft(3).is_pre_candidate());
    net.heal();
    net.tick_all(100);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.raft(1).term(), term);
    assert_eq!(net.raft(3).leader(), Some(NodeId(1)));
}

// Reference: thesis §9.6 (contrast) — without pre-vote the cut-off replica's term grows and its
// return deposes the leader.
#[test]
fn without_pre_vote_a_rejoining_replica_bumps_the_term() {
    let mut net = Network::new(3, RaftConfig { pre_vote: false, ..config() });
    net.elect(1);
    let term = net.raft(1).term();
    net.isolate(3);
    net.tick_all(100);
    assert!(net.raft(3).term() > term + 1);
    net.heal();
    net.tick_all(100);
    assert!(net.raft(1).term() > term);
}

// Reference: thesis §6.2 — with check-quorum a leader that cannot reach a majority steps down
// within an election timeout.
#[test]
fn check_quorum_steps_down_a_cut_off_leader() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.isolate(1);
    net.tick_all(25);
    assert_eq!(net.raft(1).role(), Role::Follower);
    assert_eq!(net.raft(1).leader(), None);
    let counters: std::collections::BTreeMap<_, _> = net.raft(1).counters().into_iter().collect();
    assert_eq!(counters["check_quorum_step_downs_total"], 1);
    // The majority side elected someone else meanwhile.
    let new_leader = net.leader().unwrap();
    assert_ne!(new_leader, 1);
}

// Reference: thesis §4.2.3 — a RequestVote of a higher term is ignored while the leader is heard
// from: the term is not even adopted.
#[test]
fn votes_are_ignored_while_the_leader_is_alive() {
    let mut net = Network::new(3, config());
    net.elect(1);
    let term = net.raft(2).term();
    net.raft_mut(2).step(
        NodeId(3),
        RaftMessage::RequestVote {
            term: term + 5,
            last_log_index: 99,
            last_log_term: term,
            pre_vote: false,
            transfer: false,
        },
    );
    assert_eq!(net.raft(2).term(), term);
    assert!(!net.raft(2).has_ready());
}

// Reference: §5.2 — Election Safety: at most one leader per term (the network checks it on
// every step) over many elections with randomized timeouts and failures.
#[test]
fn election_safety_across_repeated_failures() {
    let mut net = Network::new(5, config());
    for _ in 0..8 {
        net.tick_all(60);
        let leader = net.leader().expect("a leader emerges");
        // Cut the leader off, then let it back in.
        net.isolate(leader);
        net.tick_all(60);
        net.heal();
    }
    assert!(net.leaders.len() >= 8);
}
