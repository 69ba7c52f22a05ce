//! The Raft replica: its state, its construction from recovered storage, its role changes, its
//! clock, and the dispatch of incoming messages by term (§5.1: a higher term makes anyone a
//! follower; a lower term is stale).
//!
//! The handlers themselves live beside this file, grouped by subject: `election`,
//! `replication` (leader side), `follower`, `reads`, `changes` (membership and transfer) and
//! `protocol` (the `conclave_core::Protocol` face).

use crate::config::Ticks;
use crate::counters::Counters;
use crate::hard_state::HardState;
use crate::leadership::Leadership;
use crate::log::RaftLog;
use crate::membership_log::MembershipLog;
use crate::{RaftConfig, RaftError, RaftMessage};
use conclave_core::{
    ConsensusError, DetRng, Entry, Envelope, HeldSnapshot, Membership, NodeId, ReadState,
    Recovered, Rejection, RequestId, Role, Snapshot,
};
use std::collections::BTreeMap;

/// What a replica is doing in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Follower,
    /// Asking whether it could win before disturbing anyone (thesis §9.6).
    PreCandidate,
    Candidate,
    Leader,
}

/// Effects accumulated for the next `Ready`, other than those derived from the log.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub snapshot: Option<Snapshot>,
    pub compact_to: Option<u64>,
    /// The leader's appends and heartbeats: they may leave before its own writes are durable
    /// (thesis §10.2.1), since the leader counts its entries toward a commit only once they are.
    pub eager: Vec<Envelope<RaftMessage>>,
    pub messages: Vec<Envelope<RaftMessage>>,
    pub reads: Vec<ReadState>,
    pub rejected: Vec<Rejection>,
}

/// One Raft replica, as a deterministic state machine without IO.
///
/// Drive it through [`conclave_core::Protocol`]; see the crate documentation for the rules.
#[derive(Debug)]
pub struct Raft {
    pub(crate) id: NodeId,
    pub(crate) config: RaftConfig,
    pub(crate) ticks: Ticks,
    pub(crate) rng: DetRng,

    // Persistent state on all servers (Figure 2); `persisted` is the last copy handed out.
    pub(crate) term: u64,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) commit: u64,
    pub(crate) persisted: HardState,

    pub(crate) state: State,
    pub(crate) leader: Option<NodeId>,
    /// The last leader this replica knew, to count leader changes.
    pub(crate) last_leader: Option<NodeId>,
    pub(crate) memberships: MembershipLog,
    /// Votes (or pre-votes) received in the current campaign.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Present exactly while this replica is the leader.
    pub(crate) lead: Option<Leadership>,

    /// Ticks since construction: the replica's only clock.
    pub(crate) now: u64,
    /// Ticks since the leader was last heard from (follower), since the campaign began
    /// (candidate), or since the last check-quorum (leader).
    pub(crate) election_elapsed: u64,
    pub(crate) randomized_election_timeout: u64,
    pub(crate) heartbeat_elapsed: u64,

    /// The latest snapshot: sent to followers that need compacted entries. Its data is read
    /// back from the store when one does (`Ready::snapshot_wanted`).
    pub(crate) snapshot: HeldSnapshot,
    /// The last index handed out in `Ready::committed` (or covered by a snapshot).
    pub(crate) applied: u64,
    pub(crate) out: Outbox,
    pub(crate) counters: Counters,
    /// Forwarded proposals already appended, to drop duplicates.
    pub(crate) forwarded_seen: crate::forwarded::ForwardedSeen,
    /// Reads taken as a follower, batched for the leader.
    pub(crate) forwarded_reads: crate::forwarded_reads::ForwardedReads,
}

