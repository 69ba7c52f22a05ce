//! The replica: one [`Paxos`] is proposer, acceptor and learner at once.
//!
//! This file holds the state, construction from what was recovered, the accessors used by
//! invariant checkers, the timers, and the `Protocol` glue that turns events into handler calls
//! and drains the effects into a `Ready`. The rules of each role live beside it: `acceptor.rs`,
//! `learner.rs`, `proposer.rs`, `leader.rs`, `reads.rs`.

use crate::config::Ticks;
use crate::config_history::ConfigHistory;
use crate::counters::Counters;
use crate::forward_dedup::ForwardDedup;
use crate::hard_state::HardState;
use crate::leader_state::{LeaderState, Pending};
use crate::slot_log::SlotLog;
use crate::{Ballot, MAX_NODE_ID, Message, PaxosConfig, PaxosError};
use bytes::Bytes;
use conclave_core::{
    ConsensusError, DetRng, Entry, EntryKind, Envelope, Guarantees, HeldSnapshot, Membership,
    NodeId, Protocol, Ready, Recovered, Rejection, RequestId, Role, Snapshot, Status, proposal,
};
use std::collections::{BTreeMap, BTreeSet};

/// The protocol's name in config and in the `protocol` metric label.
pub const PROTOCOL_NAME: &str = "paxos";

/// A candidate's phase 1 in progress.
#[derive(Debug)]
pub(crate) struct Campaign {
    pub ballot: Ballot,
    /// Promises are asked for every slot from here on (the candidate's commit index + 1).
    pub start: u64,
    pub promises: BTreeMap<NodeId, PromiseData>,
}

/// What one acceptor reported in its promise.
#[derive(Clone, Debug)]
pub(crate) struct PromiseData {
    pub commit: u64,
    pub accepted: Vec<Entry>,
}

#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    Candidate(Campaign),
    Leader(Box<LeaderState>),
}

/// A Multi-Paxos replica: a deterministic, IO-free state machine.
#[derive(Debug)]
pub struct Paxos {
    pub(crate) id: NodeId,
    pub(crate) config: PaxosConfig,
    pub(crate) ticks: Ticks,
    pub(crate) rng: DetRng,

    // Acceptor.
    pub(crate) promised: Ballot,
    /// The promise in the last hard state handed out in a `Ready`.
    pub(crate) handed_promised: Ballot,
    /// The promise known to be on disk (its `Ready` was carried out).
    pub(crate) durable_promised: Ballot,
    pub(crate) last_round: u64,
    pub(crate) log: SlotLog,

    // Learner.
    pub(crate) commit: u64,
    /// Committed slots up to here were handed out in `Ready::committed`.
    pub(crate) handed: u64,
    /// The latest snapshot, for peers that need compacted slots; its data is read back from
    /// the store when one does (`Ready::snapshot_wanted`).
    pub(crate) snapshot: HeldSnapshot,
    pub(crate) configs: ConfigHistory,

    // Proposer.
    pub(crate) role: RoleState,
    pub(crate) leader: Option<NodeId>,
    pub(crate) max_seen_round: u64,

    // Timers, in ticks.
    pub(crate) now: u64,
    pub(crate) election_elapsed: u64,
    pub(crate) election_timeout: u64,
    /// Ticks since this node last heard from its leader (or started, or stepped down): while
    /// below the minimum timeout it refuses prepares from anyone else.
    pub(crate) heard_elapsed: u64,

    // Forwarding: batches this node sends, and batches it already took from others.
    pub(crate) forward_buf: Vec<Bytes>,
    pub(crate) forward_session: u64,
    pub(crate) forward_seq: u64,
    pub(crate) forwards_taken: ForwardDedup,
    pub(crate) forwarded_reads: BTreeMap<RequestId, u64>,
    /// Proposals of this node's callers forwarded to the leader and not yet seen chosen, with
    /// the tick they were taken. When the leader changes, their fate is unknown: they are
    /// answered at once with a timeout (outcome unknown) instead of leaving the callers to wait
    /// for the driver's request timeout.
    pub(crate) forwarded_proposals: BTreeMap<RequestId, u64>,

