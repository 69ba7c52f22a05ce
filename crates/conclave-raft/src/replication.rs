//! The leader's side of log replication (§5.3) and commitment (§5.4.2): appending its own
//! entries, pacing AppendEntries per follower (probe, pipeline, snapshot), heartbeats,
//! check-quorum (thesis §6.2), and advancing the commit index.

use crate::PlantedBug;
use crate::progress::{Progress, ReplicationState};
use crate::raft::State;
use crate::{Raft, RaftMessage};
use conclave_core::{Entry, EntryKind, NodeId};

impl Raft {
    /// Appends one of the leader's own entries and schedules its replication. A membership
    /// entry takes effect at once (thesis §4.1).
    pub(crate) fn append_as_leader(&mut self, entry: Entry) {
        let is_membership = entry.kind == EntryKind::Membership;
        self.memberships.appended(std::slice::from_ref(&entry));
        self.log.append(entry);
        if is_membership {
            self.sync_progress();
        }
        if let Some(lead) = &mut self.lead {
            lead.append_pending = true;
        }
        // A lone voter commits on its own.
        self.maybe_commit();
    }

    /// Tracks every new voter at once. A removed voter keeps being replicated to until its
    /// removal commits, so that it learns of it and stops campaigning (see `after_leader_commit`).
    fn sync_progress(&mut self) {
        let next = self.log.last_index() + 1;
        let voters = self.memberships.current().voters.clone();
        let Some(lead) = &mut self.lead else { return };
        for voter in voters.into_iter().filter(|&v| v != self.id) {
            lead.progress.entry(voter).or_insert_with(|| Progress::new(next));
        }
    }

    /// Advances the commit index to the highest index stored on a majority of voters — but
    /// only through an entry of the current term (§5.4.2; Figure 8 shows why). The leader's own
    /// entries count once they are durable: its appends leave before its own sync (thesis
    /// §10.2.1), so an entry may be stored by followers before it is stored by the leader.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let Some(lead) = &mut self.lead else { return false };
        let membership = self.memberships.current();
        let mut matched: Vec<u64> = membership
            .voters
            .iter()
            .map(|v| {
                if *v == self.id {
                    self.log.durable_index()
                } else {
                    lead.progress.get(v).map_or(0, |p| p.match_index)
                }
            })
            .collect();
        if matched.is_empty() {
            return false;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[membership.quorum() - 1];
        if candidate <= self.commit {
            return false;
        }
        let by_counting = self.config.planted_bug == Some(PlantedBug::CommitPreviousTermByCounting);
        if self.log.term_at(candidate) != Some(self.term) && !by_counting {
            return false;
        }
        self.commit = candidate;
        lead.commit_pending = true;
        self.after_leader_commit();
        true
    }

    fn after_leader_commit(&mut self) {
        if self.memberships.current_index() <= self.commit {
            let voters = &self.memberships.current().voters;
            if let Some(lead) = &mut self.lead {
                lead.progress.retain(|id, _| voters.contains(id));
            }
        }
        // Reads that waited for the first entry of this term to commit may proceed (thesis
        // §6.4 step 1).
        if self.log.term_at(self.commit) == Some(self.term) {
            let waiting = match &mut self.lead {
                Some(lead) => std::mem::take(&mut lead.reads.waiting_commit),
                None => Vec::new(),
            };
            for origin in waiting {
                self.leader_read(origin);
            }
        }
        // A leader that removed itself leads until the removal commits, then steps down
        // (thesis §4.2.2).
        if !self.promotable() && self.memberships.current_index() <= self.commit {
            self.become_follower(self.term, None);
        }
    }

