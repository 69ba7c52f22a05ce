//! Totem's `conclave_core::Protocol` face.

use crate::totem::{Phase, Totem};
use crate::{Delivery, TotemMessage};
use bytes::Bytes;
use conclave_core::{Guarantees, NodeId, Protocol, Ready, RequestId, Role, Snapshot, Status};

impl Protocol for Totem {
    type Message = TotemMessage;

    fn name(&self) -> &'static str {
        "totem"
    }

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.now += 1;
        self.snapshot.tick();
        match self.phase {
            Phase::Gather(_) | Phase::Commit(_) => self.tick_membership(),
            Phase::Recovery(_) | Phase::Operational => self.tick_ring(),
        }
    }

    fn step(&mut self, from: NodeId, msg: TotemMessage) {
        if from == self.id || !self.configured.contains(from) {
            return;
        }
        self.last_heard.insert(from, self.now);
        match msg {
            TotemMessage::Mcast(m) => self.on_mcast(m),
            TotemMessage::Token(t) => self.on_token(t),
            TotemMessage::Join(j) => self.on_join(from, j),
            TotemMessage::Commit(ct) => self.on_commit_token(ct),
            TotemMessage::MergeDetect(md) => self.on_merge_detect(from, md),
            TotemMessage::Sync(s) => self.on_sync(s),
            TotemMessage::Wake(w) => self.on_wake(w),
        }
    }

    fn propose(&mut self, id: RequestId, command: Bytes) {
        self.propose_command(id, command);
    }

    fn read(&mut self, id: RequestId) {
        self.read_marker(id);
    }

    fn snapshot_taken(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if index <= self.log.snapshot_index() || index > self.applied {
            return;
        }
        self.log.compact(index);
        self.snapshot.replace(snapshot);
        self.out.compact_to = Some(index);
    }

    fn snapshot_loaded(&mut self, snapshot: Snapshot) {
        self.snapshot.loaded(snapshot);
    }

    fn has_ready(&self) -> bool {
        !self.out.is_empty() || self.snapshot.is_wanted() || self.hard_state() != self.persisted
    }

    fn ready(&mut self) -> Ready<TotemMessage> {
        let hs = self.hard_state();
        // The committed index may be lost in a crash: entries committed here are durable on
        // every member of their primary component, and a restarted member commits them again
        // from its log when its next primary component opens. The ring sequence number and the
        // installed ring must be synced before anything that depends on them leaves.
        let hard_state_lazy =
            hs.ring_seq_max == self.persisted.ring_seq_max && hs.ring == self.persisted.ring;
        let hard_state = (hs != self.persisted).then(|| {
            self.persisted = hs;
            hs.encode()
        });
        self.handed = self.ring.as_ref().map(|r| (r.id, r.log_seq));
        let out = std::mem::take(&mut self.out);
        Ready {
            snapshot: out.snapshot,
            hard_state,
            hard_state_lazy,
            entries: out.entries,
            compact_to: out.compact_to,
            eager_messages: out.eager,
            messages: out.messages,
            committed: out.committed,
            reads: out.reads,
            rejected: out.rejected,
            snapshot_wanted: self.snapshot.take_wanted(),
        }
    }

    /// The last `Ready`'s entries are durable: the token may now acknowledge them.
    fn advance(&mut self) {
        if let (Some((id, seq)), Some(ring)) = (self.handed.take(), self.ring.as_mut())
            && ring.id == id
        {
            ring.durable_seq = ring.durable_seq.max(seq);
        }
    }

    fn status(&self) -> Status {
        Status {
            id: self.id,
            protocol: "totem",
            role: if self.is_primary() { Role::Member } else { Role::Recovering },
            leader: None,
            term: self.ring_id().map_or(0, |r| r.seq),
            commit_index: self.committed,
            applied_index: 0,
            members: self.configured.voters.iter().copied().collect(),
        }
    }

    fn guarantees(&self) -> Guarantees {
        // What clients are told: with agreed delivery, an acknowledged write can be lost.
        let safe = self.config.delivery == Delivery::Safe;
        Guarantees {
            linearizable_writes: safe,
            linearizable_reads: safe,
            atomic_compare_and_swap: safe,
            has_leader: false,
            fault_tolerance: Some(self.configured.voters.len().saturating_sub(1) / 2),
        }
    }

    fn message_kind(&self, msg: &TotemMessage) -> &'static str {
        msg.kind()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counters.export()
    }
}
