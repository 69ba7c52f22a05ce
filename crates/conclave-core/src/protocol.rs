//! The deterministic protocol interface, in the shape of raft-rs's `RawNode` and `Ready`.
//!
//! A [`Protocol`] is a plain state machine. The caller (the tokio driver in `conclave-node`, or
//! the simulator in `conclave-sim`) feeds it events — [`Protocol::tick`], [`Protocol::step`],
//! [`Protocol::propose`], [`Protocol::read`] — and then drains a [`Ready`] with
//! [`Protocol::ready`], carrying out its fields **in the order they are declared**:
//!
//! 1. write `snapshot`, `hard_state` and `entries` to the store;
//! 2. send `eager_messages`, which promise nothing about what step 1 wrote;
//! 3. make step 1 durable (`fdatasync`) unless [`Ready::must_sync`] says it need not be;
//! 4. only then send `messages`;
//! 5. apply `committed` to the state machine, in index order, and answer the waiting callers;
//! 6. answer `reads` once the state machine has applied their index, and `rejected` at once;
//! 7. call [`Protocol::advance`]: what the `Ready` asked to persist is now durable.
//!
//! A protocol may assume that every [`Ready`] it handed out was fully carried out before the
//! next event arrives. The one exception is a crash: then the node restarts from whatever was
//! durable, through [`Recovered`]; `eager_messages` may have been sent, `messages` were not.

use crate::{ConsensusError, Entry, Guarantees, NodeId, RequestId, SnapshotMeta, Status};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// A replication protocol's logic, free of IO, clocks and thread RNGs.
///
/// Implementations are constructed by their own crate (each takes its configuration, the node's
/// id, the initial membership, a [`Recovered`] and an RNG seed) and then driven only through this
/// trait.
pub trait Protocol: Send + 'static {
    /// What one replica sends another. Encoded with postcard by the driver.
    type Message: Clone + Debug + Send + Serialize + DeserializeOwned + 'static;

    /// The protocol's name as it appears in config and in the `protocol` metric label.
    fn name(&self) -> &'static str;

    /// This replica's id.
    fn id(&self) -> NodeId;

    /// One unit of logical time has passed. The driver ticks every `tick_interval_ms`;
    /// every timeout in a protocol's configuration is a number of ticks or is converted to one.
    fn tick(&mut self);

    /// A message arrived from a peer.
    fn step(&mut self, from: NodeId, msg: Self::Message);

    /// A client asks for `command` to be ordered and applied. The protocol answers either by
    /// handing out an entry whose data is `command` in [`Ready::committed`] (the driver matches
    /// it to the caller through the command's own header) or with a [`Rejection`] for `id`.
    /// A protocol may forward the command to its leader instead of rejecting it.
    fn propose(&mut self, id: RequestId, command: Bytes);

    /// A client asks for a linearizable read. The protocol answers with a [`ReadState`] for
    /// `id` (serve once applied through its index) or a [`Rejection`].
    fn read(&mut self, id: RequestId);

    /// The driver took a snapshot of the state machine and stored it. The protocol may keep it
    /// to send to peers that lag behind (keeping its data is not needed: see
    /// [`Ready::snapshot_wanted`]), and may ask for the log up to `meta.index` to be compacted.
    fn snapshot_taken(&mut self, snapshot: Snapshot);

    /// The driver read back the latest stored snapshot, as [`Ready::snapshot_wanted`] asked.
    fn snapshot_loaded(&mut self, _snapshot: Snapshot) {}

    /// Whether [`Protocol::ready`] would return anything.
    fn has_ready(&self) -> bool;

    /// Takes the effects accumulated since the last call.
    fn ready(&mut self) -> Ready<Self::Message>;

    /// The last [`Ready`] was carried out in full: everything it asked to persist is durable.
    /// A protocol that lets messages leave before its own writes are durable (Raft's leader,
    /// thesis §10.2.1) counts those writes from here on.
    fn advance(&mut self) {}

    /// Role, leader, epoch, commit index and members, as this replica sees them.
    /// `applied_index` is left at 0: the caller knows it better.
    fn status(&self) -> Status;

    /// What this protocol promises clients.
    fn guarantees(&self) -> Guarantees;

    /// A short name for a message's kind (`append`, `vote`, `token`, ...), used as the `kind`
    /// label of the peer message counters.
    fn message_kind(&self, _msg: &Self::Message) -> &'static str {
        "message"
    }

    /// Protocol-specific counters and gauges (elections, phase-1 rounds, retransmits, ...),
    /// exported by the driver under `conclave_<name>`.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Starts handing leadership to the voter `to` (etcd's `MoveLeader`; a leader that is
    /// stopping). Returns once the hand-over has begun: the caller watches [`Protocol::status`]
    /// for the new leader. `Ok` at once when `to` is this replica and it leads; otherwise
    /// [`ConsensusError::NotLeader`] on a replica that does not lead, and
    /// [`ConsensusError::Unsupported`] from protocols that cannot hand leadership over.
    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ConsensusError> {
        let _ = to;
        Err(ConsensusError::Unsupported {
            protocol: self.name(),
            what: "leadership transfer".into(),
        })
    }
}

