//! The replica's copy of the Raft log, held in memory, with the bookkeeping of which suffix has
//! not yet been handed to the driver for persistence, and of which prefix is known durable.
//!
//! Entries up to `offset_index` have been compacted into a snapshot; only their last index and
//! term are remembered, which is all the consistency check of §5.3 needs (§7).

use conclave_core::Entry;

#[derive(Debug)]
pub(crate) struct RaftLog {
    /// Index and term of the last compacted entry (0 and 0 when nothing was compacted).
    offset_index: u64,
    offset_term: u64,
    /// Entries `offset_index + 1 ..= last_index()`, in order.
    entries: Vec<Entry>,
    /// The first index changed since the last `take_unstable`; `last_index() + 1` when none.
    unstable_from: u64,
    /// Entries through here were handed out by `take_unstable`: written, perhaps not synced.
    handed_out: u64,
    /// Entries through here are durable: handed out in a `Ready` that has been carried out.
    durable: u64,
}

impl RaftLog {
    /// A log recovered from storage: everything in it is already durable. `entries` must be
    /// contiguous from `offset_index + 1` (the caller checks).
    pub fn recovered(offset_index: u64, offset_term: u64, entries: Vec<Entry>) -> Self {
        let last = offset_index + entries.len() as u64;
        Self {
            offset_index,
            offset_term,
            entries,
            unstable_from: last + 1,
            handed_out: last,
            durable: last,
        }
    }

    pub fn offset_index(&self) -> u64 {
        self.offset_index
    }

    pub fn first_index(&self) -> u64 {
        self.offset_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.offset_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    /// The term of the entry at `index`, if this log still knows it (index 0 has term 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.offset_index {
            return Some(self.offset_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.offset_index {
            return None;
        }
        self.entries.get((index - self.offset_index - 1) as usize)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up-to-date as this
    /// one (§5.4.1).
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries from `from` on, at most `max_count` of them and `max_bytes` of data, but always
    /// at least one if there is one (a single large entry must still be able to travel).
    pub fn entries_from(&self, from: u64, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        if from <= self.offset_index || from > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.offset_index - 1) as usize;
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for entry in self.entries[start..].iter().take(max_count) {
            bytes += entry.size_hint();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// Committed entries `from ..= to` to hand to the state machine.
    pub fn slice(&self, from: u64, to: u64) -> Vec<Entry> {
        if from > to {
            return Vec::new();
        }
        let from = from.max(self.first_index());
        let to = to.min(self.last_index());
        (from..=to).filter_map(|i| self.entry(i).cloned()).collect()
    }

    /// Appends `entry` after the last one (a leader writing its own log).
    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1, "appended entry leaves a gap");
        self.unstable_from = self.unstable_from.min(entry.index);
        self.entries.push(entry);
    }

    /// Drops every entry from `entries[0].index` on and appends `entries` (a follower taking a
    /// leader's suffix, §5.3). The first index must lie within `first_index ..= last_index + 1`.
    pub fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index > self.offset_index && first.index <= self.last_index() + 1,
            "entries starting at {} do not attach to a log of {}..={}",
            first.index,
            self.first_index(),
            self.last_index()
        );
        self.entries.truncate((first.index - self.offset_index - 1) as usize);
        self.entries.extend_from_slice(entries);
        self.unstable_from = self.unstable_from.min(first.index);
        self.handed_out = self.handed_out.min(first.index - 1);
        self.durable = self.durable.min(first.index - 1);
    }

    /// The position in `entries` of the first one this log does not already hold with the
    /// same term; `None` if it holds them all.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<usize> {
        entries.iter().position(|e| self.term_at(e.index) != Some(e.term))
    }

    /// The last index holding an entry of `term`, if any. Terms never decrease along a log,
    /// so a binary search finds it.
    pub fn last_index_of_term(&self, term: u64) -> Option<u64> {
        let p = self.entries.partition_point(|e| e.term <= term);
        if p > 0 {
            return (self.entries[p - 1].term == term).then_some(self.offset_index + p as u64);
        }
        (self.offset_index > 0 && self.offset_term == term).then_some(self.offset_index)
    }

    /// The first index holding an entry of `term` at or before `upto` (which holds `term`).
    pub fn first_index_of_term(&self, term: u64, upto: u64) -> u64 {
        let p = self.entries.partition_point(|e| e.term < term);
        (self.offset_index + p as u64 + 1).min(upto)
    }

    /// Forgets entries up to and including `index`, which a snapshot now covers.
    pub fn compact(&mut self, index: u64) {
        if index <= self.offset_index {
            return;
        }
        let index = index.min(self.last_index());
        let term = self.term_at(index).expect("compaction point lies within the log");
        self.entries.drain(..(index - self.offset_index) as usize);
        self.offset_index = index;
        self.offset_term = term;
        self.unstable_from = self.unstable_from.max(index + 1);
    }

    /// Replaces the whole log by a snapshot ending at (`index`, `term`) (§7).
    pub fn restore(&mut self, index: u64, term: u64) {
        self.entries.clear();
        self.offset_index = index;
        self.offset_term = term;
        self.unstable_from = index + 1;
        self.handed_out = index;
        self.durable = self.durable.min(index);
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The entries changed since the last call, which the driver must now make durable.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from;
        self.unstable_from = self.last_index() + 1;
        self.handed_out = self.last_index();
        self.slice(from, self.last_index())
    }

    /// The `Ready` that carried the entries handed out so far has been carried out in full.
    pub fn mark_durable(&mut self) {
        self.durable = self.handed_out;
    }

    /// The last index known to be on this replica's disk.
    pub fn durable_index(&self) -> u64 {
        self.durable.min(self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[u64]) -> RaftLog {
        let entries =
            terms.iter().enumerate().map(|(i, &t)| Entry::noop(i as u64 + 1, t)).collect();
        RaftLog::recovered(0, 0, entries)
    }

    #[test]
    fn term_search() {
        let l = log(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(l.last_index_of_term(2), Some(5));
        assert_eq!(l.last_index_of_term(3), None);
        assert_eq!(l.last_index_of_term(4), Some(6));
        assert_eq!(l.first_index_of_term(2, 5), 3);
        assert_eq!(l.first_index_of_term(1, 2), 1);
    }

    #[test]
    fn truncate_marks_unstable_and_compact_keeps_terms() {
        let mut l = log(&[1, 1, 2, 2]);
        assert!(!l.has_unstable());
        l.truncate_and_append(&[Entry::noop(3, 3)]);
        assert_eq!(l.last_index(), 3);
        assert_eq!(l.take_unstable(), vec![Entry::noop(3, 3)]);
        l.compact(2);
        assert_eq!(l.first_index(), 3);
        assert_eq!(l.term_at(2), Some(1));
        assert_eq!(l.term_at(1), None);
        assert_eq!(l.last_index_of_term(1), Some(2));
    }

    #[test]
    fn batches_respect_count_and_bytes_but_send_one() {
        let mut l = log(&[]);
        for i in 1..=10 {
            l.append(Entry::command(i, 1, bytes::Bytes::from(vec![0u8; 100])));
        }
        assert_eq!(l.entries_from(1, 3, usize::MAX).len(), 3);
        assert_eq!(l.entries_from(1, 100, 250).len(), 2);
        assert_eq!(l.entries_from(1, 100, 1).len(), 1);
        assert!(l.entries_from(11, 100, 1).is_empty());
    }
}
