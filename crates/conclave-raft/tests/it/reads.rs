//! Linearizable reads: ReadIndex (thesis §6.4), follower reads forwarded to the leader (also
//! §6.4), leases (§6.4.1), and the planted bug that lets a deposed leader serve stale reads.

use crate::network::{Network, config};
use conclave_core::{ConsensusError, NodeId, Protocol, ReadState, Rejection, Role};
use conclave_raft::{PlantedBug, RaftConfig, RaftMessage};

/// Replica 1 of three leads and has committed one write (index 2, after its no-op).
fn leading_with_one_write(config: RaftConfig) -> Network {
    leading_with_one_write_of(3, config)
}

fn leading_with_one_write_of(voters: u64, config: RaftConfig) -> Network {
    let mut net = Network::new(voters, config);
    net.elect(1);
    net.propose(1, "x");
    net.deliver_all();
    net
}

/// Cuts replica 1 off and lets the others elect a leader among themselves.
fn elect_without_1(net: &mut Network) -> u64 {
    net.isolate(1);
    for _ in 0..100 {
        for id in 2..=3 {
            net.raft_mut(id).tick();
        }
        net.deliver_all();
        if net.leader().is_some_and(|l| l != 1) {
            break;
        }
    }
    let new_leader = net.leader().unwrap();
    assert_ne!(new_leader, 1);
    new_leader
}

fn heartbeats_sent(net: &Network) -> usize {
    net.delivered.iter().filter(|(_, _, m)| matches!(m, RaftMessage::Heartbeat { .. })).count()
}

