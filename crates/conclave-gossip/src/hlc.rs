//! Hybrid logical clocks (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014).
//!
//! An [`Hlc`] pairs the largest physical time a replica has heard of (`physical_ms`, the paper's
//! `l`) with a counter that orders events sharing it (`logical`, the paper's `c`). It never runs
//! backwards, it captures causality (an event that happened after another gets a larger stamp),
//! and it stays within the clock skew of physical time, so last-writer-wins by HLC both respects
//! causality and agrees with wall-clock intuition for writes further apart than the skew.
//!
//! Physical time is not read here: the protocol passes it in, derived from its tick count.
//! [`Stamp`] adds the writer's node id, which breaks ties so that every write has a distinct,
//! totally ordered rank.

use conclave_core::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest physical time representable when packed into a `u64` with [`Hlc::pack`]
/// (48 bits of milliseconds: about 8,900 years).
pub const PHYSICAL_MS_MAX: u64 = (1 << 48) - 1;

/// A hybrid logical clock reading: physical milliseconds, then a logical counter.
///
/// Ordered lexicographically, as the paper orders `(l, c)` pairs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    pub physical_ms: u64,
    pub logical: u16,
}

impl Hlc {
    pub const ZERO: Self = Self { physical_ms: 0, logical: 0 };

    pub fn new(physical_ms: u64, logical: u16) -> Self {
        Self { physical_ms: physical_ms.min(PHYSICAL_MS_MAX), logical }
    }

    /// Packs the reading into one `u64` (48 bits physical, 16 bits logical), the form kept in
    /// a log entry's `term`. Order is preserved.
    pub fn pack(self) -> u64 {
        (self.physical_ms.min(PHYSICAL_MS_MAX) << 16) | u64::from(self.logical)
    }

    pub fn unpack(packed: u64) -> Self {
        Self { physical_ms: packed >> 16, logical: (packed & 0xFFFF) as u16 }
    }

    /// The next reading after this one. When the 16-bit counter is exhausted the clock borrows
    /// one millisecond instead of wrapping, so order is never violated.
    pub fn successor(self) -> Self {
        match self.logical.checked_add(1) {
            Some(logical) => Self { physical_ms: self.physical_ms, logical },
            None => Self { physical_ms: self.physical_ms.saturating_add(1), logical: 0 },
        }
    }

    /// The reading `n` steps after this one (`n` applications of [`Hlc::successor`]).
    pub fn advance(self, n: u64) -> Self {
        let total = u64::from(self.logical).saturating_add(n);
        Self {
            physical_ms: self.physical_ms.saturating_add(total / (1 << 16)),
            logical: (total % (1 << 16)) as u16,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// The rank of one write: its HLC reading, ties broken by the writer's id.
///
/// Last writer wins by this order. Distinct writes never share a stamp: a node's clock
/// strictly increases across the stamps it issues.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    pub hlc: Hlc,
    pub node: NodeId,
}

impl Stamp {
    pub fn new(hlc: Hlc, node: NodeId) -> Self {
        Self { hlc, node }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.hlc, self.node)
    }
}

/// One replica's hybrid logical clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    now: Hlc,
}

impl Clock {
    /// A clock that will never issue a reading at or below `floor` (the high-water mark a
    /// restarted replica recovered).
    pub fn new(floor: Hlc) -> Self {
        Self { now: floor }
    }

    /// The latest reading issued or witnessed.
    pub fn now(&self) -> Hlc {
        self.now
    }

    /// A local or send event at physical time `pt`: `l = max(l, pt)`; the counter goes up if
    /// `l` did not move and restarts at 0 if it did.
    pub fn local_event(&mut self, pt: u64) -> Hlc {
        let pt = pt.min(PHYSICAL_MS_MAX);
        self.now = if pt > self.now.physical_ms { Hlc::new(pt, 0) } else { self.now.successor() };
        self.now
    }

    /// Issues `n >= 1` consecutive readings for one multi-key write and returns the first; the
    /// others are its successors. Replaying the write from its first reading gives the same
    /// stamps.
    pub fn local_events(&mut self, pt: u64, n: u64) -> Hlc {
        let first = self.local_event(pt);
        self.now = first.advance(n.saturating_sub(1));
        first
    }

    /// A receive event of a message stamped `remote` at physical time `pt`:
    /// `l = max(l, l_m, pt)`; the counter continues from whichever of the two clocks supplied
    /// `l` (the larger counter when both did), and restarts at 0 when `pt` did.
    pub fn receive(&mut self, pt: u64, remote: Hlc) -> Hlc {
        let pt = pt.min(PHYSICAL_MS_MAX);
        // A reading from the wire may be out of range; it is clamped like a local one.
        let remote = Hlc::new(remote.physical_ms, remote.logical);
        let local = self.now;
        let l = local.physical_ms.max(remote.physical_ms).max(pt);
        self.now = if l == local.physical_ms && l == remote.physical_ms {
            Hlc::new(l, local.logical.max(remote.logical)).successor()
        } else if l == local.physical_ms {
            local.successor()
        } else if l == remote.physical_ms {
            remote.successor()
        } else {
            Hlc::new(l, 0)
        };
        self.now
    }

    /// Raises the clock to at least `seen` without counting an event: used for stamps that
    /// arrive inside updates and for stamps recovered from the log, so that the next local
    /// event is ordered after them.
    pub fn witness(&mut self, seen: Hlc) {
        let seen = Hlc::new(seen.physical_ms, seen.logical);
        if seen > self.now {
            self.now = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_and_keeps_order() {
        let a = Hlc::new(1_700_000_000_000, 7);
        let b = Hlc::new(1_700_000_000_000, 8);
        assert_eq!(Hlc::unpack(a.pack()), a);
        assert!(a.pack() < b.pack());
    }

    #[test]
    fn successor_borrows_a_millisecond_on_overflow() {
        let h = Hlc::new(5, u16::MAX);
        assert_eq!(h.successor(), Hlc::new(6, 0));
        assert_eq!(Hlc::new(5, u16::MAX - 1).advance(3), Hlc::new(6, 1));
    }
}
