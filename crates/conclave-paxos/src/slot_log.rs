//! The in-memory mirror of what this replica has stored in the shared log store.
//!
//! One entry per slot: `index` = slot, `term` = the packed ballot of the accepted proposal,
//! `kind`/`data` = its value. Slots up to the commit index hold chosen values; slots above it
//! hold this acceptor's accepted records. The log is always contiguous from `first_index()`
//! (the slot after the snapshot) to `last_index()`: acceptors accept in slot order, so there
//! are no holes, which is what the store's contract (append, or truncate-then-append) needs.
//!
//! The store drops every stored entry from the first written index on. Rewriting one slot in
//! the middle therefore must re-emit every later slot too, or those accepted records — votes —
//! would be forgotten on disk. The mirror does this by itself: it remembers the lowest slot
//! changed since the last flush and [`SlotLog::take_dirty`] hands out everything from there to
//! the end. That suffix is short: it only ever spans slots that were in some leader's window.
//!
//! It also knows which prefix is durable: what [`SlotLog::take_dirty`] handed out becomes
//! durable at [`SlotLog::mark_durable`] (the driver's `advance()`), and rewriting a slot makes
//! everything from it on non-durable again. A leader sends its Accepts before its own records
//! are on disk and counts its own vote for a slot only once the slot is in this prefix.

use conclave_core::Entry;
use std::collections::VecDeque;

/// The accepted/chosen records of one replica, contiguous from the snapshot on.
#[derive(Clone, Debug)]
pub struct SlotLog {
    first: u64,
    entries: VecDeque<Entry>,
    dirty_from: Option<u64>,
    /// Slots through here were handed out by `take_dirty` and not rewritten since.
    handed: u64,
    /// Slots through here are durable: handed out in a `Ready` that has been carried out.
    durable: u64,
}

impl SlotLog {
    /// A log whose first slot is `first` (1, or the slot after a snapshot).
    pub fn new(first: u64, entries: Vec<Entry>) -> Self {
        debug_assert!(entries.iter().enumerate().all(|(i, e)| e.index == first + i as u64));
        // Whatever was recovered is on disk already.
        let last = first + entries.len() as u64 - 1;
        Self { first, entries: entries.into(), dirty_from: None, handed: last, durable: last }
    }

    /// The lowest slot held (compacted slots are below it).
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// The highest slot held, or `first_index() - 1` when empty.
    pub fn last_index(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }

    pub fn get(&self, slot: u64) -> Option<&Entry> {
        if slot < self.first {
            return None;
        }
        self.entries.get((slot - self.first) as usize)
    }

    /// Stores `entry` at its slot, which must be at most `last_index() + 1` and not compacted.
    /// Returns whether anything changed; an identical record is not rewritten.
    pub fn put(&mut self, entry: Entry) -> bool {
        let slot = entry.index;
        assert!(
            slot >= self.first && slot <= self.last_index() + 1,
            "slot log must stay contiguous: put slot {slot} into {}..={}",
            self.first,
            self.last_index()
        );
        let pos = (slot - self.first) as usize;
        if pos == self.entries.len() {
            self.entries.push_back(entry);
        } else if self.entries[pos] == entry {
            return false;
        } else {
            self.entries[pos] = entry;
        }
        self.mark_dirty_from(slot);
        true
    }

    /// Clones the records of slots `from..=to` that are held.
    pub fn range(&self, from: u64, to: u64) -> Vec<Entry> {
        let from = from.max(self.first);
        let to = to.min(self.last_index());
        if from > to {
            return Vec::new();
        }
        let start = (from - self.first) as usize;
        let end = (to - self.first) as usize;
        self.entries.range(start..=end).cloned().collect()
    }

    /// Drops every slot up to and including `index` (a snapshot covers them).
    pub fn compact_to(&mut self, index: u64) {
        if index < self.first {
            return;
        }
        let drop = ((index - self.first + 1) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.first = index + 1;
    }

    /// Makes [`SlotLog::take_dirty`] hand out everything from `slot` on again.
    pub fn mark_dirty_from(&mut self, slot: u64) {
        self.dirty_from = Some(self.dirty_from.map_or(slot, |d| d.min(slot)));
        // The record on disk for `slot` (if any) is about to be replaced.
        self.handed = self.handed.min(slot - 1);
        self.durable = self.durable.min(slot - 1);
    }

    /// Whether there are changes not yet handed out by [`SlotLog::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        self.dirty_from.is_some_and(|d| d <= self.last_index())
    }

    /// The entries to persist: from the lowest slot changed since the last call to the end.
    pub fn take_dirty(&mut self) -> Vec<Entry> {
        let taken = match self.dirty_from.take() {
            Some(from) => self.range(from, self.last_index()),
            None => Vec::new(),
        };
        self.handed = self.last_index();
        taken
    }

    /// Everything handed out by [`SlotLog::take_dirty`] so far is durable.
    pub fn mark_durable(&mut self) {
        self.durable = self.handed;
    }

    /// Slots up to here hold records that are durable in the store.
    pub fn durable_index(&self) -> u64 {
        self.durable.min(self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cmd(index: u64, term: u64, data: &'static str) -> Entry {
        Entry::command(index, term, Bytes::from_static(data.as_bytes()))
    }

    #[test]
    fn rewriting_a_middle_slot_re_emits_the_suffix() {
        let mut log = SlotLog::new(1, Vec::new());
        for i in 1..=4 {
            assert!(log.put(cmd(i, 1, "a")));
        }
        assert_eq!(log.take_dirty().len(), 4);
        assert!(!log.put(cmd(2, 1, "a")), "identical record is not rewritten");
        assert!(!log.is_dirty());
        assert!(log.put(cmd(2, 5, "b")));
        let dirty = log.take_dirty();
        assert_eq!(dirty.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(dirty[0].term, 5);
        assert_eq!(dirty[1].term, 1);
    }

    #[test]
    fn compaction_moves_the_first_index() {
        let mut log = SlotLog::new(1, (1..=5).map(|i| cmd(i, 1, "x")).collect());
        log.compact_to(3);
        assert_eq!((log.first_index(), log.last_index()), (4, 5));
        assert!(log.get(3).is_none());
        log.compact_to(9);
        assert_eq!((log.first_index(), log.last_index()), (10, 9));
        assert!(log.put(cmd(10, 2, "y")));
        assert_eq!(log.take_dirty().len(), 1);
    }

    #[test]
    fn durable_prefix_follows_hand_out_advance_and_rewrites() {
        let mut log = SlotLog::new(1, vec![cmd(1, 1, "a")]);
        assert_eq!(log.durable_index(), 1, "recovered records are durable");
        log.put(cmd(2, 1, "b"));
        log.put(cmd(3, 1, "c"));
        log.mark_durable();
        assert_eq!(log.durable_index(), 1, "not handed out yet");
        assert_eq!(log.take_dirty().len(), 2);
        assert_eq!(log.durable_index(), 1, "handed out, not yet carried out");
        log.mark_durable();
        assert_eq!(log.durable_index(), 3);
        log.put(cmd(2, 7, "B"));
        assert_eq!(log.durable_index(), 1, "a rewrite makes the suffix non-durable");
        log.take_dirty();
        log.put(cmd(4, 7, "d"));
        log.mark_durable();
        assert_eq!(log.durable_index(), 3, "slot 4 was written after the hand-out");
        log.take_dirty();
        log.mark_durable();
        assert_eq!(log.durable_index(), 4);
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn holes_are_refused() {
        let mut log = SlotLog::new(1, Vec::new());
        log.put(cmd(2, 1, "a"));
    }
}