impl Raft {
    /// Builds a replica from what storage recovered (or from nothing, on first start).
    ///
    /// `membership` is the cluster's initial membership; it is used only when neither the
    /// recovered snapshot nor the recovered log says otherwise. A replica joining an existing
    /// cluster may pass an empty membership: it then never campaigns and learns the membership
    /// from the leader. `seed` feeds the only randomness used (election timeouts).
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: RaftConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Raft, RaftError> {
        config.validate()?;
        let hard = match &recovered.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        let (offset_index, offset_term, base) = match &recovered.snapshot {
            Some(s) => (s.meta.index, s.meta.term, s.meta.membership.clone()),
            None => (0, 0, membership),
        };
        // Storage may keep a few entries below its snapshot; the snapshot covers them.
        let entries: Vec<Entry> =
            recovered.entries.into_iter().filter(|e| e.index > offset_index).collect();
        let (mut expected, mut previous_term) = (offset_index + 1, offset_term);
        for entry in &entries {
            if entry.index != expected {
                return Err(RaftError::RecoveredLog(format!(
                    "expected entry {expected} after index {}, found entry {}",
                    expected - 1,
                    entry.index
                )));
            }
            if entry.term < previous_term {
                return Err(RaftError::RecoveredLog(format!(
                    "entry {} has term {}, below the term {previous_term} before it",
                    entry.index, entry.term
                )));
            }
            expected += 1;
            previous_term = entry.term;
        }
        let mut memberships = MembershipLog::new(offset_index, base);
        memberships.appended(&entries);
        let log = RaftLog::recovered(offset_index, offset_term, entries);
        let commit = hard.commit.clamp(offset_index, log.last_index());
        let ticks = config.ticks();
        // Mixing in the id keeps replicas apart even if a driver seeds them all alike, which
        // would otherwise give them identical timeouts and endless split votes.
        let rng = DetRng::new(seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut raft = Raft {
            id,
            config,
            ticks,
            rng,
            term: hard.term,
            voted_for: hard.voted_for,
            log,
            commit,
            persisted: hard,
            state: State::Follower,
            leader: None,
            last_leader: None,
            memberships,
            votes: BTreeMap::new(),
            lead: None,
            now: 0,
            election_elapsed: 0,
            randomized_election_timeout: 0,
            heartbeat_elapsed: 0,
            snapshot: HeldSnapshot::new(recovered.snapshot),
            applied: offset_index,
            out: Outbox::default(),
            counters: Counters::default(),
            forwarded_seen: Default::default(),
            forwarded_reads: Default::default(),
        };
        raft.reset_election_timer();
        Ok(raft)
    }

    // ---- Inspection, for the simulator's checkers and for tests. ----

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn role(&self) -> Role {
        match self.state {
            State::Follower => Role::Follower,
            State::PreCandidate | State::Candidate => Role::Candidate,
            State::Leader => Role::Leader,
        }
    }

    /// Whether this replica is running a pre-vote round (reported as a candidate by `role`).
    pub fn is_pre_candidate(&self) -> bool {
        self.state == State::PreCandidate
    }

    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The first index still held in the log (the one after the compacted prefix).
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The term of the entry at `index`, if known (including the last compacted index).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term_at(index)
    }

    /// The membership in effect: the latest one in the log, committed or not (thesis §4.1).
    pub fn membership(&self) -> &Membership {
        self.memberships.current()
    }

    /// The membership in effect at `index` (what a snapshot through `index` must record).
    pub fn membership_at(&self, index: u64) -> &Membership {
        self.memberships.at(index)
    }

    /// The leader's view of each follower's `match_index` (empty unless leader).
    pub fn match_indexes(&self) -> BTreeMap<NodeId, u64> {
        self.lead
            .as_ref()
            .map(|l| l.progress.iter().map(|(&id, p)| (id, p.match_index)).collect())
            .unwrap_or_default()
    }

