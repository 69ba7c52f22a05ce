//! Handling peers' messages: the scuttlebutt exchange (van Renesse et al. 2008, §3.2).
//!
//! Every message first advances the clock by the HLC receive rule. Every digest received is
//! recorded as what its sender acknowledged holding — the basis for tombstone collection, the
//! write quorum and the convergence measurement.

use crate::delta::{self, Composed};
use crate::gossip::Gossip;
use crate::message::{Body, Deltas, Heartbeat, Message, Update, WireSize};
use crate::versions::VersionVector;
use conclave_core::NodeId;

impl Gossip {
    pub(crate) fn on_message(&mut self, from: NodeId, msg: Message) {
        if from == self.id {
            return;
        }
        let now_ms = self.physical_ms();
        self.clock.receive(now_ms, msg.hlc);
        match msg.body {
            Body::Syn { members, digest, congested } => {
                self.on_syn(from, &members, &digest, congested);
            }
            Body::Ack { members, digest, deltas, congested } => {
                self.on_ack(from, &members, &digest, &deltas, congested);
            }
            Body::Ack2 { digest, deltas } => self.on_ack2(from, &digest, &deltas),
            Body::Receipt { digest } => self.acknowledge(from, &digest),
            Body::MerkleProbe { children } => self.on_merkle_probe(from, &children),
            Body::MerkleLeaves { subtrees } => self.on_merkle_leaves(from, &subtrees),
            Body::MerkleEntries { leaves, updates, reply } => {
                self.on_merkle_entries(from, &leaves, &updates, reply);
            }
        }
        self.after_event();
    }

    /// A round opener: answer with our digest and what the opener lacks.
    fn on_syn(
        &mut self,
        from: NodeId,
        members: &[(NodeId, Heartbeat)],
        digest: &VersionVector,
        congested: bool,
    ) {
        self.observe(members, congested);
        self.acknowledge(from, digest);
        let members = self.members.digest();
        let mut body = Body::Ack {
            members,
            digest: self.have.clone(),
            deltas: Deltas::default(),
            congested: self.flow.congested(),
        };
        let composed = self.compose_for(digest, &body);
        if let Body::Ack { deltas, congested, .. } = &mut body {
            *deltas = composed.deltas;
            *congested |= composed.overflow;
        }
        self.send(from, body);
    }

    /// The peer's answer: merge its deltas, then send what it lacks.
    fn on_ack(
        &mut self,
        from: NodeId,
        members: &[(NodeId, Heartbeat)],
        digest: &VersionVector,
        deltas: &Deltas,
        congested: bool,
    ) {
        self.observe(members, congested);
        self.acknowledge(from, digest);
        self.merge_deltas(from, deltas);
        let mut body = Body::Ack2 { digest: self.have.clone(), deltas: Deltas::default() };
        let composed = self.compose_for(digest, &body);
        if let Body::Ack2 { deltas, .. } = &mut body {
            *deltas = composed.deltas;
        }
        self.send(from, body);
    }

    /// The opener's deltas: merge them and confirm with our new digest.
    fn on_ack2(&mut self, from: NodeId, digest: &VersionVector, deltas: &Deltas) {
        self.acknowledge(from, digest);
        if deltas.is_empty() {
            return;
        }
        self.merge_deltas(from, deltas);
        self.send(from, Body::Receipt { digest: self.have.clone() });
    }

    fn observe(&mut self, members: &[(NodeId, Heartbeat)], congested: bool) {
        self.members.observe(members, self.ticks);
        if congested {
            self.flow.note_congestion();
        }
    }

    /// Records `digest` as what `peer` holds. Digests can arrive out of order; coverage only
    /// grows.
    pub(crate) fn acknowledge(&mut self, peer: NodeId, digest: &VersionVector) {
        if !self.members.is_live(peer) {
            // A pruned or unknown member's acknowledgement counts once it is a member again.
            return;
        }
        self.acked.entry(peer).or_default().merge(digest);
    }

    /// Deltas for a peer whose digest is `digest`, within what is left of the MTU once the
    /// rest of `body` is counted.
    fn compose_for(&mut self, digest: &VersionVector, body: &Body) -> Composed {
        let fixed = self.clock.now().wire_size() + body.wire_size() - Deltas::default().wire_size();
        let budget = self.config.mtu_bytes.saturating_sub(fixed);
        let rotation = self.rng.next_u64() as usize;
        let composed = delta::compose(&self.store, &self.have, digest, budget, rotation);
        if composed.overflow {
            self.flow.note_congestion();
        }
        composed
    }

    /// Merges deltas: each write by last-writer-wins, then the coverage they carry.
    fn merge_deltas(&mut self, from: NodeId, deltas: &Deltas) {
        let mut repairs: Vec<Update> = Vec::new();
        for update in &deltas.updates {
            self.merge_update(update, &mut repairs);
        }
        for (origin, hlc) in delta::coverage(deltas) {
            self.have.raise(origin, hlc);
        }
        self.send_repairs(from, repairs);
    }

    /// Sends tombstones that stop stale values a peer offered.
    pub(crate) fn send_repairs(&mut self, to: NodeId, repairs: Vec<Update>) {
        if !repairs.is_empty() {
            self.send(
                to,
                Body::MerkleEntries { leaves: Vec::new(), updates: repairs, reply: false },
            );
        }
    }
}