    // Effects accumulated for the next `Ready`.
    pub(crate) out: Ready<Message>,
    pub(crate) hard_state_dirty: bool,
    /// The commit index in the last hard state handed out; when only the commit index moved
    /// since, the next `Ready` writes the hard state lazily.
    pub(crate) handed_commit: u64,
    pub(crate) counters: Counters,
}

impl Paxos {
    /// Builds a replica from its configuration and whatever storage recovered. `membership` is
    /// the initial set of acceptors; once a membership history was persisted, that wins.
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: PaxosConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Self, PaxosError> {
        config.validate()?;
        if id.0 > MAX_NODE_ID {
            return Err(PaxosError::NodeIdTooLarge { id: id.0, max: MAX_NODE_ID });
        }
        if let Some(bad) = membership.voters.iter().find(|v| v.0 > MAX_NODE_ID) {
            return Err(PaxosError::NodeIdTooLarge { id: bad.0, max: MAX_NODE_ID });
        }
        let hard_state = match &recovered.hard_state {
            Some(bytes) => {
                HardState::decode(bytes).map_err(|e| PaxosError::HardStateDecode(e.to_string()))?
            }
            None => HardState::default(),
        };
        let snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let configs = match ConfigHistory::from_pairs(hard_state.configs.clone()) {
            Some(history) => history,
            None => match &recovered.snapshot {
                Some(s) if !s.meta.membership.voters.is_empty() => {
                    ConfigHistory::new(s.meta.membership.clone())
                }
                _ if membership.voters.is_empty() => return Err(PaxosError::EmptyMembership),
                _ => ConfigHistory::new(membership),
            },
        };
        let entries: Vec<Entry> =
            recovered.entries.into_iter().filter(|e| e.index > snapshot_index).collect();
        for (i, e) in entries.iter().enumerate() {
            let expected = snapshot_index + 1 + i as u64;
            if e.index != expected {
                return Err(PaxosError::RecoveredLog(format!(
                    "expected slot {expected} after snapshot {snapshot_index}, found {}",
                    e.index
                )));
            }
        }
        // Accepting at a ballot implies having promised it; taking the maximum keeps that true
        // even for a log written by an older version that only stored the records.
        // Slots up to the stored commit index hold chosen values (the hard state is written
        // after, or in the same batch as, the records it covers).
        let last_index = snapshot_index + entries.len() as u64;
        let commit = hard_state.commit.clamp(snapshot_index, last_index);
        let highest_accepted = entries.iter().map(|e| Ballot::from_u64(e.term)).max();
        let promised = hard_state.promised.max(highest_accepted.unwrap_or(Ballot::ZERO));
        let ticks = config.ticks();
        // Mixing in the id keeps replicas that were given the same seed from drawing the same
        // timeouts (and duelling forever).
        let mut rng = DetRng::new(seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let forward_session = rng.next_u64();
        let mut paxos = Self {
            id,
            config,
            ticks,
            rng,
            promised,
            handed_promised: promised,
            durable_promised: promised,
            last_round: hard_state.last_round,
            log: SlotLog::new(snapshot_index + 1, entries),
            commit,
            handed: snapshot_index,
            snapshot: HeldSnapshot::new(recovered.snapshot),
            configs,
            role: RoleState::Follower,
            leader: None,
            max_seen_round: promised.round.max(hard_state.last_round),
            now: 0,
            election_elapsed: 0,
            election_timeout: 0,
            // A restarted acceptor may have acknowledged a leader just before it crashed; it
            // keeps that leader's lease safe by refusing prepares for a whole timeout.
            heard_elapsed: 0,
            forward_buf: Vec::new(),
            forward_session,
            forward_seq: 0,
            forwards_taken: ForwardDedup::default(),
            forwarded_reads: BTreeMap::new(),
            forwarded_proposals: BTreeMap::new(),
            out: Ready::default(),
            hard_state_dirty: false,
            handed_commit: commit,
            counters: Counters::default(),
        };
        paxos.reset_election_timer();
        Ok(paxos)
    }

    // ----- Accessors for drivers, tests and invariant checkers. -----

    /// The ballot this acceptor promised (Paxos Made Simple §2.2, P1a).
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The ballot this node leads or campaigns with, else the promised one.
    pub fn current_ballot(&self) -> Ballot {
        match &self.role {
            RoleState::Leader(l) => l.ballot,
            RoleState::Candidate(c) => c.ballot,
            RoleState::Follower => self.promised,
        }
    }

    /// The record held for `slot`: the accepted proposal (ballot, value) above the commit
    /// index, the chosen value at or below it. `None` for a compacted or empty slot.
    pub fn accepted(&self, slot: u64) -> Option<(Ballot, &Entry)> {
        self.log.get(slot).map(|e| (Ballot::from_u64(e.term), e))
    }

    /// The chosen value of `slot`, if this learner knows it and has not compacted it.
    pub fn chosen(&self, slot: u64) -> Option<&Entry> {
        if slot > self.commit { None } else { self.log.get(slot) }
    }

    /// Every slot up to here is chosen and known to this learner.
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The leader this node follows (itself when it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The first and last slot held in the log.
    pub fn log_bounds(&self) -> (u64, u64) {
        (self.log.first_index(), self.log.last_index())
    }

    /// The acceptors that govern the next slot to be chosen.
    pub fn membership(&self) -> &Membership {
        self.configs.at(self.commit + 1)
    }

    /// Whether this node is a leader holding a read lease right now.
    pub fn has_lease(&self) -> bool {
        self.lease_valid()
    }

    /// Starts phase 1 now with a fresh ballot, as if the failure detector had fired (tests,
    /// leadership hand-off). A node that is not a member of the current configuration does
    /// not campaign. The other members still refuse while they are loyal to a live leader.
    pub fn campaign(&mut self) {
        if self.configs.at(self.commit + 1).contains(self.id) {
            self.start_phase1();
        }
    }

    /// Asks for a membership change through the log. It governs slots from α after the slot it
    /// is chosen in. Refused (through `Ready::rejected`) on a non-leader, while another change
    /// is in progress, or for an empty membership.
    pub fn propose_membership(&mut self, id: RequestId, membership: Membership) {
        if membership.voters.is_empty() || membership.voters.iter().any(|v| v.0 > MAX_NODE_ID) {
            let what = "a membership needs voters with ids that fit a ballot".to_string();
            self.reject(id, ConsensusError::Unsupported { protocol: PROTOCOL_NAME, what });
            return;
        }
        let commit = self.commit;
        let change_pending = self.configs.has_change_after(commit + 1);
        let RoleState::Leader(l) = &mut self.role else {
            let leader = self.leader.filter(|l| *l != self.id);
            self.reject(id, ConsensusError::NotLeader { leader });
            return;
        };
        let in_flight = l.pending.iter().any(|p| p.kind == EntryKind::Membership)
            || l.inflight
                .keys()
                .any(|s| self.log.get(*s).is_some_and(|e| e.kind == EntryKind::Membership));
        if change_pending || in_flight {
            let msg = "a membership change is already in progress".to_string();
            self.reject(id, ConsensusError::Unavailable(msg));
            return;
        }
        let data = Bytes::from(
            postcard::to_stdvec(&membership).expect("encoding a membership cannot fail"),
        );
        l.pending.push_back(Pending { request: Some(id), kind: EntryKind::Membership, data });
        self.drive_leader();
    }

    // ----- Shared helpers. -----

    pub(crate) fn send(&mut self, to: NodeId, msg: Message) {
        self.out.messages.push(Envelope { to, msg });
    }

    pub(crate) fn reject(&mut self, request: RequestId, error: ConsensusError) {
        self.out.rejected.push(Rejection { request, error });
    }

    pub(crate) fn observe_round(&mut self, round: u64) {
        self.max_seen_round = self.max_seen_round.max(round);
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout =
            self.rng.range_inclusive(self.ticks.timeout_min, self.ticks.timeout_max);
    }

    /// Whether a prepare from `from` must be refused because this node heard from its leader
    /// (or restarted, or stepped down) less than a minimum timeout ago. This is the promise
    /// that makes a leader's lease safe.
    pub(crate) fn is_loyal_against(&self, from: NodeId) -> bool {
        self.heard_elapsed < self.ticks.timeout_min && self.leader != Some(from)
    }

    /// Records that `from`, leading at `ballot` (≥ our promise), was heard from: it becomes our
    /// leader and the failure detector restarts.
    pub(crate) fn follow(&mut self, from: NodeId, ballot: Ballot) {
        // A leader hearing a higher ballot is deposed; a candidate hearing a live leader gives
        // up its phase 1 (whatever its own ballot: it has not promised it to itself yet).
        debug_assert!(ballot >= self.promised);
        if !matches!(self.role, RoleState::Follower) {
            self.become_follower();
        }
        self.set_leader(Some(from));
        self.election_elapsed = 0;
        self.heard_elapsed = 0;
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader == leader {
            return;
        }
        if leader.is_some() {
            self.counters.leader_changes_total += 1;
        }
        self.leader = leader;
        // Reads forwarded to the previous leader will not be answered by the new one.
        let stale: Vec<RequestId> = std::mem::take(&mut self.forwarded_reads).into_keys().collect();
        let hint = leader.filter(|l| *l != self.id);
        for request in stale {
            self.reject(request, ConsensusError::NotLeader { leader: hint });
        }
        // Proposals forwarded to the previous leader may or may not be chosen by now.
        let unknown = std::mem::take(&mut self.forwarded_proposals);
        for (request, since) in unknown {
            let ms = self.now.saturating_sub(since) * self.config.tick_interval_ms;
            self.reject(request, ConsensusError::Timeout(ms));
        }
    }

    /// Leaves the leader or candidate role. Queued proposals and reads of this node's own
    /// callers are refused; those forwarded by peers are answered with "no index".
    pub(crate) fn become_follower(&mut self) {
        let previous = std::mem::replace(&mut self.role, RoleState::Follower);
        if let RoleState::Leader(l) = previous {
            self.fail_leader_waiters(*l);
            // Keep refusing prepares for a whole timeout: a lease this node handed out to
            // itself must run out before any other proposer can win.
            self.heard_elapsed = 0;
            self.leader = None;
            self.reset_election_timer();
        }
    }

    fn fail_leader_waiters(&mut self, l: LeaderState) {
        for p in l.pending {
            if let Some(request) = p.request {
                self.reject(request, ConsensusError::NotLeader { leader: None });
            }
        }
        // Proposed but not known chosen: another leader may still choose them, or not.
        for (_, slot) in l.inflight {
            if let Some(request) = slot.request {
                let ms = self.now.saturating_sub(slot.proposed_tick) * self.config.tick_interval_ms;
                self.reject(request, ConsensusError::Timeout(ms));
            }
        }
        let waiters = l.reads_waiting.into_iter().chain(l.reads_by_slot.into_values().flatten());
        for w in waiters.collect::<Vec<_>>() {
            self.fail_read(w);
        }
    }

    fn tick_follower(&mut self) {
        self.election_elapsed += 1;
        self.expire_forwarded_reads();
        let member = self.configs.at(self.commit + 1).contains(self.id);
        if member && self.election_elapsed >= self.election_timeout {
            self.start_phase1();
        }
    }
}

impl Protocol for Paxos {
    type Message = Message;

    fn name(&self) -> &'static str {
        PROTOCOL_NAME
    }

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.now += 1;
        self.snapshot.tick();
        self.heard_elapsed = self.heard_elapsed.saturating_add(1);
        if self.now.is_multiple_of(1024) {
            self.forwards_taken.prune(self.now);
            // Forwarded proposals never seen chosen (dropped by a full leader queue): the
            // driver's request timeout answered their callers long ago.
            let now = self.now;
            self.forwarded_proposals.retain(|_, since| now - *since < FORWARDED_PROPOSAL_TICKS);
        }
        if self.is_leader() {
            self.tick_leader();
        } else {
            self.tick_follower();
        }
    }

