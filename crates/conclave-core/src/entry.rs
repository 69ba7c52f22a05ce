//! Log entries, membership and snapshot metadata: the records a protocol persists and applies.

use crate::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A client command for the state machine; `data` is opaque to the protocol.
    Command,
    /// An entry with no effect on the state machine (a new leader's first entry, a gap filler).
    Noop,
    /// A membership change; `data` is a postcard-encoded [`Membership`].
    Membership,
}

/// One record of a protocol's log.
///
/// `index` is the position in the applied sequence (Raft's index, a Paxos slot, a Totem
/// sequence number). `term` is the protocol's epoch at which the entry was created: Raft's term,
/// a Paxos ballot, a Totem ring sequence. Indexes start at 1; 0 means "nothing".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// An entry holding a state-machine command.
    pub fn command(index: u64, term: u64, data: Bytes) -> Self {
        Self { index, term, kind: EntryKind::Command, data }
    }

    /// An entry that changes nothing when applied.
    pub fn noop(index: u64, term: u64) -> Self {
        Self { index, term, kind: EntryKind::Noop, data: Bytes::new() }
    }

    /// Approximate size on the wire and on disk, for batching budgets.
    pub fn size_hint(&self) -> usize {
        self.data.len() + 24
    }
}

/// The set of members that vote (Raft's voters, Paxos's acceptors, Totem's configured ring).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
}

impl Membership {
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self { voters: voters.into_iter().collect() }
    }

    /// The smallest number of voters that makes a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }
}

/// Describes a snapshot of the state machine: everything up to and including `index` is in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub membership: Membership,
}
