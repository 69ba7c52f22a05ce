//! Identifiers shared by every protocol.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A member of the cluster. Unique within a cluster and never reused for another node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names one client request on the node that accepted it, so that the protocol's answer
/// (an applied entry, a read index, a rejection) can find its waiting caller.
///
/// Unique per node for the life of the process; the driver pairs it with the node's id when
/// the request travels inside a log entry, so it is unique cluster-wide there.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
