//! Raft's hard state: what must be on disk before a vote or an append response leaves (§5.1,
//! Figure 2 "persistent state on all servers"), in this crate's own postcard encoding.

use crate::RaftError;
use bytes::Bytes;
use conclave_core::NodeId;
use serde::{Deserialize, Serialize};

/// The term, the vote in that term, and the commit index.
///
/// The commit index is not required for safety (it can be relearned from a leader), but
/// persisting it lets a restarted replica re-apply its committed entries at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
    pub commit: u64,
}

impl HardState {
    pub fn encode(&self) -> Bytes {
        // Encoding a struct of integers into a Vec cannot fail.
        Bytes::from(postcard::to_allocvec(self).expect("a hard state always encodes"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, RaftError> {
        postcard::from_bytes(bytes).map_err(|e| RaftError::HardStateDecode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let hs = HardState { term: 7, voted_for: Some(NodeId(3)), commit: 42 };
        assert_eq!(HardState::decode(&hs.encode()).unwrap(), hs);
        assert!(HardState::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
