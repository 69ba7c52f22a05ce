//! The async face of a replicated state machine: what the server and the lab hold.

use crate::{ConsensusError, NodeId, Result, SnapshotMeta};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// The read reflects every write that completed before the read began.
    Linearizable,
    /// The read reflects whatever this replica has applied (etcd's `serializable`).
    Local,
}

/// A replica's role, in the vocabulary of its protocol family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    /// A member of a leaderless protocol (Totem's ring, gossip), able to serve.
    Member,
    /// Not currently able to serve writes (Totem outside the primary component, gathering).
    Recovering,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::Member => "member",
            Self::Recovering => "recovering",
        }
    }
}

/// A replica's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub protocol: &'static str,
    pub role: Role,
    /// The leader this replica follows, if the protocol has one and it is known.
    pub leader: Option<NodeId>,
    /// Raft's term, a Paxos ballot round, a Totem ring sequence; 0 for gossip.
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub members: Vec<NodeId>,
}

/// What a protocol promises, so that the API and the lab can tell the truth about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guarantees {
    /// Writes are totally ordered and acknowledged only once they cannot be lost or reordered.
    pub linearizable_writes: bool,
    /// [`ReadConsistency::Linearizable`] is offered.
    pub linearizable_reads: bool,
    /// A compare-and-swap is atomic across the cluster.
    pub atomic_compare_and_swap: bool,
    /// The protocol elects a single leader.
    pub has_leader: bool,
    /// How many of the configured members may fail with the service still writable
    /// (`None`: any number; a lone replica still accepts writes).
    pub fault_tolerance: Option<usize>,
}

/// The replicated state machine the driver applies committed commands to.
///
/// Implementations must be deterministic: the same commands in the same order produce the same
/// outputs and the same state on every replica.
pub trait StateMachine: Send + Sync + 'static {
    /// Applies the command at `index` (`None` for an entry with no command) and returns the
    /// output for the caller that proposed it.
    fn apply(&mut self, index: u64, command: Option<&[u8]>) -> Bytes;

    /// The index of the last applied entry.
    fn applied_index(&self) -> u64;

    /// Encodes the whole state as of [`StateMachine::applied_index`].
    fn snapshot(&self) -> Bytes;

    /// A frozen copy of the state as of [`StateMachine::applied_index`], which encodes to what
    /// [`StateMachine::snapshot`] returns now, for a caller that encodes on another thread while
    /// this state machine goes on applying. `None` (the default) when a copy would cost as much
    /// as the encoding: the caller then calls `snapshot`.
    fn frozen(&self) -> Option<Frozen> {
        None
    }

    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, meta: &SnapshotMeta, data: &[u8]) -> std::result::Result<(), String>;
}

/// A state machine's state frozen for a snapshot: called once, on any thread, it encodes it.
pub type Frozen = Box<dyn FnOnce() -> Bytes + Send>;

/// A replicated state machine, whatever the protocol underneath.
///
/// Held as `Arc<dyn Consensus>`.
#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// Orders `command`, applies it, and returns the state machine's output once the protocol's
    /// guarantee holds for it (committed by a majority, delivered in the primary component,
    /// applied locally for gossip).
    async fn propose(&self, command: Bytes) -> Result<Bytes>;

    /// Waits until the local state machine may serve a read at `consistency`, and returns the
    /// applied index it may be served at. For [`ReadConsistency::Local`] this returns at once.
    async fn read_barrier(&self, consistency: ReadConsistency) -> Result<u64>;

    /// This replica's view of the cluster.
    fn status(&self) -> Status;

    /// What the protocol promises.
    fn guarantees(&self) -> Guarantees;

    /// Hands leadership to the voter `to` and waits until this replica sees it lead (etcd's
    /// `MoveLeader`). Only the leader can hand over ([`ConsensusError::NotLeader`] elsewhere);
    /// [`ConsensusError::Timeout`] if `to` did not take over in time (the transfer is then
    /// abandoned, and this replica may still lead); [`ConsensusError::Unsupported`] from
    /// protocols without a leader to move.
    async fn transfer_leadership(&self, to: NodeId) -> Result<()> {
        let _ = to;
        Err(ConsensusError::Unsupported {
            protocol: self.status().protocol,
            what: "leadership transfer".into(),
        })
    }

    /// Stops the node: in-flight requests fail with `ShuttingDown`, storage is synced.
    async fn shutdown(&self);
}
