//! The member's copy of the replicated log: the committed prefix and the tentative tail.
//!
//! Entries are appended as soon as they are received in order (before the member acknowledges
//! them through the token's aru), not only once delivered, so that a write delivered in safe
//! order survives even if every member that had it crashes and restarts. Entries after the
//! committed index may still be replaced when a new primary component chooses another tail.

use crate::TotemError;
use crate::message::LogSummary;
use conclave_core::{Entry, SnapshotMeta};
use std::collections::VecDeque;

/// Entries after the last snapshot, contiguous, with nondecreasing terms.
#[derive(Clone, Debug, Default)]
pub(crate) struct TotemLog {
    snapshot_index: u64,
    snapshot_term: u64,
    entries: VecDeque<Entry>,
}

impl TotemLog {
    /// Rebuilds the log from what storage recovered.
    pub fn recovered(meta: Option<&SnapshotMeta>, entries: Vec<Entry>) -> Result<Self, TotemError> {
        let (snapshot_index, snapshot_term) = meta.map_or((0, 0), |m| (m.index, m.term));
        let mut log = Self { snapshot_index, snapshot_term, entries: VecDeque::new() };
        // Storage may keep a few entries that the snapshot already covers.
        for entry in entries.into_iter().filter(|e| e.index > snapshot_index) {
            if entry.index != log.last_index() + 1 {
                return Err(TotemError::RecoveredLog(format!(
                    "expected entry {} after index {}, found entry {}",
                    log.last_index() + 1,
                    log.last_index(),
                    entry.index
                )));
            }
            if entry.term < log.last_term() {
                return Err(TotemError::RecoveredLog(format!(
                    "entry {} has term {}, below the term {} before it",
                    entry.index,
                    entry.term,
                    log.last_term()
                )));
            }
            log.entries.push_back(entry);
        }
        Ok(log)
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Entries `from..=to` (clamped to what the log holds).
    pub fn slice(&self, from: u64, to: u64) -> Vec<Entry> {
        let from = from.max(self.first_index());
        let to = to.min(self.last_index());
        (from..=to).filter_map(|i| self.entry(i).cloned()).collect()
    }

    /// Appends `entry`, first dropping every entry from its index on (a replaced suffix).
    ///
    /// Panics if the entry would leave a gap or overwrite the snapshot: callers check
    /// contiguity first, so either would be a broken invariant.
    pub fn append(&mut self, entry: Entry) {
        assert!(
            entry.index > self.snapshot_index && entry.index <= self.last_index() + 1,
            "log append out of place: entry {} onto a log holding {}..={}",
            entry.index,
            self.first_index(),
            self.last_index()
        );
        self.entries.truncate((entry.index - self.snapshot_index - 1) as usize);
        self.entries.push_back(entry);
    }

    /// Drops the entries a snapshot through `index` covers.
    pub fn compact(&mut self, index: u64) {
        let Some(term) = self.entry(index).map(|e| e.term) else {
            return;
        };
        let drop = (index - self.snapshot_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces the whole log by a snapshot received from a peer.
    pub fn restore(&mut self, meta: &SnapshotMeta) {
        self.entries.clear();
        self.snapshot_index = meta.index;
        self.snapshot_term = meta.term;
    }

    pub fn summary(&self, committed: u64) -> LogSummary {
        LogSummary { committed, last_index: self.last_index(), last_term: self.last_term() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn e(index: u64, term: u64) -> Entry {
        Entry::command(index, term, Bytes::from(format!("{index}")))
    }

    #[test]
    fn append_replaces_suffix_and_compacts() {
        let mut log = TotemLog::recovered(None, vec![e(1, 4), e(2, 4), e(3, 4)]).unwrap();
        log.append(e(2, 8));
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.last_term(), 8);
        log.compact(1);
        assert_eq!(log.first_index(), 2);
        assert_eq!(log.entry(1), None);
        assert_eq!(log.slice(1, 9), vec![e(2, 8)]);
        assert!(TotemLog::recovered(None, vec![e(1, 4), e(3, 4)]).is_err());
        assert!(TotemLog::recovered(None, vec![e(1, 4), e(2, 3)]).is_err());
    }
}