    fn step(&mut self, from: NodeId, msg: Message) {
        if from == self.id {
            return;
        }
        match msg {
            Message::Prepare { ballot, start } => self.on_prepare(from, ballot, start),
            Message::Promise { ballot, commit, accepted } => {
                self.on_promise(from, ballot, commit, accepted)
            }
            Message::Accept { ballot, tick, commit, entries } => {
                self.on_accept(from, ballot, tick, commit, entries)
            }
            Message::Accepted { ballot, tick, first, last, commit, log_last, need_from } => {
                self.on_accepted(from, ballot, tick, (first, last), commit, log_last, need_from)
            }
            Message::Heartbeat { ballot, tick, commit } => {
                self.on_heartbeat(from, ballot, tick, commit)
            }
            Message::HeartbeatAck { ballot, tick, commit, log_last, need_from } => {
                self.on_heartbeat_ack(from, ballot, tick, commit, log_last, need_from)
            }
            Message::Chosen { ballot, tick, commit, entries } => {
                self.on_chosen(from, ballot, tick, commit, entries)
            }
            Message::InstallSnapshot { ballot, tick, snapshot, configs } => {
                self.on_install_snapshot(from, ballot, tick, snapshot, configs)
            }
            Message::Reject { ballot, promised, leader } => {
                self.on_reject(from, ballot, promised, leader)
            }
            Message::Forward { session, seq, commands } => {
                self.on_forward(from, session, seq, commands)
            }
            Message::ReadIndex { request } => self.on_read_index(from, request),
            Message::ReadIndexResp { request, index } => self.on_read_index_resp(request, index),
        }
    }

