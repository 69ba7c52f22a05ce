//! One ring as a member sees it: its members, its received messages, and the member's token
//! bookkeeping on it.

use crate::RingId;
use crate::message::Token;
use crate::ring_buffer::RingBuffer;
use conclave_core::NodeId;

/// A ring this member belongs to (the current one) or last installed (the old one, while the
/// next ring is being formed).
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    pub id: RingId,
    /// In ring order: ascending id, so the representative comes first.
    pub members: Vec<NodeId>,
    /// Whether the ring holds a majority of the configured members.
    pub primary: bool,
    pub buffer: RingBuffer,
    /// Messages up to here were considered for appending to the log.
    pub log_seq: u64,
    /// Messages up to here were considered for the log in a `Ready` that has been carried out:
    /// their entries are durable here. An eager token's aru counts no further (see `token`).
    pub durable_seq: u64,
    /// Every message up to here is held by every member (safe delivery, Totem §3.2).
    pub safe: u64,
    /// The token's aru as this member last forwarded it; `None` before the first visit.
    pub last_forwarded_aru: Option<u64>,
    /// The token's seq as this member last forwarded it (0 before the first visit).
    pub last_forwarded_seq: u64,
    /// The token's aru as this member last received it.
    pub last_seen_aru: u64,
    /// The `token_seq` of the last token processed, to discard duplicates.
    pub last_token_seq: Option<u64>,
    /// Messages this member broadcast at its last visit, and its backlog then (flow control).
    pub prev_sent: u32,
    pub prev_backlog: u32,
    /// Ticks since the token was last here (token loss timeout).
    pub since_token: u64,
    /// The token as forwarded, kept for retransmission until a sign that the next member got it.
    pub forwarded: Option<Token>,
    pub since_forward: u64,
    /// A token received but not yet processed: held on an idle ring, or passed to this member
    /// by itself in a ring of one.
    pub held: Option<Token>,
    pub held_for: u64,
    /// The tick of the last visit, to measure rotations.
    pub last_visit_at: Option<u64>,
    /// Set once every member installed the ring: regular messages may be broadcast and
    /// delivered from then on.
    pub open: bool,
    /// The index of the no-op entry the ring starts with (primary component only).
    pub noop_index: u64,
    /// The old ring stops taking messages from the network once its state has been reported
    /// in a commit token (only recovery messages add to it then).
    pub frozen: bool,
    /// This member asked the representative to release a held token since its last visit.
    pub wake_sent: bool,
    /// The token looked idle at this member's last visit (nothing stamped since its previous
    /// visit, everything held everywhere, no backlog): a request queued now may find it resting
    /// at the representative, which is then asked for it.
    pub idle_seen: bool,
    /// Consecutive visits of the token to the representative that found the ring quiet
    /// (representative only; see `token`).
    pub quiet_visits: u32,
    /// The representative was asked for the token while it was not holding it: it must not
    /// hold it before passing it on once.
    pub woken: bool,
    /// Ticks since the last merge announcement (representative only).
    pub since_merge_detect: u64,
}

impl Ring {
    pub fn new(id: RingId, members: Vec<NodeId>, primary: bool) -> Self {
        Self {
            id,
            members,
            primary,
            buffer: RingBuffer::default(),
            log_seq: 0,
            durable_seq: 0,
            safe: 0,
            last_forwarded_aru: None,
            last_forwarded_seq: 0,
            last_seen_aru: 0,
            last_token_seq: None,
            prev_sent: 0,
            prev_backlog: 0,
            since_token: 0,
            forwarded: None,
            since_forward: 0,
            held: None,
            held_for: 0,
            last_visit_at: None,
            open: false,
            noop_index: 0,
            frozen: false,
            wake_sent: false,
            idle_seen: false,
            quiet_visits: 0,
            woken: false,
            since_merge_detect: 0,
        }
    }

    /// The member after `me` in ring order (itself in a ring of one).
    pub fn next_after(&self, me: NodeId) -> NodeId {
        let pos = self.members.iter().position(|&m| m == me).unwrap_or(0);
        self.members[(pos + 1) % self.members.len()]
    }

    pub fn others(&self, me: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(move |&m| m != me)
    }
}
