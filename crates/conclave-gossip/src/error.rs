//! Why a gossip replica could not start.

use crate::config::ConfigError;

/// A replica cannot be built: a bad setting or unreadable durable state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The recovered hard state is not one this crate wrote.
    #[error("corrupt gossip hard state: {0}")]
    CorruptHardState(String),
    /// A map image in the recovered log cannot be decoded.
    #[error("corrupt gossip map image at index {index}: {reason}")]
    CorruptImage { index: u64, reason: String },
}
