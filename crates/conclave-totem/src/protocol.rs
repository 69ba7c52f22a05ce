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
        self.snapshot = Some(snapshot);
        self.out.compact_to = Some(index);
    }

    fn has_ready(&self) -> bool {
        !self.out.is_empty() || self.hard_state() != self.persisted
    }

    fn ready(&mut self) -> Ready<TotemMessage> {
        let hs = self.hard_state();
        let hard_state = (hs != self.persisted).then(|| {
            self.persisted = hs;
            hs.encode()
        });
        let out = std::mem::take(&mut self.out);
        Ready {
            snapshot: out.snapshot,
            hard_state,
            entries: out.entries,
            compact_to: out.compact_to,
            messages: out.messages,
            committed: out.committed,
            reads: out.reads,
            rejected: out.rejected,
            ..Ready::default()
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

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counters.export()
    }
}
