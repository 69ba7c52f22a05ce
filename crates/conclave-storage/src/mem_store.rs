//! An in-memory [`LogStore`] for the simulator, with power loss on demand.
//!
//! [`MemStore`] keeps two copies of the log: what a restart would find (synced) and what the
//! running node sees (synced plus staged). Writes since the last sync are also kept as a journal,
//! so that `sync` replays only them instead of copying the whole log, and so that a crash can
//! keep some of them, as a real disk sometimes does. A kept write is always whole: a write is
//! all-or-nothing on recovery.

use crate::plan::{Bounds, Plan};
use crate::{LogStore, StorageError, WriteBatch};
use bytes::Bytes;
use conclave_core::{Entry, Recovered, Snapshot};
use std::collections::VecDeque;

/// A [`LogStore`] in memory: `sync` is instant and `crash` simulates power loss.
///
/// It follows the same batch rules as the file store but has no record size limits.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    synced: MemLog,
    staged: MemLog,
    /// Writes since the last sync, oldest first.
    journal: Vec<OwnedPlan>,
    syncs: u64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// What a restart would recover: only what was synced.
    pub fn recover(&self) -> Recovered {
        Recovered {
            hard_state: self.synced.hard_state.clone(),
            snapshot: self.synced.snapshot.clone(),
            entries: self.synced.entries.iter().cloned().collect(),
        }
    }

    /// Simulates power loss: everything written since the last sync is lost.
    pub fn crash(&mut self) {
        self.crash_keeping_writes(0);
    }

    /// Simulates power loss after which the first `writes` unsynced writes happened to reach
    /// the disk anyway, each whole (the contract allows a crash to keep any prefix of them, but
    /// never part of one).
    pub fn crash_keeping_writes(&mut self, writes: usize) {
        for plan in self.journal.drain(..writes.min(self.journal.len())) {
            self.synced.apply(&plan);
        }
        self.journal.clear();
        self.staged = self.synced.clone();
    }

    /// How many writes a crash would lose now.
    pub fn unsynced_writes(&self) -> usize {
        self.journal.len()
    }

    /// How many times `sync` was called: each one stands for an `fdatasync`.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }
}

impl LogStore for MemStore {
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        let plan = OwnedPlan::from(self.staged.bounds.plan(batch)?);
        self.staged.apply(&plan);
        self.journal.push(plan);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        for plan in self.journal.drain(..) {
            self.synced.apply(&plan);
        }
        self.syncs += 1;
        Ok(())
    }

    fn last_index(&self) -> u64 {
        self.staged.bounds.last_index
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.staged.snapshot.clone())
    }
}

/// A checked batch that owns its data, so it can wait in the journal.
#[derive(Clone, Debug)]
struct OwnedPlan {
    snapshot: Option<Snapshot>,
    hard_state: Option<Bytes>,
    truncate_from: Option<u64>,
    entries: Vec<Entry>,
}

impl From<Plan<'_>> for OwnedPlan {
    fn from(plan: Plan<'_>) -> Self {
        Self {
            snapshot: plan.snapshot.cloned(),
            hard_state: plan.hard_state.map(Bytes::copy_from_slice),
            truncate_from: plan.truncate_from,
            entries: plan.entries.to_vec(),
        }
    }
}

/// One copy of the log. `entries` always starts right after the snapshot.
#[derive(Clone, Debug, Default)]
struct MemLog {
    hard_state: Option<Bytes>,
    snapshot: Option<Snapshot>,
    entries: VecDeque<Entry>,
    bounds: Bounds,
}

impl MemLog {
    fn apply(&mut self, plan: &OwnedPlan) {
        if let Some(snapshot) = &plan.snapshot {
            let covered = snapshot.meta.index.saturating_sub(self.bounds.snapshot_index);
            let covered = usize::try_from(covered).unwrap_or(usize::MAX).min(self.entries.len());
            self.entries.drain(..covered);
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(hard_state) = &plan.hard_state {
            self.hard_state = Some(hard_state.clone());
        }
        let snapshot_index =
            plan.snapshot.as_ref().map_or(self.bounds.snapshot_index, |s| s.meta.index);
        if let Some(from) = plan.truncate_from {
            self.entries.truncate((from - snapshot_index - 1) as usize);
        }
        self.entries.extend(plan.entries.iter().cloned());
        self.bounds.apply(&Plan {
            snapshot: plan.snapshot.as_ref(),
            hard_state: None,
            truncate_from: plan.truncate_from,
            entries: &plan.entries,
            compact_to: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> Entry {
        Entry::command(index, 1, Bytes::from(vec![index as u8]))
    }

    #[test]
    fn crash_keeping_some_writes_keeps_a_prefix() {
        let mut store = MemStore::new();
        for i in 1..=3 {
            store.write(&WriteBatch { entries: &[entry(i)], ..Default::default() }).unwrap();
        }
        assert_eq!(store.unsynced_writes(), 3);
        store.crash_keeping_writes(2);
        assert_eq!(store.last_index(), 2);
        assert_eq!(store.recover().entries, vec![entry(1), entry(2)]);
        assert_eq!(store.unsynced_writes(), 0);
    }
}