    fn propose(&mut self, id: RequestId, command: Bytes) {
        let max_pending = self.config.max_pending_proposals;
        match &mut self.role {
            RoleState::Leader(l) => {
                if l.pending.len() >= max_pending {
                    let msg = format!("{max_pending} proposals already queued");
                    self.reject(id, ConsensusError::Unavailable(msg));
                    return;
                }
                l.pending.push_back(Pending {
                    request: Some(id),
                    kind: EntryKind::Command,
                    data: command,
                });
                self.drive_leader();
            }
            _ => match self.leader.filter(|l| *l != self.id) {
                Some(_) => {
                    self.counters.forwarded_proposals_total += 1;
                    self.forwarded_proposals.insert(id, self.now);
                    self.forward_buf.push(command);
                }
                None => self.reject(id, ConsensusError::NotLeader { leader: None }),
            },
        }
    }

    fn read(&mut self, id: RequestId) {
        self.read_request(id);
    }

    fn snapshot_taken(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index.min(self.handed);
        if self.snapshot.index() >= snapshot.meta.index {
            return;
        }
        self.snapshot.replace(snapshot);
        if index >= self.log.first_index() {
            self.log.compact_to(index);
            self.out.compact_to = Some(index);
        }
    }

    fn snapshot_loaded(&mut self, snapshot: Snapshot) {
        self.snapshot.loaded(snapshot);
    }

