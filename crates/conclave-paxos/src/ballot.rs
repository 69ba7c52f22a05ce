//! Proposal numbers ("ballots"): unique per proposer and totally ordered.
//!
//! Paxos Made Simple (§2.2) asks that proposals be numbered so that no two proposers ever use
//! the same number. A [`Ballot`] is a pair (round, node): rounds increase, and the node id breaks
//! ties, so two proposers never share a ballot. Packed into a `u64` (round in the high bits, node
//! id in the low [`NODE_BITS`] bits) it becomes an [`conclave_core::Entry`]'s `term`, and the
//! integer order equals the pair order.

use conclave_core::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Bits of a packed ballot that hold the node id. Node ids must be below `1 << NODE_BITS`.
pub const NODE_BITS: u32 = 16;

/// The largest node id a ballot can carry.
pub const MAX_NODE_ID: u64 = (1 << NODE_BITS) - 1;

/// A proposal number: compared by round first, then by node id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    /// The ballot below every real one: "nothing promised", "nothing accepted".
    pub const ZERO: Ballot = Ballot { round: 0, node: NodeId(0) };

    pub fn new(round: u64, node: NodeId) -> Self {
        Self { round, node }
    }

    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// The packed form stored as an entry's `term`.
    pub fn to_u64(self) -> u64 {
        (self.round << NODE_BITS) | (self.node.0 & MAX_NODE_ID)
    }

    /// Unpacks an entry's `term`.
    pub fn from_u64(packed: u64) -> Self {
        Self { round: packed >> NODE_BITS, node: NodeId(packed & MAX_NODE_ID) }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_preserves_order_and_round_trips() {
        let ballots = [
            Ballot::ZERO,
            Ballot::new(1, NodeId(1)),
            Ballot::new(1, NodeId(2)),
            Ballot::new(2, NodeId(1)),
            Ballot::new(7, NodeId(MAX_NODE_ID)),
            Ballot::new(8, NodeId(0)),
        ];
        for pair in ballots.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_u64() < pair[1].to_u64());
        }
        for b in ballots {
            assert_eq!(Ballot::from_u64(b.to_u64()), b);
        }
    }
}
