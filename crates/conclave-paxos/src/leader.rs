//! The leader's duties between proposals: heartbeats, retransmission, catch-up, failure
//! detection of its own quorum, and its lease.
//!
//! Heartbeats carry the commit index (so learners learn chosen slots) and the leader's tick.
//! Every reply echoes the tick; a follower that replies has reset its failure detector at or
//! after that tick, and for a minimum timeout from then refuses prepares from anyone else. So
//! while a majority echoed a tick `t`, no other proposer can complete phase 1 before `t` plus
//! the minimum timeout (measured by the followers' clocks). The lease ends earlier, at
//! `t + lease` by the leader's clock; `lease_ms` is at least two ticks shorter than the minimum
//! timeout, and whatever remains is the tolerance for clocks running at different rates.
//!
//! A leader that has not heard from a majority for a minimum timeout steps down; one that
//! learns of a higher promise steps down at once. "Heard" counts replies by when they arrive,
//! not by the tick they echo: under load a reply may come back long after the message it
//! answers was sent, and a leader whose acceptors keep answering is not cut off (stepping
//! down then would only throw away every proposal in flight). The lease, which is about
//! safety, still counts from the echoed ticks.

use crate::leader_state::Pending;
use crate::paxos::RoleState;
use crate::{Ballot, Message, Paxos};
use bytes::Bytes;
use conclave_core::{EntryKind, Envelope, NodeId};

impl Paxos {
    pub(crate) fn tick_leader(&mut self) {
        // A leader hears itself: it stays loyal to itself and never promises others.
        self.heard_elapsed = 0;
        self.election_elapsed = 0;
        let heartbeat_due = {
            let RoleState::Leader(l) = &mut self.role else { return };
            l.heartbeat_elapsed += 1;
            l.heartbeat_elapsed >= self.ticks.heartbeat
        };
        if heartbeat_due {
            if let RoleState::Leader(l) = &mut self.role {
                l.heartbeat_elapsed = 0;
            }
            self.broadcast_heartbeat();
            self.retransmit();
        }
        let since = match &self.role {
            RoleState::Leader(l) => l.since,
            _ => return,
        };
        let heard = self.quorum_tick(Some(since), |p| p.heard_at).unwrap_or(since);
        if self.now.saturating_sub(heard) >= self.ticks.timeout_min {
            // Cut off from a majority: whatever we propose cannot be chosen, and the others
            // may elect someone else once their loyalty runs out.
            self.counters.quorum_step_downs_total += 1;
            self.become_follower();
        }
    }

    pub(crate) fn broadcast_heartbeat(&mut self) {
        let RoleState::Leader(l) = &self.role else { return };
        let msg = Message::Heartbeat { ballot: l.ballot, tick: self.now, commit: self.commit };
        for peer in self.configs.members_from(self.commit + 1) {
            if peer != self.id {
                self.out.messages.push(Envelope { to: peer, msg: msg.clone() });
            }
        }
    }

    /// Resends slots a peer has not acknowledged within a heartbeat interval, and prepares to
    /// acceptors whose promise the next slot still needs.
    fn retransmit(&mut self) {
        let RoleState::Leader(l) = &mut self.role else { return };
        let ballot = l.ballot;
        let stale_before = self.now.saturating_sub(self.ticks.heartbeat);
        let last = l.next_slot - 1;
        let batch = self.config.max_batch_entries as u64;
        for peer in self.configs.members_from(self.commit + 1) {
            if peer == self.id {
                continue;
            }
            if let Some(from) = l.first_unacked(peer, stale_before) {
                let entries = self.log.range(from, last.min(from + batch - 1));
                let msg = Message::Accept { ballot, tick: self.now, commit: self.commit, entries };
                self.out.messages.push(Envelope { to: peer, msg });
            }
        }
        // Prepares for the next slot's acceptors go out again on the next assignment attempt.
        let promisers = l.promisers.clone();
        l.prepared.retain(|p| promisers.contains(p));
        self.drive_leader();
    }

    /// The newest leader tick that a majority of the current acceptors (this node counting as
    /// "now") echoed; peers that never answered count as `silent`, or not at all.
    pub(crate) fn quorum_ack_tick(&self, silent: Option<u64>) -> Option<u64> {
        self.quorum_tick(silent, |p| p.acked_tick)
    }

    /// The newest tick that a majority of the current acceptors reached by `pick` (this node
    /// counting as "now"); peers without one count as `silent`, or not at all.
    fn quorum_tick(
        &self,
        silent: Option<u64>,
        pick: impl Fn(&crate::leader_state::Progress) -> Option<u64>,
    ) -> Option<u64> {
        let RoleState::Leader(l) = &self.role else { return None };
        let config = self.configs.at(self.commit + 1);
        let mut ticks: Vec<u64> = config
            .voters
            .iter()
            .filter_map(|v| {
                if *v == self.id {
                    Some(self.now)
                } else {
                    l.progress.get(v).and_then(&pick).or(silent)
                }
            })
            .collect();
        ticks.sort_unstable_by(|a, b| b.cmp(a));
        ticks.get(config.quorum() - 1).copied()
    }