    fn has_ready(&self) -> bool {
        !self.out.is_empty()
            || self.snapshot.is_wanted()
            || self.hard_state_dirty
            || self.commit != self.handed_commit
            || self.log.is_dirty()
            || self.handed < self.commit
            || !self.forward_buf.is_empty()
            || matches!(&self.role, RoleState::Leader(l) if !l.unsent.is_empty())
    }

    fn ready(&mut self) -> Ready<Message> {
        self.flush_unsent();
        if !self.forward_buf.is_empty() {
            if let Some(leader) = self.leader.filter(|l| *l != self.id) {
                let commands = std::mem::take(&mut self.forward_buf);
                self.forward_seq += 1;
                let (session, seq) = (self.forward_session, self.forward_seq);
                // A forward claims nothing about this node's storage: it leaves at once.
                let msg = Message::Forward { session, seq, commands };
                self.out.eager_messages.push(Envelope { to: leader, msg });
            } else {
                // The leader was lost between propose and ready; the driver's timeout answers.
                self.forward_buf.clear();
            }
        }
        let mut ready = std::mem::take(&mut self.out);
        let dirty = std::mem::take(&mut self.hard_state_dirty);
        if dirty || self.commit != self.handed_commit {
            let hs = HardState {
                promised: self.promised,
                last_round: self.last_round,
                configs: self.configs.to_pairs(),
                commit: self.commit,
            };
            ready.hard_state = Some(hs.encode());
            // Only the commit index moved: what a crash may lose (see `HardState`).
            ready.hard_state_lazy = !dirty;
            self.handed_promised = self.promised;
            self.handed_commit = self.commit;
        }
        ready.entries = self.log.take_dirty();
        if self.handed < self.commit {
            // The ballot is not part of what was chosen: the same value may be held at one
            // ballot here and another there (a new leader re-proposes in-flight values under
            // its own), so committed entries carry term 0 and are identical on every replica.
            ready.committed = self.log.range(self.handed + 1, self.commit);
            let mine = !self.forwarded_proposals.is_empty();
            for entry in &mut ready.committed {
                entry.term = 0;
                if mine
                    && let Some((origin, request)) = proposal_header(entry)
                    && origin == self.id
                {
                    self.forwarded_proposals.remove(&request);
                }
            }
            debug_assert_eq!(ready.committed.len() as u64, self.commit - self.handed);
            self.handed = self.commit;
        }
        ready.snapshot_wanted = self.snapshot.take_wanted();
        ready
    }

