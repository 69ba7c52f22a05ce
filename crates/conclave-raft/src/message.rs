//! What one Raft replica sends another: the RPCs of the paper (§5, §7), the extensions of the
//! thesis (pre-vote §9.6, TimeoutNow §3.10, ReadIndex §6.4) and the forwarding of client
//! requests from followers to the leader.
//!
//! The sender is not part of a message: the transport knows it and passes it to `step`.

use bytes::Bytes;
use conclave_core::{Entry, NodeId, RequestId, Snapshot};
use serde::{Deserialize, Serialize};

/// A message between Raft replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftMessage {
    /// A candidate asks for a vote (§5.2), or a pre-candidate asks whether it could win
    /// (`pre_vote`, thesis §9.6; `term` is then the term it would campaign in, and nobody's
    /// state changes). `transfer` is set when the leader asked the candidate to campaign
    /// (§3.10): voters then grant even if they heard from that leader recently.
    RequestVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
        transfer: bool,
    },
    /// The answer to a RequestVote. A granted pre-vote carries the term asked about; every
    /// other answer carries the voter's current term.
    RequestVoteResponse { term: u64, granted: bool, pre_vote: bool },
    /// The leader replicates `entries` after (`prev_log_index`, `prev_log_term`) (§5.3).
    /// `round` is the leader's latest read round when it sent this, echoed back so that the
    /// acknowledgement also confirms leadership for ReadIndex (thesis §6.4).
    AppendEntries {
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        round: u64,
    },
    /// The answer to an AppendEntries. On success `match_index` is the last index known to
    /// match the leader's log. On failure `reject_index` is the rejected `prev_log_index` and
    /// the hint lets the leader skip a whole conflicting term at once (§5.3): `conflict_term`
    /// is the follower's term at `reject_index` and `conflict_index` the first index it holds of
    /// that term, or, when the follower's log is too short, `None` and its last index + 1.
    AppendEntriesResponse {
        term: u64,
        success: bool,
        match_index: u64,
        reject_index: u64,
        conflict_term: Option<u64>,
        conflict_index: u64,
        round: u64,
    },
    /// A heartbeat: the leader is alive. `commit` is already capped at what this follower is
    /// known to hold, so the follower may adopt it without a log check.
    Heartbeat { term: u64, commit: u64, round: u64 },
    /// The answer to a Heartbeat (and to any message from a leader of an older term, so that
    /// it learns the newer term and steps down).
    HeartbeatResponse { term: u64, round: u64 },
    /// The whole snapshot, for a follower that needs entries the leader has compacted (§7).
    InstallSnapshot { term: u64, snapshot: Snapshot },
    /// The follower now holds the leader's log up to `match_index`.
    InstallSnapshotResponse { term: u64, match_index: u64 },
    /// The leader asks this follower to start an election at once (leadership transfer, §3.10).
    TimeoutNow { term: u64 },
    /// A follower forwards a client proposal to its leader.
    Propose { request: RequestId, command: Bytes },
    /// A follower forwards a batch of linearizable reads to its leader (thesis §6.4); `term`
    /// is the follower's term when it sent them.
    ReadIndex { request: RequestId, term: u64 },
    /// The leader's answer: serve once applied through `index`, or `None` if it cannot answer
    /// (then `leader` is its best guess of who can).
    ReadIndexResponse { request: RequestId, index: Option<u64>, leader: Option<NodeId> },
}

impl RaftMessage {
    /// The sender's term, for the messages that carry one. Forwarded client requests do not:
    /// they are valid in any term and checked by role instead.
    pub fn term(&self) -> Option<u64> {
        match self {
            Self::RequestVote { term, .. }
            | Self::RequestVoteResponse { term, .. }
            | Self::AppendEntries { term, .. }
            | Self::AppendEntriesResponse { term, .. }
            | Self::Heartbeat { term, .. }
            | Self::HeartbeatResponse { term, .. }
            | Self::InstallSnapshot { term, .. }
            | Self::InstallSnapshotResponse { term, .. }
            | Self::TimeoutNow { term } => Some(*term),
            Self::Propose { .. } | Self::ReadIndex { .. } | Self::ReadIndexResponse { .. } => None,
        }
    }

    /// Whether only a leader sends this message: receiving one in a term means that the
    /// sender is that term's leader.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            Self::AppendEntries { .. }
                | Self::Heartbeat { .. }
                | Self::InstallSnapshot { .. }
                | Self::TimeoutNow { .. }
        )
    }

    /// A short name for the message kind, for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RequestVote { pre_vote: true, .. } => "pre_vote",
            Self::RequestVote { .. } => "request_vote",
            Self::RequestVoteResponse { pre_vote: true, .. } => "pre_vote_response",
            Self::RequestVoteResponse { .. } => "request_vote_response",
            Self::AppendEntries { .. } => "append_entries",
            Self::AppendEntriesResponse { .. } => "append_entries_response",
            Self::Heartbeat { .. } => "heartbeat",
            Self::HeartbeatResponse { .. } => "heartbeat_response",
            Self::InstallSnapshot { .. } => "install_snapshot",
            Self::InstallSnapshotResponse { .. } => "install_snapshot_response",
            Self::TimeoutNow { .. } => "timeout_now",
            Self::Propose { .. } => "propose",
            Self::ReadIndex { .. } => "read_index",
            Self::ReadIndexResponse { .. } => "read_index_response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_round_trip() {
        let msg = RaftMessage::AppendEntries {
            term: 3,
            prev_log_index: 9,
            prev_log_term: 2,
            entries: vec![Entry::command(10, 3, Bytes::from_static(b"x"))],
            leader_commit: 8,
            round: 4,
        };
        let bytes = postcard::to_allocvec(&msg).unwrap();
        assert_eq!(postcard::from_bytes::<RaftMessage>(&bytes).unwrap(), msg);
        assert_eq!(msg.term(), Some(3));
        assert!(msg.is_from_leader());
    }
}