    // ---- Role changes (§5.2). ----

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_election_timeout =
            self.rng.range_inclusive(self.ticks.election_min, self.ticks.election_max);
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if leader.is_some() && leader != self.last_leader {
            self.counters.leader_changes += 1;
            self.last_leader = leader;
        }
        self.leader = leader;
    }

    /// Becomes a follower in `term` (adopting it, with no vote, if it is newer).
    pub(crate) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.state = State::Follower;
        self.set_leader(leader);
        self.votes.clear();
        self.reset_election_timer();
        if let Some(lead) = self.lead.take() {
            self.abandon_leadership(lead);
        }
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        self.state = State::PreCandidate;
        self.set_leader(None);
        self.votes.clear();
        self.reset_election_timer();
    }

    pub(crate) fn become_candidate(&mut self) {
        self.term += 1;
        self.voted_for = Some(self.id);
        self.state = State::Candidate;
        self.set_leader(None);
        self.votes.clear();
        self.reset_election_timer();
    }

    /// Wins the election: every follower is probed from the end of the log, and a no-op of the
    /// new term is appended at once so that earlier entries can commit through it (§5.4.2, §8).
    pub(crate) fn become_leader(&mut self) {
        self.state = State::Leader;
        self.set_leader(Some(self.id));
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let mut lead = Leadership::default();
        let next = self.log.last_index() + 1;
        for &voter in &self.memberships.current().voters {
            if voter != self.id {
                lead.progress.insert(voter, crate::progress::Progress::new(next));
            }
        }
        self.lead = Some(lead);
        self.append_as_leader(Entry::noop(next, self.term));
    }

    /// Whether this replica may campaign: only voters may (§4.1).
    pub(crate) fn promotable(&self) -> bool {
        self.memberships.current().contains(self.id)
    }

    /// Whether a leader was heard from within the minimum election timeout. Such a replica
    /// refuses pre-votes and votes (thesis §9.6, §4.2.3). A leader is always within its own
    /// lease. With lease reads, a replica that just started also counts as within a lease:
    /// it may have acknowledged a leader before it restarted, and forgot.
    pub(crate) fn in_lease(&self) -> bool {
        (self.leader.is_some() && self.election_elapsed < self.ticks.election_min)
            || (self.config.lease_read && self.now < self.ticks.election_min)
    }

    // ---- The clock. ----

    pub(crate) fn tick_inner(&mut self) {
        self.now += 1;
        self.snapshot.tick();
        if self.state == State::Leader {
            self.tick_leader();
            return;
        }
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.campaign(false);
        }
    }

    // ---- Incoming messages. ----

    pub(crate) fn step_inner(&mut self, from: NodeId, msg: RaftMessage) {
        if from == self.id {
            return;
        }
        match msg {
            RaftMessage::RequestVote {
                term,
                last_log_index,
                last_log_term,
                pre_vote,
                transfer,
            } => {
                return self.handle_request_vote(
                    from,
                    term,
                    (last_log_index, last_log_term),
                    pre_vote,
                    transfer,
                );
            }
            RaftMessage::RequestVoteResponse { term, granted, pre_vote } => {
                return self.handle_vote_response(from, term, granted, pre_vote);
            }
            RaftMessage::Propose { request, command } => {
                return self.handle_forwarded_proposal(from, request, command);
            }
            RaftMessage::ReadIndex { request, term } => {
                return self.handle_forwarded_read(from, request, term);
            }
            RaftMessage::ReadIndexResponse { request, index, leader } => {
                return self.handle_read_index_response(request, index, leader);
            }
            _ => {}
        }
        let Some(term) = msg.term() else { return };
        if term > self.term {
            let leader = msg.is_from_leader().then_some(from);
            self.become_follower(term, leader);
        } else if term < self.term {
            // A deposed leader learns the newer term from the answer and steps down.
            if msg.is_from_leader() {
                self.send(from, RaftMessage::HeartbeatResponse { term: self.term, round: 0 });
            }
            return;
        }
        if msg.is_from_leader() {
            match self.state {
                // Two leaders in one term would break election safety (§5.2); the message
                // cannot be from a legitimate leader, so it is ignored.
                State::Leader => return,
                State::Follower => {
                    if self.leader != Some(from) {
                        self.set_leader(Some(from));
                    }
                }
                State::PreCandidate | State::Candidate => self.become_follower(term, Some(from)),
            }
            self.election_elapsed = 0;
        }
        match msg {
            RaftMessage::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
                ..
            } => self.handle_append_entries(
                from,
                (prev_log_index, prev_log_term),
                entries,
                leader_commit,
                round,
            ),
            RaftMessage::Heartbeat { commit, round, .. } => {
                self.handle_heartbeat(from, commit, round)
            }
            RaftMessage::InstallSnapshot { snapshot, .. } => {
                self.handle_install_snapshot(from, snapshot)
            }
            RaftMessage::TimeoutNow { .. } => self.handle_timeout_now(),
            RaftMessage::AppendEntriesResponse {
                success,
                match_index,
                reject_index,
                conflict_term,
                conflict_index,
                round,
                ..
            } => {
                if success {
                    self.handle_append_success(from, match_index, round);
                } else {
                    self.handle_append_rejection(
                        from,
                        reject_index,
                        conflict_term,
                        conflict_index,
                        round,
                    );
                }
            }
            RaftMessage::HeartbeatResponse { round, .. } => {
                self.handle_heartbeat_response(from, round)
            }
            RaftMessage::InstallSnapshotResponse { match_index, .. } => {
                self.handle_snapshot_response(from, match_index)
            }
            _ => {}
        }
    }

    // ---- Effects. ----

    pub(crate) fn send(&mut self, to: NodeId, msg: RaftMessage) {
        self.out.messages.push(Envelope { to, msg });
    }

    /// Sends a message that promises nothing about this replica's unsynced writes.
    pub(crate) fn send_eager(&mut self, to: NodeId, msg: RaftMessage) {
        self.out.eager.push(Envelope { to, msg });
    }

    pub(crate) fn reject(&mut self, request: RequestId, error: ConsensusError) {
        self.out.rejected.push(Rejection { request, error });
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState { term: self.term, voted_for: self.voted_for, commit: self.commit }
    }

    /// Who a refused client should try: the leader, or the transferee while a transfer runs.
    pub(crate) fn leader_hint(&self) -> Option<NodeId> {
        match &self.lead {
            Some(lead) => lead.transferee.or(Some(self.id)),
            None => self.leader,
        }
    }
}
