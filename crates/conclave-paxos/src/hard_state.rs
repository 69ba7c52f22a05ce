//! What an acceptor must not forget, in the bytes stored as `Ready::hard_state`.
//!
//! The accepted (slot, ballot, value) records live in the log itself (one entry per slot, its
//! `term` the packed ballot); everything else that must survive a crash is here: the promised
//! ballot, the highest round this node ever used for its own prepares (so that a restarted
//! proposer never reuses a ballot), and the membership history learned from chosen slots.

use crate::Ballot;
use bytes::Bytes;
use conclave_core::Membership;
use serde::{Deserialize, Serialize};

/// The durable state besides the log, postcard-encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The acceptor promised to ignore prepares with a ballot ≤ this one and accepts with a
    /// ballot below it (Paxos Made Simple §2.2, P1a).
    pub promised: Ballot,
    /// The highest round this node used for a ballot of its own.
    pub last_round: u64,
    /// Memberships by the first slot they govern, as learned from chosen slots.
    pub configs: Vec<(u64, Membership)>,
}

impl HardState {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("encoding a hard state to memory cannot fail"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::NodeId;

    #[test]
    fn round_trip() {
        let hs = HardState {
            promised: Ballot::new(4, NodeId(2)),
            last_round: 3,
            configs: vec![(1, Membership::new([NodeId(1), NodeId(2), NodeId(3)]))],
        };
        assert_eq!(HardState::decode(&hs.encode()).unwrap(), hs);
        assert!(HardState::decode(b"\xff\xff\xff").is_err());
    }
}
