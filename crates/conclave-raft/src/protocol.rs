//! Raft as a [`conclave_core::Protocol`]: the events it takes and the `Ready` it hands out.

use crate::{Raft, RaftMessage};
use bytes::Bytes;
use conclave_core::{
    ConsensusError, Guarantees, NodeId, Protocol, Ready, RequestId, Snapshot, Status,
};

impl Protocol for Raft {
    type Message = RaftMessage;

    fn name(&self) -> &'static str {
        "raft"
    }

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.tick_inner();
    }

    fn step(&mut self, from: NodeId, msg: RaftMessage) {
        self.step_inner(from, msg);
    }

    /// On the leader, appends `command`; on a follower that knows its leader, forwards it
    /// there (the command's own header names this replica, so the driver answers its caller
    /// when the entry is applied here); otherwise refuses with `NotLeader`.
    fn propose(&mut self, id: RequestId, command: Bytes) {
        self.propose_inner(id, command);
    }

    fn read(&mut self, id: RequestId) {
        self.read_inner(id);
    }

    /// Keeps the snapshot (its metadata; the data is read back when a follower needs it) to
    /// send to lagging followers and compacts the log below it,
    /// keeping `snapshot_keep_entries`. The snapshot's term and membership are taken from
    /// this replica's log, which knows the membership in effect at its index.
    fn snapshot_taken(&mut self, mut snapshot: Snapshot) {
        let index = snapshot.meta.index;
        let newest = self.snapshot.index();
        if index <= newest || index > self.applied || index > self.log.last_index() {
            return;
        }
        if let Some(term) = self.log.term_at(index) {
            snapshot.meta.term = term;
        }
        snapshot.meta.membership = self.memberships.at(index).clone();
        self.snapshot.replace(snapshot);
        let compact_to = index.saturating_sub(self.config.snapshot_keep_entries);
        if compact_to > self.log.offset_index() {
            self.memberships.compacted(compact_to);
            self.log.compact(compact_to);
            self.out.compact_to = Some(compact_to);
        }
    }

    fn snapshot_loaded(&mut self, snapshot: Snapshot) {
        self.snapshot.loaded(snapshot);
    }

    fn has_ready(&self) -> bool {
        let out = &self.out;
        out.snapshot.is_some()
            || self.snapshot.is_wanted()
            || out.compact_to.is_some()
            || !out.eager.is_empty()
            || !out.messages.is_empty()
            || !out.reads.is_empty()
            || !out.rejected.is_empty()
            || self.forwarded_reads.has_queued()
            || self.hard_state() != self.persisted
            || self.log.has_unstable()
            || self.commit > self.applied
            || (self.config.planted_bug == Some(crate::PlantedBug::PhantomReady)
                && self.counters.elections_won > 0)
            || self
                .lead
                .as_ref()
                .is_some_and(|l| l.append_pending || l.commit_pending || l.reads.needs_round())
    }

    fn ready(&mut self) -> Ready<RaftMessage> {
        self.flush_leader();
        self.flush_follower_reads();
        // Field order is the order the driver carries them out in.
        let snapshot = self.out.snapshot.take();
        let hard_state = self.hard_state();
        // The commit index may be lost in a crash (a restarted replica relearns it), so a hard
        // state that moved only there is written without a sync of its own.
        let hard_state_lazy = hard_state.term == self.persisted.term
            && hard_state.voted_for == self.persisted.voted_for;
        let hard_state = (hard_state != self.persisted).then(|| {
            self.persisted = hard_state;
            hard_state.encode()
        });
        let entries = self.log.take_unstable();
        let compact_to = self.out.compact_to.take();
        let eager_messages = std::mem::take(&mut self.out.eager);
        let messages = std::mem::take(&mut self.out.messages);
        let committed = if self.commit > self.applied {
            let committed = self.log.slice(self.applied + 1, self.commit);
            self.applied = self.commit;
            committed
        } else {
            Vec::new()
        };
        Ready {
            snapshot,
            hard_state,
            hard_state_lazy,
            entries,
            compact_to,
            eager_messages,
            messages,
            committed,
            reads: std::mem::take(&mut self.out.reads),
            rejected: std::mem::take(&mut self.out.rejected),
            snapshot_wanted: self.snapshot.take_wanted(),
        }
    }

    /// The entries handed out so far are durable; the leader may now count its own.
    fn advance(&mut self) {
        self.log.mark_durable();
        if self.lead.is_some() {
            self.maybe_commit();
        }
    }

    fn status(&self) -> Status {
        Status {
            id: self.id,
            protocol: "raft",
            role: self.role(),
            leader: self.leader,
            term: self.term,
            commit_index: self.commit,
            applied_index: 0,
            members: self.memberships.current().voters.iter().copied().collect(),
        }
    }

    fn guarantees(&self) -> Guarantees {
        let voters = self.memberships.current().voters.len();
        Guarantees {
            linearizable_writes: true,
            linearizable_reads: true,
            atomic_compare_and_swap: true,
            has_leader: true,
            fault_tolerance: Some(voters.saturating_sub(1) / 2),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counters.export()
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ConsensusError> {
        Raft::transfer_leadership(self, to)
    }
}
