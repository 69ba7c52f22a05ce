//! What gossip replicas send each other, and the exact size of each message on the wire.
//!
//! A round between an initiator `p` and a peer `q` is Cassandra-style three-way scuttlebutt
//! (van Renesse et al. 2008, §3.2): `p` sends its digest ([`Body::Syn`]); `q` answers with its
//! own digest and the deltas `p` lacks ([`Body::Ack`]); `p` sends the deltas `q` lacks
//! ([`Body::Ack2`]); `q` confirms with its new digest ([`Body::Receipt`]) so `p` learns at once
//! that the writes arrived. Merkle repair is a separate exchange of three messages.
//!
//! Sizes are computed exactly as postcard encodes (varints for integers, a length before every
//! sequence, one byte per option tag and bool), so the MTU budget is enforced without encoding.

use crate::hlc::{Hlc, Stamp};
use crate::versions::VersionVector;
use bytes::Bytes;
use conclave_core::NodeId;
use serde::{Deserialize, Serialize};

/// One replicated write: a key's new value, or a tombstone when `value` is `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub key: Bytes,
    pub value: Option<Bytes>,
    pub stamp: Stamp,
}

/// A member's liveness counter: the generation goes up at every restart, the counter every
/// gossip round. Ordered lexicographically.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Heartbeat {
    pub generation: u64,
    pub counter: u64,
}

/// Updates in scuttlebutt order, and how far each origin is now covered.
///
/// `through` is authoritative: for each origin listed, the receiver covers it through the given
/// reading once it has merged `updates` (they are a prefix, in version order, of what the
/// sender holds from that origin above the receiver's digest).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deltas {
    pub updates: Vec<Update>,
    pub through: VersionVector,
}

impl Deltas {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.through.is_empty()
    }
}

/// A message: the sender's clock reading (merged by the receiver, per the HLC receive rule)
/// and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub hlc: Hlc,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Opens a round: the initiator's members and digest. `congested` is the flow-control
    /// signal (some message of the sender overflowed its budget in the current round).
    Syn { members: Vec<(NodeId, Heartbeat)>, digest: VersionVector, congested: bool },
    /// The peer's members, digest and the deltas the initiator lacks.
    Ack {
        members: Vec<(NodeId, Heartbeat)>,
        digest: VersionVector,
        deltas: Deltas,
        congested: bool,
    },
    /// The deltas the peer lacks, and the initiator's digest after merging the `Ack`.
    Ack2 { digest: VersionVector, deltas: Deltas },
    /// The peer's digest after merging an `Ack2`: its acknowledgement of the writes.
    Receipt { digest: VersionVector },
    /// Opens a Merkle comparison: the hashes of the root's children.
    MerkleProbe { children: Vec<u64> },
    /// The leaf hashes under each child that differed.
    MerkleLeaves { subtrees: Vec<(u8, Vec<u64>)> },
    /// Entries of differing leaves. With `reply`, the receiver answers with its own entries of
    /// `leaves` that the sender lacks. Also carries tombstones that stop a stale value.
    MerkleEntries { leaves: Vec<u16>, updates: Vec<Update>, reply: bool },
}

impl Body {
    /// The `kind` label of the peer message counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Syn { .. } => "syn",
            Self::Ack { .. } => "ack",
            Self::Ack2 { .. } => "ack2",
            Self::Receipt { .. } => "receipt",
            Self::MerkleProbe { .. } => "merkle_probe",
            Self::MerkleLeaves { .. } => "merkle_leaves",
            Self::MerkleEntries { .. } => "merkle_entries",
        }
    }
}

/// Bytes of a postcard varint holding `v`.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The exact postcard-encoded size of a value.
pub trait WireSize {
    fn wire_size(&self) -> usize;
}

impl WireSize for u64 {
    fn wire_size(&self) -> usize {
        varint_len(*self)
    }
}

impl WireSize for NodeId {
    fn wire_size(&self) -> usize {
        varint_len(self.0)
    }
}

impl WireSize for Hlc {
    fn wire_size(&self) -> usize {
        varint_len(self.physical_ms) + varint_len(u64::from(self.logical))
    }
}

impl WireSize for Stamp {
    fn wire_size(&self) -> usize {
        self.hlc.wire_size() + self.node.wire_size()
    }
}

impl WireSize for Bytes {
    fn wire_size(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }
}

impl WireSize for Heartbeat {
    fn wire_size(&self) -> usize {
        varint_len(self.generation) + varint_len(self.counter)
    }
}

impl<A: WireSize, B: WireSize> WireSize for (A, B) {
    fn wire_size(&self) -> usize {
        self.0.wire_size() + self.1.wire_size()
    }
}

impl<T: WireSize> WireSize for Vec<T> {
    fn wire_size(&self) -> usize {
        varint_len(self.len() as u64) + self.iter().map(WireSize::wire_size).sum::<usize>()
    }
}

impl WireSize for Update {
    fn wire_size(&self) -> usize {
        self.key.wire_size()
            + 1
            + self.value.as_ref().map_or(0, Bytes::wire_size)
            + self.stamp.wire_size()
    }
}

impl WireSize for VersionVector {
    fn wire_size(&self) -> usize {
        varint_len(self.len() as u64)
            + self.iter().map(|(o, h)| o.wire_size() + h.wire_size()).sum::<usize>()
    }
}

impl WireSize for Deltas {
    fn wire_size(&self) -> usize {
        self.updates.wire_size() + self.through.wire_size()
    }
}

impl WireSize for Body {
    fn wire_size(&self) -> usize {
        // Every variant index here fits in one varint byte.
        1 + match self {
            Self::Syn { members, digest, .. } => members.wire_size() + digest.wire_size() + 1,
            Self::Ack { members, digest, deltas, .. } => {
                members.wire_size() + digest.wire_size() + deltas.wire_size() + 1
            }
            Self::Ack2 { digest, deltas } => digest.wire_size() + deltas.wire_size(),
            Self::Receipt { digest } => digest.wire_size(),
            Self::MerkleProbe { children } => children.wire_size(),
            Self::MerkleLeaves { subtrees } => {
                varint_len(subtrees.len() as u64)
                    + subtrees.iter().map(|(_, hashes)| 1 + hashes.wire_size()).sum::<usize>()
            }
            Self::MerkleEntries { leaves, updates, .. } => {
                varint_len(leaves.len() as u64)
                    + leaves.iter().map(|&l| varint_len(u64::from(l))).sum::<usize>()
                    + updates.wire_size()
                    + 1
            }
        }
    }
}

impl WireSize for Message {
    fn wire_size(&self) -> usize {
        self.hlc.wire_size() + self.body.wire_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
