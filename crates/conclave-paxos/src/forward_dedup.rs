//! Exactly-once intake of proposals forwarded by other replicas.
//!
//! A network may deliver a message twice. Accepts, promises and heartbeats are idempotent, but
//! a forwarded proposal received twice would be proposed in two slots and applied twice — a
//! write taking effect again after later writes, which clients see as a lost update. So each
//! `Forward` carries the sender's session (drawn at random when the replica starts, so a
//! restarted sender starts afresh) and a sequence number, and the receiver remembers which
//! numbers it took, per sender and session, in a bounded window.

use conclave_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Sequence numbers remembered per (sender, session); older ones are refused outright.
const WINDOW: usize = 4096;

/// Sessions not heard from for this many ticks are forgotten.
const IDLE_TICKS: u64 = 60_000;

#[derive(Debug, Default)]
struct Window {
    /// Numbers below this are out of the window: refused.
    floor: u64,
    seen: BTreeSet<u64>,
    last_tick: u64,
}

/// The forwarded batches already taken, per sender and session.
#[derive(Debug, Default)]
pub(crate) struct ForwardDedup {
    windows: BTreeMap<(NodeId, u64), Window>,
}

impl ForwardDedup {
    /// Whether batch `seq` of `from`'s `session` is new; records it if so.
    pub fn admit(&mut self, from: NodeId, session: u64, seq: u64, now: u64) -> bool {
        let w = self.windows.entry((from, session)).or_default();
        w.last_tick = now;
        if seq < w.floor || !w.seen.insert(seq) {
            return false;
        }
        if w.seen.len() > WINDOW
            && let Some(oldest) = w.seen.pop_first()
        {
            w.floor = oldest + 1;
        }
        true
    }

    /// Forgets sessions idle for long (restarted or removed senders).
    pub fn prune(&mut self, now: u64) {
        self.windows.retain(|_, w| now.saturating_sub(w.last_tick) < IDLE_TICKS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_per_session() {
        let mut d = ForwardDedup::default();
        assert!(d.admit(NodeId(2), 7, 1, 0));
        assert!(!d.admit(NodeId(2), 7, 1, 0), "a duplicate");
        assert!(d.admit(NodeId(2), 7, 3, 0), "reordering is fine");
        assert!(d.admit(NodeId(2), 7, 2, 0));
        assert!(d.admit(NodeId(2), 8, 1, 0), "a restarted sender has a new session");
        assert!(d.admit(NodeId(3), 7, 1, 0), "another sender");
        for seq in 4..(WINDOW as u64 + 10) {
            assert!(d.admit(NodeId(2), 7, seq, 1));
        }
        assert!(!d.admit(NodeId(2), 7, 5, 1), "below the window: refused");
        d.prune(IDLE_TICKS + 1);
        assert!(d.windows.is_empty());
    }
}
