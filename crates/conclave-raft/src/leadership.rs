//! The volatile state a replica holds only while it leads (Figure 2's "volatile state on
//! leaders", plus the read queue and a transfer in progress).

use crate::progress::Progress;
use crate::read_queue::ReadQueue;
use conclave_core::NodeId;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Leadership {
    /// One entry per voter other than the leader.
    pub progress: BTreeMap<NodeId, Progress>,
    pub reads: ReadQueue,
    /// The replica leadership is being handed to (§3.10), and the tick the transfer began.
    pub transferee: Option<NodeId>,
    pub transfer_started: u64,
    /// New entries wait to be sent; they are sent together when effects are next collected,
    /// so that many proposals share one AppendEntries (batching).
    pub append_pending: bool,
    /// The commit index advanced; followers are told even if there is nothing new to send.
    pub commit_pending: bool,
}