// Reference: thesis §6.4 — the leader records its commit index, confirms leadership with one
// heartbeat round acknowledged by a majority, then answers with that index.
#[test]
fn read_index_confirms_leadership_with_one_round() {
    let mut net = leading_with_one_write(config());
    let request = net.read(1);
    net.process(NodeId(1));
    // The round goes out as heartbeats carrying a new round number; nothing is answered yet.
    assert!(net.node(1).reads.is_empty());
    let rounds: Vec<(NodeId, u64, u64)> = net
        .queue
        .iter()
        .filter_map(|(_, to, m)| match m {
            RaftMessage::Heartbeat { commit, round, .. } => Some((*to, *commit, *round)),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 2);
    assert!(rounds.iter().all(|&(_, commit, _)| commit == 2));
    // One acknowledgement makes a majority with the leader's own.
    let (_, _, round) = rounds[0];
    net.queue.clear();
    net.raft_mut(1).step(NodeId(2), RaftMessage::HeartbeatResponse { term: 1, round });
    net.process(NodeId(1));
    assert_eq!(net.node(1).reads, vec![ReadState { request, index: 2 }]);
}

// Reference: thesis §6.4 — reads that arrive together share one round.
#[test]
fn reads_are_batched_into_one_round() {
    let mut net = Network::new(3, config());
    net.elect(1);
    net.delivered.clear();
    let requests: Vec<_> = (0..10).map(|_| net.read(1)).collect();
    net.deliver_all();
    assert_eq!(heartbeats_sent(&net), 2);
    let answered: Vec<_> = net.node(1).reads.iter().map(|r| r.request).collect();
    assert_eq!(answered, requests);
}

// Reference: thesis §6.4 step 1 — a new leader first commits an entry of its own term, since
// until then its commit index may lag behind what earlier leaders committed.
#[test]
fn reads_wait_for_the_leaders_first_commit() {
    let mut net = Network::new(3, config());
    // Deliver nothing but votes, so the leader's no-op cannot commit.
    while net.raft(1).role() != Role::Leader {
        net.raft_mut(1).tick();
        net.deliver_filtered(|_, _, m| !matches!(m, RaftMessage::AppendEntries { .. }));
    }
    let request = net.read(1);
    net.deliver_filtered(|_, _, m| !matches!(m, RaftMessage::AppendEntries { .. }));
    assert_eq!(net.raft(1).commit_index(), 0);
    assert!(net.node(1).reads.is_empty());
    net.tick_all(3);
    assert_eq!(net.node(1).reads, vec![ReadState { request, index: 1 }]);
}

// Reference: thesis §6.4 — a follower forwards the read; the leader confirms and answers with
// the index; the follower serves once it has applied that far.
#[test]
fn follower_reads_go_through_the_leader() {
    let mut net = leading_with_one_write(config());
    let request = net.read(3);
    net.deliver_all();
    assert_eq!(net.node(3).reads, vec![ReadState { request, index: 2 }]);
    assert!(net.delivered.iter().any(|(from, to, m)| {
        (*from, *to) == (NodeId(1), NodeId(3))
            && matches!(m, RaftMessage::ReadIndexResponse { index: Some(2), .. })
    }));
    // With no known leader the read is refused at once.
    let mut lone = Network::new(3, config());
    let request = lone.read(2);
    lone.process_all();
    let not_leader = ConsensusError::NotLeader { leader: None };
    assert_eq!(lone.node(2).rejected, vec![Rejection { request, error: not_leader }]);
}

// The reads a follower takes between two Readys share one ReadIndex and its one answer.
#[test]
fn a_follower_forwards_its_queued_reads_as_one_read_index() {
    let mut net = leading_with_one_write(config());
    let requests: Vec<_> = (0..5).map(|_| net.read(3)).collect();
    net.deliver_all();
    let expected: Vec<_> =
        requests.iter().map(|&request| ReadState { request, index: 2 }).collect();
    assert_eq!(net.node(3).reads, expected);
    let read_index = |m: &RaftMessage| matches!(m, RaftMessage::ReadIndex { .. });
    let response = |m: &RaftMessage| matches!(m, RaftMessage::ReadIndexResponse { .. });
    assert_eq!(net.delivered.iter().filter(|(_, _, m)| read_index(m)).count(), 1);
    assert_eq!(net.delivered.iter().filter(|(_, _, m)| response(m)).count(), 1);
}

// With three voters a follower's batch, sent in the leader's term, confirms the leadership
// itself: the leader answers it at once, with no heartbeat round.
#[test]
fn with_three_voters_a_followers_batch_needs_no_round() {
    let mut net = leading_with_one_write(config());
    net.delivered.clear();
    let request = net.read(3);
    net.deliver_all();
    assert_eq!(net.node(3).reads, vec![ReadState { request, index: 2 }]);
    assert_eq!(heartbeats_sent(&net), 0, "no round: {:?}", net.delivered);
    let counters: std::collections::BTreeMap<_, _> = net.raft(1).counters().into_iter().collect();
    assert_eq!(counters["reads_confirmed_by_follower_total"], 1);
    assert_eq!(counters["read_index_rounds_total"], 0);
}

// With five voters a follower and the leader are no majority: the batch waits for a round.
#[test]
fn with_five_voters_a_followers_batch_waits_for_a_round() {
    let mut net = leading_with_one_write_of(5, config());
    net.delivered.clear();
    let request = net.read(3);
    net.deliver_all();
    assert_eq!(net.node(3).reads, vec![ReadState { request, index: 2 }]);
    assert!(heartbeats_sent(&net) >= 4, "a round to every follower: {:?}", net.delivered);
    let counters: std::collections::BTreeMap<_, _> = net.raft(1).counters().into_iter().collect();
    assert_eq!(counters["reads_confirmed_by_follower_total"], 0);
}

// A batch sent to a leader that is deposed before it answers is refused, not left to time out.
#[test]
fn forwarded_reads_are_refused_when_the_leader_changes() {
    let mut net = leading_with_one_write(config());
    let request = net.read(3);
    net.process(NodeId(3));
    // The batch is on its way to replica 1; replica 2 wins an election first.
    net.queue.retain(|(_, _, m)| !matches!(m, RaftMessage::ReadIndex { .. }));
    elect_without_1(&mut net);
    net.process_all();
    let refused = net.node(3).rejected.iter().find(|r| r.request == request);
    assert!(
        matches!(refused, Some(Rejection { error: ConsensusError::NotLeader { .. }, .. })),
        "{:?}",
        net.node(3).rejected
    );
    assert!(net.node(3).reads.is_empty());
}

/// Replica 1 leads, is cut off, and the others elect a new leader that commits a write.
fn deposed_leader(config: RaftConfig) -> Network {
    let strict = config.planted_bug.is_none();
    let mut net = leading_with_one_write(config);
    net.strict = strict;
    let new_leader = elect_without_1(&mut net);
    net.propose(new_leader, "new");
    net.deliver_all();
    assert_eq!(net.raft(new_leader).commit_index(), 4);
    net
}

// Reference: thesis §6.4 — a deposed leader cannot confirm its leadership, so it never answers;
// once it notices (check-quorum, thesis §6.2) it refuses the read.
#[test]
fn a_deposed_leader_never_serves_a_read() {
    let mut net = deposed_leader(config());
    assert_eq!(net.raft(1).role(), Role::Leader);
    let request = net.read(1);
    net.deliver_all();
    assert!(net.node(1).reads.is_empty());
    net.tick_all(25);
    assert_eq!(net.raft(1).role(), Role::Follower);
    assert!(net.node(1).reads.is_empty());
    assert_eq!(net.node(1).rejected.len(), 1);
    assert_eq!(net.node(1).rejected[0].request, request);
}

// The planted bug: the deposed leader answers at once with its stale commit index (2), though
// index 4 was committed elsewhere before the read began — a stale read.
#[test]
fn planted_bug_read_from_deposed_leader_serves_stale_data() {
    let config = RaftConfig { planted_bug: Some(PlantedBug::ReadFromDeposedLeader), ..config() };
    let mut net = deposed_leader(config);
    let request = net.read(1);
    net.deliver_all();
    assert_eq!(net.node(1).reads, vec![ReadState { request, index: 2 }]);
    assert_eq!(
        net.violations,
        vec![format!("node 1 answered read {request} at 2 though 4 was applied before it began")]
    );
    // Nor does it step down on its own.
    net.tick_all(50);
    assert_eq!(net.raft(1).role(), Role::Leader);
}

/// A cluster with lease reads whose leader has had one round acknowledged. Replicas with lease
/// reads refuse votes for an election timeout after they start, so all of them tick.
fn lease_cluster() -> (Network, u64) {
    let mut net = Network::new(3, RaftConfig { lease_read: true, ..config() });
    while net.leader().is_none() {
        net.tick_all(1);
    }
    net.tick_all(2); // a heartbeat round, acknowledged
    let leader = net.leader().unwrap();
    (net, leader)
}

// Reference: thesis §6.4.1 — with a lease, a leader whose last round a majority acknowledged
// recently answers without a round; when the lease runs out it needs a round again.
#[test]
fn lease_reads_skip_the_round_while_the_lease_holds() {
    let (mut net, leader) = lease_cluster();
    let request = net.read(leader);
    net.process(NodeId(leader));
    let index = net.raft(leader).commit_index();
    assert_eq!(net.node(leader).reads, vec![ReadState { request, index }]);
    assert!(net.queue.is_empty());
    // Cut off, the lease lapses within an election timeout and reads stop being answered.
    net.isolate(leader);
    for _ in 0..8 {
        net.raft_mut(leader).tick();
        net.deliver_all();
    }
    let late = net.read(leader);
    net.deliver_all();
    assert!(!net.node(leader).reads.iter().any(|r| r.request == late));
}

// Reference: thesis §3.10 with §6.4.1 — a transferee wins an election that ignores leases, so a
// transfer voids the leader's lease.
#[test]
fn leadership_transfer_voids_the_lease() {
    let (mut net, leader) = lease_cluster();
    let (cut, other) = match leader {
        1 => (2, 3),
        2 => (3, 1),
        _ => (1, 2),
    };
    net.isolate(cut);
    net.raft_mut(leader).transfer_leadership(NodeId(cut)).unwrap();
    net.delivered.clear();
    let request = net.read(leader);
    net.deliver_all();
    // Answered, but only after a round that the other follower acknowledged.
    let index = net.raft(leader).commit_index();
    assert_eq!(net.node(leader).reads, vec![ReadState { request, index }]);
    let rounds = net
        .delivered
        .iter()
        .filter(|(_, to, m)| *to == NodeId(other) && matches!(m, RaftMessage::Heartbeat { .. }));
    assert_eq!(rounds.count(), 1, "a round is needed");
    let counters: std::collections::BTreeMap<_, _> =
        net.raft(leader).counters().into_iter().collect();
    assert_eq!(counters["lease_reads_total"], 0);
}

// Reference: thesis §6.4.1 — a replica forgets across a restart which leader it acknowledged,
// so with lease reads it refuses votes for an election timeout after it starts.
#[test]
fn with_leases_a_fresh_replica_refuses_votes_for_a_while() {
    let (mut net, leader) = lease_cluster();
    let follower = if leader == 1 { 2 } else { 1 };
    net.crash(follower);
    net.restart(follower);
    let term = net.raft(follower).term();
    let vote = RaftMessage::RequestVote {
        term: term + 1,
        last_log_index: 100,
        last_log_term: term,
        pre_vote: false,
        transfer: false,
    };
    net.raft_mut(follower).step(NodeId(9), vote.clone());
    assert_eq!(net.raft(follower).term(), term);
    for _ in 0..10 {
        net.raft_mut(follower).tick();
    }
    net.raft_mut(follower).step(NodeId(9), vote);
    assert_eq!(net.raft(follower).voted_for(), Some(NodeId(9)));
}
