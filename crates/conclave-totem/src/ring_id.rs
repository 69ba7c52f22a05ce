//! The identifier of a ring (a configuration): a sequence number and the representative.

use conclave_core::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Names one ring for its whole life (Totem §4: ring_id = ring sequence number plus the
/// representative's identifier).
///
/// Every new ring's `seq` exceeds the `seq` of every ring any of its members has seen, and
/// members persist the highest `seq` they have seen, so a ring id is never reused, even across
/// restarts. Ordered by `seq` first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RingId {
    pub seq: u64,
    /// The member with the lowest id, which created the ring's commit token.
    pub rep: NodeId,
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.seq, self.rep)
    }
}
