//! The follower's side of replication: the AppendEntries consistency check and conflict
//! resolution (§5.3), heartbeats, and installing a leader's snapshot (§7).
//!
//! Every answer here is sent in the same `Ready` that hands out the entries and hard state it
//! vouches for, so it leaves only once they are durable.

use crate::{Raft, RaftMessage};
use conclave_core::{Entry, NodeId, Snapshot};

impl Raft {
    pub(crate) fn handle_append_entries(
        &mut self,
        from: NodeId,
        (mut prev_log_index, mut prev_log_term): (u64, u64),
        mut entries: Vec<Entry>,
        leader_commit: u64,
        round: u64,
    ) {
        if prev_log_index < self.commit {
            // Every committed entry is in every later leader's log (Leader Completeness,
            // §5.4.3), so the check may start at the commit index; what lies below it may even
            // be compacted away here.
            let skip = (self.commit - prev_log_index) as usize;
            entries.drain(..skip.min(entries.len()));
            prev_log_index = self.commit;
            prev_log_term = self.log.term_at(self.commit).expect("the commit index is in the log");
        }
        if self.log.term_at(prev_log_index) != Some(prev_log_term) {
            self.counters.append_rejections += 1;
            let (conflict_term, conflict_index) = if prev_log_index > self.log.last_index() {
                (None, self.log.last_index() + 1)
            } else {
                let term = self.log.term_at(prev_log_index).expect("index lies within the log");
                let first = self.log.first_index_of_term(term, prev_log_index);
                (Some(term), first.max(self.commit + 1))
            };
            let reply = RaftMessage::AppendEntriesResponse {
                term: self.term,
                success: false,
                match_index: 0,
                reject_index: prev_log_index,
                conflict_term,
                conflict_index,
                round,
            };
            return self.send(from, reply);
        }
        let last_new = prev_log_index + entries.len() as u64;
        if let Some(position) = self.log.find_conflict(&entries) {
            // Drop the conflicting suffix and everything after it, then take the leader's.
            let suffix = &entries[position..];
            self.memberships.truncated(suffix[0].index);
            self.log.truncate_and_append(suffix);
            self.memberships.appended(suffix);
        }
        // Only what this message proved to match may be declared committed (§5.3).
        let commit = leader_commit.min(last_new);
        if commit > self.commit {
            self.commit = commit;
        }
        let reply = RaftMessage::AppendEntriesResponse {
            term: self.term,
            success: true,
            match_index: last_new,
            reject_index: 0,
            conflict_term: None,
            conflict_index: 0,
            round,
        };
        self.send(from, reply);
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, commit: u64, round: u64) {
        // The leader capped `commit` at what it knows this log holds.
        let commit = commit.min(self.log.last_index());
        if commit > self.commit {
            self.commit = commit;
        }
        self.send(from, RaftMessage::HeartbeatResponse { term: self.term, round });
    }

    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index <= self.commit {
            // Nothing new: everything through the commit index matches the leader already.
            let reply =
                RaftMessage::InstallSnapshotResponse { term: self.term, match_index: self.commit };
            return self.send(from, reply);
        }
        if self.log.term_at(index) == Some(term) {
            // The log already holds the snapshot's last entry, so it matches the leader's log
            // through it (Log Matching, §5.3): keep the log and commit through it.
            self.commit = index;
        } else {
            // Discard the whole log: it conflicts with or falls short of the snapshot (§7).
            self.log.restore(index, term);
            self.memberships.restored(index, snapshot.meta.membership.clone());
            self.commit = index;
            self.applied = index;
            self.counters.snapshots_installed += 1;
            self.snapshot.replace(snapshot.clone());
            self.out.snapshot = Some(snapshot);
        }
        let reply = RaftMessage::InstallSnapshotResponse { term: self.term, match_index: index };
        self.send(from, reply);
    }
}