    pub(crate) fn tick_leader(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.ticks.election_min {
            self.election_elapsed = 0;
            let deposed_reads = self.config.planted_bug == Some(PlantedBug::ReadFromDeposedLeader);
            if self.config.check_quorum && !deposed_reads && !self.quorum_active() {
                self.counters.check_quorum_step_downs += 1;
                return self.become_follower(self.term, None);
            }
            if let Some(lead) = &mut self.lead {
                lead.progress.values_mut().for_each(|p| p.recent_active = false);
            }
        }
        if let Some(lead) = &mut self.lead {
            // A transfer that has not finished within an election timeout has failed (§3.10).
            if lead.transferee.is_some()
                && self.now - lead.transfer_started >= self.ticks.election_min
            {
                lead.transferee = None;
            }
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.ticks.heartbeat {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a majority of voters was heard from since the last check (thesis §6.2).
    fn quorum_active(&self) -> bool {
        let Some(lead) = &self.lead else { return false };
        let membership = self.memberships.current();
        let active = membership
            .voters
            .iter()
            .filter(|v| **v == self.id || lead.progress.get(v).is_some_and(|p| p.recent_active))
            .count();
        active >= membership.quorum()
    }

    /// Starts a read round and sends every follower a heartbeat carrying it.
    fn broadcast_heartbeat(&mut self) {
        let Some(lead) = &mut self.lead else { return };
        lead.reads.start_round(self.now);
        let peers: Vec<NodeId> = lead.progress.keys().copied().collect();
        for peer in peers {
            self.send_heartbeat(peer);
        }
    }

    fn send_heartbeat(&mut self, to: NodeId) {
        let Some(lead) = &self.lead else { return };
        let Some(progress) = lead.progress.get(&to) else { return };
        // Only what this follower is known to hold may be declared committed to it, since a
        // heartbeat skips the consistency check.
        let commit = self.commit.min(progress.match_index);
        let msg = RaftMessage::Heartbeat { term: self.term, commit, round: lead.reads.round() };
        self.send_eager(to, msg);
    }

    /// Sends what was queued since effects were last collected: new entries and commit
    /// progress to every follower, and a read round to those that got no append.
    pub(crate) fn flush_leader(&mut self) {
        let Some(lead) = &mut self.lead else { return };
        let round_needed = lead.reads.needs_round();
        let (append, commit) = (lead.append_pending, lead.commit_pending);
        if !(round_needed || append || commit) {
            return;
        }
        lead.append_pending = false;
        lead.commit_pending = false;
        if round_needed {
            // Started before the appends go out, so that they carry it too.
            lead.reads.start_round(self.now);
            self.counters.read_index_rounds += 1;
        }
        let peers: Vec<NodeId> = lead.progress.keys().copied().collect();
        for peer in peers {
            let sent = (append || commit) && self.send_appends(peer, commit);
            if round_needed && !sent {
                self.send_heartbeat(peer);
            }
        }
    }

    /// Sends `to` every append the pacing allows: in replicate state as many as fit in the
    /// in-flight window (pipelining), otherwise one.
    pub(crate) fn send_appends(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let sent = self.send_append(to, allow_empty);
        if sent {
            while self.send_append(to, false) {}
        }
        sent
    }

    /// Sends `to` the next entries it needs, or a snapshot if they are compacted. With
    /// `allow_empty`, sends even when there is nothing new (to carry the commit index or probe).
    /// Returns whether anything was sent.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let last_index = self.log.last_index();
        let Some(lead) = &mut self.lead else { return false };
        let Some(progress) = lead.progress.get_mut(&to) else { return false };
        if progress.is_paused(self.config.max_inflight_appends) {
            return false;
        }
        progress.next_index = progress.next_index.clamp(1, last_index + 1);
        let prev_log_index = progress.next_index - 1;
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            return self.send_snapshot(to);
        };
        let entries = self.log.entries_from(
            progress.next_index,
            self.config.max_entries_per_append,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        match entries.last() {
            Some(last) => progress.sent_entries(last.index),
            None if progress.state == ReplicationState::Probe => progress.probe_sent = true,
            None => {}
        }
        let msg = RaftMessage::AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit,
            round: lead.reads.round(),
        };
        self.send_eager(to, msg);
        true
    }

    /// The follower needs entries this log no longer holds: send the whole snapshot (§7).
    fn send_snapshot(&mut self, to: NodeId) -> bool {
        // Compaction only ever follows a snapshot, so one exists whenever entries are missing.
        // Its data is read back from the store the first time (the next attempt sends it).
        let Some(snapshot) = self.snapshot.for_sending() else { return false };
        let Some(lead) = &mut self.lead else { return false };
        let Some(progress) = lead.progress.get_mut(&to) else { return false };
        progress.become_snapshot(snapshot.meta.index, self.now);
        self.counters.snapshots_sent += 1;
        self.send(to, RaftMessage::InstallSnapshot { term: self.term, snapshot });
        true
    }

    /// Records that `from` answered in this term, echoing read round `round`.
    fn heard_from(&mut self, from: NodeId, round: u64) -> Option<&mut Progress> {
        let progress = self.lead.as_mut()?.progress.get_mut(&from)?;
        progress.recent_active = true;
        progress.acked_round = progress.acked_round.max(round);
        Some(progress)
    }

    pub(crate) fn handle_append_success(&mut self, from: NodeId, match_index: u64, round: u64) {
        let last_index = self.log.last_index();
        let Some(progress) = self.heard_from(from, round) else { return };
        let updated = progress.maybe_update(match_index);
        if updated {
            match progress.state {
                ReplicationState::Probe => progress.become_replicate(),
                ReplicationState::Snapshot { index, .. } if progress.match_index >= index => {
                    progress.become_probe()
                }
                _ => {}
            }
        }
        let caught_up = progress.match_index == last_index;
        if updated {
            self.maybe_commit();
            let transferee = self.lead.as_ref().and_then(|l| l.transferee);
            if transferee == Some(from) && caught_up {
                self.send(from, RaftMessage::TimeoutNow { term: self.term });
            }
        }
        self.send_appends(from, false);
        self.check_read_acks();
    }

    pub(crate) fn handle_append_rejection(
        &mut self,
        from: NodeId,
        reject_index: u64,
        conflict_term: Option<u64>,
        conflict_index: u64,
        round: u64,
    ) {
        // Skip the follower's whole conflicting term: resume after the leader's last entry of
        // that term if it has one, else at the first index the follower holds of it (§5.3).
        let hint_next = match conflict_term {
            None => conflict_index,
            Some(term) => self.log.last_index_of_term(term).map_or(conflict_index, |i| i + 1),
        };
        let Some(progress) = self.heard_from(from, round) else { return };
        if progress.maybe_decrease(reject_index, hint_next) {
            self.send_append(from, true);
        }
        self.check_read_acks();
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.state != State::Leader {
            return;
        }
        let (now, wait, window) =
            (self.now, self.ticks.election_min, self.config.max_inflight_appends);
        let last_index = self.log.last_index();
        let Some(progress) = self.heard_from(from, round) else { return };
        match progress.state {
            // The snapshot or its answer may be lost: after a while, probe again.
            ReplicationState::Snapshot { sent_at, .. } if now - sent_at >= wait => {
                progress.become_probe()
            }
            ReplicationState::Probe => progress.probe_sent = false,
            // A full window may hold lost appends: let one more through to find out.
            ReplicationState::Replicate if progress.inflight.len() >= window => {
                progress.inflight.pop_front();
            }
            _ => {}
        }
        if progress.match_index < last_index {
            self.send_appends(from, true);
        }
        self.check_read_acks();
    }

    pub(crate) fn handle_snapshot_response(&mut self, from: NodeId, match_index: u64) {
        let Some(progress) = self.heard_from(from, 0) else { return };
        progress.maybe_update(match_index);
        if let ReplicationState::Snapshot { .. } = progress.state {
            progress.become_probe();
        }
        self.send_appends(from, true);
    }
}