    /// Whether this leader may answer reads from its own state: a majority echoed a tick less
    /// than a lease ago.
    pub(crate) fn lease_valid(&self) -> bool {
        if self.ticks.lease == 0 || !self.is_leader() {
            return false;
        }
        self.quorum_ack_tick(None).is_some_and(|t| self.now < t + self.ticks.lease)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        (first, last): (u64, u64),
        commit: u64,
        log_last: u64,
        need_from: Option<u64>,
    ) {
        self.observe_round(ballot.round);
        let RoleState::Leader(l) = &mut self.role else { return };
        if l.ballot != ballot {
            return;
        }
        let p = l.progress_mut(from);
        p.known = true;
        p.commit = commit;
        p.log_last = log_last;
        p.acked_tick = p.acked_tick.max(Some(tick));
        p.heard_at = Some(self.now);
        if first <= last {
            for (_, slot) in l.inflight.range_mut(first..=last) {
                slot.acks.insert(from);
            }
        }
        self.drive_leader();
        if let Some(from_slot) = need_from {
            self.send_catchup(from, from_slot);
        } else if first > last && log_last >= self.commit {
            // The batch started past the acceptor's log: resend from where its log ends.
            self.resend_accepts(from, log_last + 1);
        }
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        commit: u64,
        log_last: u64,
        need_from: Option<u64>,
    ) {
        let RoleState::Leader(l) = &mut self.role else { return };
        if l.ballot != ballot {
            return;
        }
        let p = l.progress_mut(from);
        p.known = true;
        p.commit = commit;
        p.log_last = log_last;
        p.acked_tick = p.acked_tick.max(Some(tick));
        p.heard_at = Some(self.now);
        if let Some(from_slot) = need_from {
            self.send_catchup(from, from_slot);
        }
    }

    pub(crate) fn on_reject(
        &mut self,
        _from: NodeId,
        ballot: Ballot,
        promised: Ballot,
        _leader: Option<NodeId>,
    ) {
        self.observe_round(promised.round);
        if let RoleState::Leader(l) = &self.role
            && l.ballot == ballot
            && promised > ballot
        {
            // Preempted (§2.2): an acceptor promised a higher ballot.
            self.become_follower();
        }
        // A rejected candidate simply waits for its timer and retries with a higher round.
    }

    /// Proposals a non-leader handed over. Dropped when this node no longer leads, when the
    /// batch was taken before (a duplicate), or when the queue is full; the proposing node's
    /// caller then times out.
    pub(crate) fn on_forward(
        &mut self,
        from: NodeId,
        session: u64,
        seq: u64,
        commands: Vec<Bytes>,
    ) {
        let max_pending = self.config.max_pending_proposals;
        let RoleState::Leader(l) = &mut self.role else { return };
        if !self.forwards_taken.admit(from, session, seq, self.now) {
            return;
        }
        for data in commands {
            if l.pending.len() >= max_pending {
                break;
            }
            l.pending.push_back(Pending { request: None, kind: EntryKind::Command, data });
        }
        self.drive_leader();
    }

    fn resend_accepts(&mut self, peer: NodeId, from: u64) {
        let RoleState::Leader(l) = &self.role else { return };
        let last = l.next_slot - 1;
        if from > last || from <= self.commit {
            return;
        }
        let batch = self.config.max_batch_entries as u64;
        let entries = self.log.range(from, last.min(from + batch - 1));
        let msg =
            Message::Accept { ballot: l.ballot, tick: self.now, commit: self.commit, entries };
        self.send(peer, msg);
    }

    /// Sends a lagging learner the chosen slots from `from` on, or the snapshot when they were
    /// compacted. The same batch is not resent before a heartbeat interval (a snapshot: before
    /// a maximum timeout) has passed.
    pub(crate) fn send_catchup(&mut self, peer: NodeId, from: u64) {
        let needs_snapshot = from < self.log.first_index();
        let interval = if needs_snapshot { self.ticks.timeout_max } else { self.ticks.heartbeat };
        let now = self.now;
        let RoleState::Leader(l) = &mut self.role else { return };
        let ballot = l.ballot;
        let p = l.progress_mut(peer);
        if p.catchup.is_some_and(|(f, t)| f == from && now < t + interval) {
            return;
        }
        if needs_snapshot {
            // The first attempt asks for the data (read back from the store); the next sends.
            let Some(snapshot) = self.snapshot.for_sending() else { return };
            let RoleState::Leader(l) = &mut self.role else { return };
            l.progress_mut(peer).catchup = Some((from, now));
            self.counters.snapshots_sent_total += 1;
            let configs = self.configs.to_pairs();
            self.send(peer, Message::InstallSnapshot { ballot, tick: now, snapshot, configs });
            return;
        }
        p.catchup = Some((from, now));
        let batch = self.config.max_batch_entries as u64;
        let to = self.commit.min(from + batch - 1);
        if to < from {
            return;
        }
        let entries = self.log.range(from, to);
        self.counters.catchup_entries_total += entries.len() as u64;
        self.send(peer, Message::Chosen { ballot, tick: now, commit: self.commit, entries });
    }
}
