//! What one Paxos replica sends another.
//!
//! Phase 1 is [`Message::Prepare`] / [`Message::Promise`], phase 2 is [`Message::Accept`] /
//! [`Message::Accepted`] (Paxos Made Simple §2.2). The rest is Multi-Paxos machinery (§3): the
//! leader's heartbeat (failure detection, commit index, lease), catch-up of chosen slots and
//! snapshots for lagging learners, refusals, and the forwarding of proposals and reads to the
//! leader. Every message from a leader carries `tick`, the leader's clock when it sent it;
//! replies echo it, and the leader's lease counts from the oldest echo a majority has sent.

use crate::Ballot;
use bytes::Bytes;
use conclave_core::{Entry, Membership, NodeId, RequestId, Snapshot};
use serde::{Deserialize, Serialize};

/// A Paxos peer message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: "promise me `ballot` for every slot, and tell me what you accepted from slot
    /// `start` on".
    Prepare { ballot: Ballot, start: u64 },
    /// Phase 1b: the acceptor promised `ballot`. `accepted` holds its records for every slot
    /// from the requested start (entry `term` = the ballot it was accepted at); the ones at or
    /// below `commit` are known to be chosen.
    Promise { ballot: Ballot, commit: u64, accepted: Vec<Entry> },
    /// Phase 2a, batched: accept these contiguous slots at `ballot` (every entry's `term` is
    /// `ballot`). `commit` tells learners how far the leader knows slots to be chosen.
    Accept { ballot: Ballot, tick: u64, commit: u64, entries: Vec<Entry> },
    /// Phase 2b: slots `first..=last` are accepted at `ballot` (empty when `first > last`: the
    /// batch started past this acceptor's log, which ends at `log_last`). `need_from` asks for
    /// chosen slots the acceptor is missing.
    Accepted {
        ballot: Ballot,
        tick: u64,
        first: u64,
        last: u64,
        commit: u64,
        log_last: u64,
        need_from: Option<u64>,
    },
    /// The leader is alive; slots up to `commit` are chosen.
    Heartbeat { ballot: Ballot, tick: u64, commit: u64 },
    /// Reply to a heartbeat, a catch-up or a snapshot from the leader.
    HeartbeatAck { ballot: Ballot, tick: u64, commit: u64, log_last: u64, need_from: Option<u64> },
    /// Catch-up: these contiguous slots are chosen with these values; `commit` as in
    /// [`Message::Accept`].
    Chosen { ballot: Ballot, tick: u64, commit: u64, entries: Vec<Entry> },
    /// The state machine as of `snapshot.meta.index`, for a learner that needs compacted slots,
    /// with the membership history. `ballot` is zero when it answers a prepare instead of coming
    /// from a leader.
    InstallSnapshot {
        ballot: Ballot,
        tick: u64,
        snapshot: Snapshot,
        configs: Vec<(u64, Membership)>,
    },
    /// Refusal of a prepare, accept or heartbeat at `ballot`: the sender promised `promised`
    /// (or is loyal to `leader`, which it heard from recently).
    Reject { ballot: Ballot, promised: Ballot, leader: Option<NodeId> },
    /// Proposals a non-leader hands to the leader it knows; each command carries its origin in
    /// its own header. `session` (random per incarnation of the sender) and `seq` let the
    /// receiver take each batch once, even when the network delivers it twice.
    Forward { session: u64, seq: u64, commands: Vec<Bytes> },
    /// A non-leader asks the leader for a read index on behalf of its client `request`.
    ReadIndex { request: RequestId },
    /// The leader's answer: serve once applied through `index`; `None` if it cannot answer.
    ReadIndexResp { request: RequestId, index: Option<u64> },
}

impl Message {
    /// A short name for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Prepare { .. } => "prepare",
            Self::Promise { .. } => "promise",
            Self::Accept { .. } => "accept",
            Self::Accepted { .. } => "accepted",
            Self::Heartbeat { .. } => "heartbeat",
            Self::HeartbeatAck { .. } => "heartbeat_ack",
            Self::Chosen { .. } => "chosen",
            Self::InstallSnapshot { .. } => "install_snapshot",
            Self::Reject { .. } => "reject",
            Self::Forward { .. } => "forward",
            Self::ReadIndex { .. } => "read_index",
            Self::ReadIndexResp { .. } => "read_index_resp",
        }
    }
}