/// Durable state a replica restarts from, as the storage layer recovered it.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The last hard state persisted, in the protocol's own encoding; `None` on first start.
    pub hard_state: Option<Bytes>,
    /// The latest snapshot, if any. The state machine has already been restored from it.
    pub snapshot: Option<Snapshot>,
    /// Log entries after the snapshot, contiguous and in index order.
    pub entries: Vec<Entry>,
}

/// A state-machine snapshot: metadata and the state machine's own encoding of its state.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}

/// A message to one peer.
#[derive(Clone, Debug)]
pub struct Envelope<M> {
    pub to: NodeId,
    pub msg: M,
}

/// A linearizable read may be served once the local state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub request: RequestId,
    pub index: u64,
}

/// A request the protocol refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub request: RequestId,
    pub error: crate::ConsensusError,
}

/// The effects of the events since the last [`Protocol::ready`] call.
///
/// Fields are listed in the order they must be carried out; see the module documentation.
#[derive(Debug)]
pub struct Ready<M> {
    /// A snapshot received from a peer. It replaces the whole log: persist it, drop every stored
    /// entry (those after its index may belong to a history that lost), and restore the state
    /// machine from it — before persisting `entries` and before sending `messages`.
    pub snapshot: Option<Snapshot>,
    /// The protocol's hard state (Raft: term and vote; Paxos: promised ballot; Totem: ring id
    /// and delivered sequence), in its own encoding. Replaces the previous one.
    /// **Durable before any of `messages` is sent**, unless `hard_state_lazy`.
    pub hard_state: Option<Bytes>,
    /// `hard_state` changed only in what a crash may lose (Raft's commit index, which a
    /// restarted replica relearns): write it, but it needs no `fdatasync` of its own; the next
    /// sync carries it.
    pub hard_state_lazy: bool,
    /// Entries to append. When the first entry's index is at or below the last stored index,
    /// the store first drops every entry from that index on (a conflicting suffix).
    /// **Durable before any of `messages` is sent.**
    pub entries: Vec<Entry>,
    /// The store may discard entries up to and including this index; a snapshot covers them.
    pub compact_to: Option<u64>,
    /// Messages to peers that may leave as soon as the writes above are handed to the store,
    /// before they are durable: they claim nothing about them. Raft's leader replicates its
    /// entries this way while it writes them itself (thesis §10.2.1).
    pub eager_messages: Vec<Envelope<M>>,
    /// Messages to peers. Send only after everything above is durable.
    pub messages: Vec<Envelope<M>>,
    /// Newly committed entries, contiguous and in index order, each handed out once.
    /// Apply after the persistence above.
    pub committed: Vec<Entry>,
    /// Linearizable reads that may be served once the state machine has applied their index.
    pub reads: Vec<ReadState>,
    /// Requests refused; answer their callers with the error.
    pub rejected: Vec<Rejection>,
    /// The protocol needs the latest stored snapshot's data (to send it to a peer): read it
    /// back from the store and hand it over with [`Protocol::snapshot_loaded`].
    pub snapshot_wanted: bool,
}

impl<M> Default for Ready<M> {
    fn default() -> Self {
        Self {
            snapshot: None,
            hard_state: None,
            hard_state_lazy: false,
            entries: Vec::new(),
            compact_to: None,
            eager_messages: Vec::new(),
            messages: Vec::new(),
            committed: Vec::new(),
            reads: Vec::new(),
            rejected: Vec::new(),
            snapshot_wanted: false,
        }
    }
}

impl<M> Ready<M> {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.compact_to.is_none()
            && self.eager_messages.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.rejected.is_empty()
            && !self.snapshot_wanted
    }

    /// Whether anything must be made durable before `messages` may go out.
    pub fn must_sync(&self) -> bool {
        self.snapshot.is_some()
            || (self.hard_state.is_some() && !self.hard_state_lazy)
            || !self.entries.is_empty()
    }

    /// Whether anything is to be written to the store, durable or not.
    pub fn must_write(&self) -> bool {
        self.must_sync() || self.hard_state.is_some() || self.compact_to.is_some()
    }
}
