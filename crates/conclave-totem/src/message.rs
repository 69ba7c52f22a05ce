//! What Totem members send each other: regular messages, the regular token, join messages, the
//! commit token, merge announcements and the primary component's log synchronisation.

use crate::RingId;
use conclave_core::{Entry, NodeId, RequestId, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One message between Totem members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TotemMessage {
    /// A regular message broadcast on a ring (Totem §3.1), sent to every other member.
    Mcast(Mcast),
    /// The regular token, passed to the next member of the ring (Totem §3.2).
    Token(Token),
    /// A join message of the gather state (Totem §4.2), sent to every configured member.
    Join(Join),
    /// The commit token that installs a new ring (Totem §4.3), passed member to member.
    Commit(CommitToken),
    /// A ring's representative announcing the ring to configured members outside it, so that
    /// rings split by a partition merge once it heals (Corosync's merge detection).
    MergeDetect(MergeDetect),
    /// The representative's catch-up for a member of a new primary component whose log is
    /// behind or diverges: a snapshot and/or the entries it lacks (sent during recovery).
    Sync(Sync),
    /// A member has requests queued: the representative, if it holds the token on an idle
    /// ring, passes it on at once instead of at the end of `token_hold_ms`.
    Wake(Wake),
}

/// A regular message: stamped by the token holder with the ring's next sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mcast {
    pub ring: RingId,
    pub seq: u64,
    pub content: Content,
}

/// What a regular message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A message originated on this ring.
    Regular(Payload),
    /// A message of an old ring, rebroadcast during recovery so that every member that comes
    /// from that old ring ends up with the same set (Totem §4.4).
    Recovered(OldMessage),
}

/// An application-level message and who originated it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub origin: NodeId,
    pub body: Body,
}

/// The two kinds of application messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Commands for the state machine, batched: the holder packs the proposals it has queued
    /// into one message, so that one sequence number, one broadcast and one acknowledgement on
    /// the token cover them all. Each entry carries its place in the global delivered sequence
    /// (`entry.index`, consecutive within the batch) and the ring sequence number it was
    /// stamped on (`entry.term`). Never empty.
    Entries(Vec<Entry>),
    /// A linearizable read: once delivered in safe order, the origin may serve `request` at
    /// `index`, the last entry ordered before the marker.
    Read { request: RequestId, index: u64 },
}

/// A message of an old ring, as it travels inside a recovery message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldMessage {
    pub ring: RingId,
    pub seq: u64,
    pub payload: Payload,
}

/// The regular token (Totem §3.2). Only its holder broadcasts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub ring: RingId,
    /// Incremented at every pass, so that a retransmitted or delayed copy is recognised and
    /// discarded (Totem §3.3).
    pub token_seq: u64,
    /// The highest sequence number stamped on the ring so far.
    pub seq: u64,
    /// All-received-up-to: every member has every message up to `aru`, as far as the token has
    /// learned (lowered by a member that lacks some, raised again only by that member).
    pub aru: u64,
    /// The member that last lowered `aru`; `None` when `aru == seq`.
    pub aru_id: Option<NodeId>,
    /// Retransmission requests: sequence numbers some member lacks.
    pub rtr: Vec<u64>,
    /// Flow control count: messages broadcast (new or retransmitted) during the last rotation.
    pub fcc: u32,
    /// Messages waiting to be broadcast, summed over all members.
    pub backlog: u32,
    /// The last global index stamped on an entry in this ring (primary component only).
    pub index: u64,
    /// The progress of recovery; `None` once every member has installed the ring.
    pub recovery: Option<RecoveryProgress>,
}

/// Recovery's progress, carried by the token around the new ring (see `recovery`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryProgress {
    /// Consecutive visits at which the visited member had nothing to (re)send and saw
    /// `aru == seq`. Once it reaches the ring size, every member has every recovery message.
    pub quiet: u32,
    /// Each member's log, reported once the old-ring messages have been exchanged.
    pub summaries: BTreeMap<NodeId, LogSummary>,
    /// Members whose log equals the chosen one (primary component only; all members otherwise).
    pub synced: BTreeSet<NodeId>,
    /// How far a member being caught up in several batches has come: its log matches the
    /// chosen one up to here.
    pub progress: BTreeMap<NodeId, u64>,
    /// Members that delivered the transitional and the new regular configuration.
    pub installed: BTreeSet<NodeId>,
}

/// A member's durable log, in the terms the primary component's catch-up needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// Entries up to here are committed (applied) on this member.
    pub committed: u64,
    pub last_index: u64,
    /// The ring sequence number of the last entry: the ring that stamped it.
    pub last_term: u64,
}

impl LogSummary {
    /// Whether this log is at least as up to date as `other` (last term first, then length).
    pub fn up_to_date_key(&self) -> (u64, u64) {
        (self.last_term, self.last_index)
    }
}

/// A gathering member's view of the membership (Totem §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The highest ring sequence number the sender has seen.
    pub ring_seq: u64,
    /// Members the sender believes should form the new ring (including failed ones).
    pub proc_set: BTreeSet<NodeId>,
    /// Members the sender has given up on.
    pub fail_set: BTreeSet<NodeId>,
}

/// The commit token (Totem §4.3): rotates twice around the new ring, collecting each member's
/// old-ring state on the first pass and telling everyone everything on the second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitToken {
    pub ring: RingId,
    /// The new ring's members, in ring order (ascending id, the representative first).
    pub members: Vec<NodeId>,
    pub infos: BTreeMap<NodeId, MemberInfo>,
    /// 1 on the first rotation, 2 on the second.
    pub pass: u8,
}

/// What one member brings from its old ring (Totem §4.3's memb_list entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The ring the member last installed; `None` for a member that restarted since.
    pub old_ring: Option<RingId>,
    /// The member's all-received-up-to on its old ring.
    pub aru: u64,
    /// The highest old-ring sequence number the member holds.
    pub high_seq: u64,
    /// The highest old-ring sequence number the member delivered.
    pub high_delivered: u64,
}

/// "Ring `ring` exists": sent by a representative to configured members outside its ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeDetect {
    pub ring: RingId,
    /// The nodes the sender has heard from lately. A receiver the sender cannot hear does not
    /// start a merge that would only fail it again (a one-way partition would otherwise keep
    /// the receiver's ring re-forming).
    pub heard: BTreeSet<NodeId>,
}

/// "I have requests to broadcast": sent to the representative of `ring`, which may be holding
/// the token of an idle ring. Purely a hint: it changes when the token moves, never what it
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub ring: RingId,
}

/// Brings a member's log to the chosen log of a new primary component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sync {
    pub ring: RingId,
    /// Present when the entries the member lacks were compacted into a snapshot.
    pub snapshot: Option<Snapshot>,
    /// The next batch of the chosen log after what the member has (or after the snapshot).
    pub entries: Vec<Entry>,
    /// The chosen log's last index: the member is caught up once its log reaches it.
    pub end: u64,
}

impl TotemMessage {
    /// A short name for traces and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mcast(_) => "mcast",
            Self::Token(_) => "token",
            Self::Join(_) => "join",
            Self::Commit(_) => "commit",
            Self::MergeDetect(_) => "merge_detect",
            Self::Sync(_) => "sync",
            Self::Wake(_) => "wake",
        }
    }
}
