//! Settings of the driver itself, common to every protocol.

use conclave_core::NodeId;

/// How the driver runs a protocol.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// How often the protocol is ticked. Must match the protocol's own `tick_interval_ms`.
    pub tick_interval_ms: u64,
    /// A proposal or linearizable read not answered within this time fails with a timeout
    /// (the write may still be applied later).
    pub request_timeout_ms: u64,
    /// The largest command accepted, in bytes.
    pub max_proposal_bytes: usize,
    /// Requests queued for the node thread before new ones are refused.
    pub max_pending_requests: usize,
    /// The most events taken in one batch before the protocol's effects are carried out.
    pub max_batch_events: usize,
    /// Take a state-machine snapshot after at least this many applied entries (0 = never), once
    /// the entries applied since the last one also add up to that snapshot's size.
    pub snapshot_interval_entries: u64,
}

impl NodeConfig {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            tick_interval_ms: 10,
            request_timeout_ms: 5_000,
            max_proposal_bytes: 1536 * 1024,
            max_pending_requests: 10_000,
            max_batch_events: 4_096,
            snapshot_interval_entries: 10_000,
        }
    }

    pub fn validate(&self) -> Result<(), NodeConfigError> {
        let positive = [
            ("tick_interval_ms", self.tick_interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_proposal_bytes", self.max_proposal_bytes as u64),
            ("max_pending_requests", self.max_pending_requests as u64),
            ("max_batch_events", self.max_batch_events as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(NodeConfigError { field, value: 0, accepted: "a positive number" });
            }
        }
        Ok(())
    }
}

/// A driver setting out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid {field} = {value}: expected {accepted}")]
pub struct NodeConfigError {
    pub field: &'static str,
    pub value: u64,
    pub accepted: &'static str,
}
