//! What a distinguished proposer (the leader) keeps while its ballot stands.
//!
//! A leader ran phase 1 once for every slot from its commit index on (Multi-Paxos, Paxos Made
//! Simple §3) and now runs phase 2 per slot. It remembers who promised (a slot may only be
//! proposed in once a majority of the acceptors that govern it promised), the values that
//! promises reported for slots it has not re-proposed yet, the acknowledgements of every slot
//! in flight, and each peer's replication progress.

use crate::Ballot;
use bytes::Bytes;
use conclave_core::{Entry, EntryKind, NodeId, RequestId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The leader's state for one ballot.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub ballot: Ballot,
    /// The tick at which phase 1 succeeded.
    pub since: u64,
    /// Acceptors that promised `ballot` (including this node).
    pub promisers: BTreeSet<NodeId>,
    /// Acceptors a prepare for `ballot` was sent to, so that prepares for newly added members
    /// go out once.
    pub prepared: BTreeSet<NodeId>,
    /// The highest-ballot value reported in promises, per slot not yet re-proposed.
    pub recovered: BTreeMap<u64, Entry>,
    /// The highest slot any promise reported. Every value chosen before this leader's phase 1
    /// lies at or below it; until the commit index passes it, reads go through the log.
    pub recovery_end: u64,
    /// The next slot to propose in.
    pub next_slot: u64,
    /// Slots proposed at `ballot` and not yet known chosen.
    pub inflight: BTreeMap<u64, InFlight>,
    /// Slots proposed since the last `ready()`, to be sent as Accept batches.
    pub unsent: Vec<Entry>,
    /// Proposals waiting for room in the pipelining window.
    pub pending: VecDeque<Pending>,
    /// Reads waiting for the next slot this leader proposes (read through the log).
    pub reads_waiting: Vec<ReadWaiter>,
    /// Reads bound to a slot: servable once that slot is chosen.
    pub reads_by_slot: BTreeMap<u64, Vec<ReadWaiter>>,
    /// Replication progress per peer.
    pub progress: BTreeMap<NodeId, Progress>,
    pub heartbeat_elapsed: u64,
    /// The commit index last sent to the peers (in an Accept or a heartbeat).
    pub commit_sent: u64,
}

impl LeaderState {
    pub fn new(ballot: Ballot, since: u64, next_slot: u64) -> Self {
        Self {
            ballot,
            since,
            promisers: BTreeSet::new(),
            prepared: BTreeSet::new(),
            recovered: BTreeMap::new(),
            recovery_end: 0,
            next_slot,
            inflight: BTreeMap::new(),
            unsent: Vec::new(),
            pending: VecDeque::new(),
            reads_waiting: Vec::new(),
            reads_by_slot: BTreeMap::new(),
            progress: BTreeMap::new(),
            heartbeat_elapsed: 0,
            commit_sent: 0,
        }
    }

    pub fn progress_mut(&mut self, peer: NodeId) -> &mut Progress {
        self.progress.entry(peer).or_default()
    }

    /// The lowest slot in flight that `peer` has not acknowledged, if it was proposed at or
    /// before `sent_before`.
    pub fn first_unacked(&self, peer: NodeId, sent_before: u64) -> Option<u64> {
        self.inflight
            .iter()
            .find(|(_, f)| !f.acks.contains(&peer))
            .filter(|(_, f)| f.proposed_tick <= sent_before)
            .map(|(slot, _)| *slot)
    }
}

/// Acknowledgements of one slot proposed at the leader's ballot.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub acks: BTreeSet<NodeId>,
    pub proposed_tick: u64,
    /// The local caller waiting for this slot, if any.
    pub request: Option<RequestId>,
}

/// What the leader knows of one peer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Whether the peer has answered since this leader took over (the fields below are real).
    pub known: bool,
    pub commit: u64,
    pub log_last: u64,
    /// The newest leader tick the peer echoed: it heard from this leader no earlier than that.
    pub acked_tick: Option<u64>,
    /// The leader's tick when a reply from the peer last arrived (failure detection only).
    pub heard_at: Option<u64>,
    /// The last catch-up sent: (first slot, tick), to avoid resending the same batch on every
    /// acknowledgement.
    pub catchup: Option<(u64, u64)>,
}

/// A proposal waiting for a slot. `request` is `None` for one forwarded by another node (whose
/// caller is answered there, through the command's own header).
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub request: Option<RequestId>,
    pub kind: EntryKind,
    pub data: Bytes,
}

/// A linearizable read waiting for a read index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadWaiter {
    Local(RequestId),
    Remote(NodeId, RequestId),
}
