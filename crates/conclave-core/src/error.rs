//! The errors a [`crate::Consensus`] call can end with.
//!
//! Retryable errors ([`ConsensusError::is_retryable`]) say "try again, perhaps elsewhere";
//! the others say "this will not work here".

use crate::NodeId;

pub type Result<T, E = ConsensusError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// This node cannot order the request; `leader` is its best guess of who can.
    #[error("not the leader{}", match .leader { Some(l) => format!(" (leader is node {l})"), None => String::from(" (no leader known)") })]
    NotLeader { leader: Option<NodeId> },
    /// The protocol cannot currently make progress here (no quorum, minority component).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request may or may not have taken effect: the caller must treat it as unknown.
    #[error("timed out after {0} ms; the request may or may not have been applied")]
    Timeout(u64),
    /// The protocol does not offer this at all (e.g. a linearizable read under gossip).
    #[error("unsupported by {protocol}: {what}")]
    Unsupported { protocol: &'static str, what: String },
    /// A proposal was larger than the configured limit.
    #[error("request of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The node is stopping or has stopped.
    #[error("node is shutting down")]
    ShuttingDown,
    /// Something broke that retrying will not fix (storage failure, corrupt record).
    #[error("fatal: {0}")]
    Fatal(String),
}

impl ConsensusError {
    /// Whether the same request may succeed if retried (here later, or at the hinted leader).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NotLeader { .. } | Self::Unavailable(_) | Self::Timeout(_))
    }
}