    /// The last `Ready` is carried out: its records and promise are durable. A leader now
    /// counts its own votes for the slots it wrote, which may choose some.
    fn advance(&mut self) {
        self.log.mark_durable();
        self.durable_promised = self.handed_promised;
        if self.is_leader() {
            self.drive_leader();
        }
    }

    fn status(&self) -> Status {
        let role = match self.role {
            RoleState::Leader(_) => Role::Leader,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Follower => Role::Follower,
        };
        Status {
            id: self.id,
            protocol: PROTOCOL_NAME,
            role,
            leader: self.leader,
            term: self.current_ballot().round.max(self.promised.round),
            commit_index: self.commit,
            applied_index: 0,
            members: self.membership().voters.iter().copied().collect(),
        }
    }

    fn guarantees(&self) -> Guarantees {
        let n = self.membership().voters.len();
        Guarantees {
            linearizable_writes: true,
            linearizable_reads: true,
            atomic_compare_and_swap: true,
            has_leader: true,
            fault_tolerance: Some(n.saturating_sub(1) / 2),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let ballot = self.current_ballot().round.max(self.promised.round);
        self.counters.export(ballot)
    }
}

/// How long a forwarded proposal is remembered without being seen chosen (10 minutes of
/// 10 ms ticks: far past any request timeout).
const FORWARDED_PROPOSAL_TICKS: u64 = 60_000;

/// The proposing node and request id the driver put in front of a command
/// (`conclave_core::proposal`), read without copying the command.
fn proposal_header(entry: &Entry) -> Option<(NodeId, RequestId)> {
    if entry.kind != EntryKind::Command || entry.data.len() < proposal::HEADER_LEN {
        return None;
    }
    let origin = u64::from_le_bytes(entry.data[0..8].try_into().ok()?);
    let request = u64::from_le_bytes(entry.data[8..16].try_into().ok()?);
    Some((NodeId(origin), RequestId(request)))
}

/// Counts the members of `members` in `set`.
pub(crate) fn count_in(members: &Membership, set: &BTreeSet<NodeId>) -> usize {
    members.voters.iter().filter(|v| set.contains(v)).count()
}
