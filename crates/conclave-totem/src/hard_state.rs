//! The state a member persists before sending anything that depends on it.

use crate::{RingId, TotemError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Totem's durable state besides the log, in postcard encoding.
///
/// `ring_seq_max` makes ring ids unique across restarts: a member persists the highest ring
/// sequence number it has seen before it sends a join, a commit token or a regular token that
/// could lead to a ring numbered from it. `committed` is the global delivered index: entries up
/// to it were applied and are replayed from the log after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub ring_seq_max: u64,
    /// The last ring this member installed.
    pub ring: Option<RingId>,
    pub committed: u64,
}

impl HardState {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("a hard state always encodes"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TotemError> {
        postcard::from_bytes(bytes).map_err(|e| TotemError::HardStateDecode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::NodeId;

    #[test]
    fn round_trip() {
        let hs = HardState {
            ring_seq_max: 12,
            ring: Some(RingId { seq: 12, rep: NodeId(1) }),
            committed: 40,
        };
        assert_eq!(HardState::decode(&hs.encode()).unwrap(), hs);
        assert!(HardState::decode(b"\xff\xff\xff").is_err());
    }
}
