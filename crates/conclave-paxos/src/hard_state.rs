//! What an acceptor must not forget, in the bytes stored as `Ready::hard_state`.
//!
//! The accepted (slot, ballot, value) records live in the log itself (one entry per slot, its
//! `term` the packed ballot); everything else that must survive a crash is here: the promised
//! ballot, the highest round this node ever used for its own prepares (so that a restarted
//! proposer never reuses a ballot), the membership history learned from chosen slots, and the
//! commit index.
//!
//! The commit index is not needed for safety — a restarted replica could relearn it — but
//! without it a replica restarts knowing only its snapshot as chosen, and a leader elected
//! after a restart of the whole cluster would propose again every slot since the snapshots:
//! each such slot rewrites the acceptors' records from it to the end of their logs, which for a
//! log of n slots is O(n²) bytes written. It is stored lazily (a crash may lose the latest
//! value, never a value above what the same or an earlier write made durable).

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
    /// Slots up to here are chosen, and this replica's log holds their chosen values.
    pub commit: u64,
}

/// The encoding before the commit index was stored, still read from existing data.
#[derive(Deserialize)]
struct HardStateWithoutCommit {
    promised: Ballot,
    last_round: u64,
    configs: Vec<(u64, Membership)>,
}

impl HardState {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("encoding a hard state to memory cannot fail"))
    }

    /// Reads either encoding; one written before the commit index was stored decodes with a
    /// commit index of 0 (the snapshot's index then stands for it).
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes).or_else(|error| {
            match postcard::from_bytes::<HardStateWithoutCommit>(bytes) {
                Ok(old) => Ok(Self {
                    promised: old.promised,
                    last_round: old.last_round,
                    configs: old.configs,
                    commit: 0,
                }),
                Err(_) => Err(error),
            }
        })
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
            commit: 17,
        };
        assert_eq!(HardState::decode(&hs.encode()).unwrap(), hs);
        assert!(HardState::decode(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn a_hard_state_written_without_the_commit_index_still_reads() {
        #[derive(Serialize)]
        struct Old {
            promised: Ballot,
            last_round: u64,
            configs: Vec<(u64, Membership)>,
        }
        let configs = vec![(1, Membership::new([NodeId(1), NodeId(2), NodeId(3)]))];
        let old = Old { promised: Ballot::new(4, NodeId(2)), last_round: 3, configs };
        let bytes = postcard::to_stdvec(&old).unwrap();
        let hs = HardState::decode(&bytes).unwrap();
        assert_eq!((hs.promised, hs.last_round, hs.commit), (old.promised, 3, 0));
        assert_eq!(hs.configs, old.configs);
    }
}
