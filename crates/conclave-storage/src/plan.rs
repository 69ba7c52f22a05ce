//! Checks a [`WriteBatch`] against the log's rules and reduces it to plain steps.
//!
//! Both stores share this, so they accept and refuse exactly the same batches and agree on what
//! a batch means: which suffix a conflict drops and which entries a snapshot already covers.

use crate::{StorageError, WriteBatch};
use conclave_core::{Entry, Snapshot};

/// Where the log stands: the snapshot's index and the last index (staged writes included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub snapshot_index: u64,
    pub last_index: u64,
}

/// A checked batch, as the steps a store carries out in this order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan<'a> {
    pub snapshot: Option<&'a Snapshot>,
    pub hard_state: Option<&'a [u8]>,
    /// Drop every entry with index `>= truncate_from` (after the snapshot step).
    pub truncate_from: Option<u64>,
    /// Entries to append, already stripped of any the snapshot covers.
    pub entries: &'a [Entry],
    pub compact_to: Option<u64>,
}

impl Bounds {
    /// Checks `batch` and works out its steps, or explains why it is refused.
    pub fn plan<'a>(&self, batch: &WriteBatch<'a>) -> Result<Plan<'a>, StorageError> {
        let mut snapshot_index = self.snapshot_index;
        let mut last_index = self.last_index;
        if let Some(snapshot) = batch.snapshot {
            let index = snapshot.meta.index;
            if index < snapshot_index {
                return Err(StorageError::InvalidBatch(format!(
                    "snapshot at index {index} is older than the stored snapshot at index {snapshot_index}"
                )));
            }
            snapshot_index = index;
            last_index = last_index.max(index);
        }

        let mut truncate_from = None;
        if batch.discard_log {
            let Some(snapshot) = batch.snapshot else {
                return Err(StorageError::InvalidBatch("discard_log needs a snapshot".into()));
            };
            if last_index > snapshot.meta.index {
                truncate_from = Some(snapshot.meta.index + 1);
            }
            last_index = snapshot.meta.index;
        }

        let entries = batch.entries;
        if entries.first().is_some_and(|first| first.index == 0) {
            return Err(StorageError::InvalidBatch("entry index 0 is reserved".into()));
        }
        if let Some(pair) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(StorageError::InvalidBatch(format!(
                "entries are not contiguous: {} is followed by {}",
                pair[0].index, pair[1].index
            )));
        }
        // Entries are contiguous, so the covered ones are a prefix.
        let covered = entries.iter().take_while(|e| e.index <= snapshot_index).count();
        let kept = &entries[covered..];

        if let Some(first) = entries.first() {
            let from = first.index.max(snapshot_index.saturating_add(1));
            if first.index <= last_index && from <= last_index {
                truncate_from = Some(from);
                last_index = from - 1;
            }
        }
        if let Some(first) = kept.first().filter(|first| first.index != last_index + 1) {
            return Err(StorageError::InvalidBatch(format!(
                "entry {} would leave a gap after the last index {last_index}",
                first.index
            )));
        }

        Ok(Plan {
            snapshot: batch.snapshot,
            hard_state: batch.hard_state,
            truncate_from,
            entries: kept,
            compact_to: batch.compact_to,
        })
    }

    /// Moves the bounds as `plan` moves the log.
    pub fn apply(&mut self, plan: &Plan<'_>) {
        if let Some(snapshot) = plan.snapshot {
            self.snapshot_index = snapshot.meta.index;
            self.last_index = self.last_index.max(snapshot.meta.index);
        }
        if let Some(from) = plan.truncate_from {
            self.last_index = from - 1;
        }
        if let Some(last) = plan.entries.last() {
            self.last_index = last.index;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use conclave_core::SnapshotMeta;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::command(i, term, Bytes::from_static(b"x"))).collect()
    }

    fn snapshot(index: u64) -> Snapshot {
        Snapshot { meta: SnapshotMeta { index, term: 1, ..Default::default() }, data: Bytes::new() }
    }

    #[test]
    fn append_at_the_end_truncates_nothing() {
        let bounds = Bounds { snapshot_index: 0, last_index: 5 };
        let es = entries(6..=8, 1);
        let plan = bounds.plan(&WriteBatch { entries: &es, ..Default::default() }).unwrap();
        assert_eq!(plan.truncate_from, None);
        assert_eq!(plan.entries.len(), 3);
    }

    #[test]
    fn conflict_drops_the_suffix() {
        let mut bounds = Bounds { snapshot_index: 0, last_index: 10 };
        let es = entries(4..=5, 2);
        let plan = bounds.plan(&WriteBatch { entries: &es, ..Default::default() }).unwrap();
        assert_eq!(plan.truncate_from, Some(4));
        bounds.apply(&plan);
        assert_eq!(bounds.last_index, 5);
    }

    #[test]
    fn an_installed_snapshot_discards_the_whole_log() {
        let mut bounds = Bounds { snapshot_index: 0, last_index: 10 };
        let snap = snapshot(5);
        let plan = bounds
            .plan(&WriteBatch { snapshot: Some(&snap), discard_log: true, ..Default::default() })
            .unwrap();
        assert_eq!(plan.truncate_from, Some(6));
        bounds.apply(&plan);
        assert_eq!(bounds.last_index, 5);
        // A snapshot of this node's own state keeps the entries after it.
        let mut bounds = Bounds { snapshot_index: 0, last_index: 10 };
        let plan =
            bounds.plan(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
        assert_eq!(plan.truncate_from, None);
        bounds.apply(&plan);
        assert_eq!(bounds.last_index, 10);
    }

    #[test]
    fn gaps_and_holes_are_refused() {
        let bounds = Bounds { snapshot_index: 0, last_index: 5 };
        let es = entries(7..=8, 1);
        assert!(bounds.plan(&WriteBatch { entries: &es, ..Default::default() }).is_err());
        let mut holey = entries(6..=7, 1);
        holey[1].index = 9;
        assert!(bounds.plan(&WriteBatch { entries: &holey, ..Default::default() }).is_err());
        let zero = entries(0..=0, 1);
        assert!(
            Bounds::default().plan(&WriteBatch { entries: &zero, ..Default::default() }).is_err()
        );
    }

    #[test]
    fn snapshot_skips_covered_entries_and_moves_last_index() {
        let mut bounds = Bounds { snapshot_index: 0, last_index: 5 };
        let snap = snapshot(10);
        let es = entries(9..=12, 1);
        let batch = WriteBatch { snapshot: Some(&snap), entries: &es, ..Default::default() };
        let plan = bounds.plan(&batch).unwrap();
        assert_eq!(plan.entries.first().map(|e| e.index), Some(11));
        assert_eq!(plan.truncate_from, None, "nothing is stored after the snapshot");
        bounds.apply(&plan);
        assert_eq!(bounds, Bounds { snapshot_index: 10, last_index: 12 });
    }

    #[test]
    fn older_snapshot_is_refused() {
        let bounds = Bounds { snapshot_index: 10, last_index: 12 };
        let snap = snapshot(9);
        assert!(bounds.plan(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).is_err());
    }
}
