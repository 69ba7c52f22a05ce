//! The regular messages one member holds for one ring, and how far it has received and
//! delivered them.

use crate::message::Content;
use std::collections::BTreeMap;

/// Received messages of one ring, by sequence number.
///
/// `aru` (all received up to) is this member's own: every message up to it has arrived here.
/// Messages are freed once delivered and known to be held by every member (so nobody can ask
/// for them again); `aru` still counts them.
#[derive(Clone, Debug, Default)]
pub(crate) struct RingBuffer {
    messages: BTreeMap<u64, Content>,
    aru: u64,
    /// The highest sequence number received.
    high_received: u64,
    /// The highest sequence number known to exist (received, or seen on the token).
    high_seen: u64,
    /// Messages up to here were delivered (or skipped, for recovery messages).
    pub delivered: u64,
}

impl RingBuffer {
    /// Stores a message; `false` if it was already here.
    pub fn insert(&mut self, seq: u64, content: Content) -> bool {
        if seq == 0 || seq <= self.aru || self.messages.contains_key(&seq) {
            return false;
        }
        self.messages.insert(seq, content);
        self.high_received = self.high_received.max(seq);
        self.high_seen = self.high_seen.max(seq);
        while self.messages.contains_key(&(self.aru + 1)) {
            self.aru += 1;
        }
        true
    }

    pub fn get(&self, seq: u64) -> Option<&Content> {
        self.messages.get(&seq)
    }

    /// Whether the message arrived here (even if freed since).
    pub fn has(&self, seq: u64) -> bool {
        seq <= self.aru || self.messages.contains_key(&seq)
    }

    pub fn aru(&self) -> u64 {
        self.aru
    }

    /// The messages held above `aru` (received out of order).
    pub fn above_aru(&self) -> Vec<u64> {
        self.messages.range(self.aru + 1..).map(|(s, _)| *s).collect()
    }

    pub fn high_received(&self) -> u64 {
        self.high_received
    }

    pub fn note_seen(&mut self, seq: u64) {
        self.high_seen = self.high_seen.max(seq);
    }

    /// Sequence numbers up to `up_to` that have not arrived, lowest first, at most `limit`.
    pub fn missing(&self, up_to: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seq = self.aru + 1;
        while seq <= up_to && out.len() < limit {
            if !self.messages.contains_key(&seq) {
                out.push(seq);
            }
            seq += 1;
        }
        out
    }

    /// Frees messages up to `seq` (capped at what was delivered and received in order).
    pub fn free_up_to(&mut self, seq: u64) {
        let limit = seq.min(self.delivered).min(self.aru);
        while let Some((&first, _)) = self.messages.first_key_value() {
            if first > limit {
                break;
            }
            self.messages.remove(&first);
        }
    }

    /// Messages held with sequence numbers in `from..=to`, in order.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &Content)> {
        self.messages
            .range(from..=to.max(from))
            .map(|(s, c)| (*s, c))
            .filter(move |(s, _)| *s <= to)
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Payload};
    use conclave_core::{NodeId, RequestId};

    fn c() -> Content {
        Content::Regular(Payload {
            origin: NodeId(1),
            body: Body::Read { request: RequestId(1), index: 0 },
        })
    }

    #[test]
    fn aru_follows_contiguous_prefix() {
        let mut b = RingBuffer::default();
        assert!(b.insert(2, c()));
        assert_eq!(b.aru(), 0);
        assert_eq!(b.missing(3, 10), vec![1, 3]);
        assert!(b.insert(1, c()));
        assert!(!b.insert(1, c()));
        assert_eq!(b.aru(), 2);
        b.delivered = 2;
        b.free_up_to(5);
        assert_eq!(b.held(), 0);
        assert!(b.has(2));
        assert!(!b.insert(2, c()));
    }
}
