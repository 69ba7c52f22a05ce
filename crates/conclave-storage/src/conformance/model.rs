//! The reference model: the [`crate::store`] rules written as plainly as possible, used as the
//! oracle that every store's behaviour is compared against.
//!
//! It is deliberately independent of the stores' own batch checking, so that a mistake there
//! shows up as a disagreement instead of being copied into the expectation.
//!
//! A write is all-or-nothing on recovery, so the model knows no state inside a batch: a crash
//! leaves the synced state followed by some prefix of the later batches, each one whole
//! ([`Model::reachable`]).

use crate::WriteBatch;
use bytes::Bytes;
use conclave_core::{Entry, Recovered, Snapshot};

/// A log as the contract says it should be: hard state, snapshot, entries after the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub hard_state: Option<Bytes>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Model {
    /// The state a store recovered, as a model.
    pub fn from_recovered(recovered: &Recovered) -> Self {
        Self {
            hard_state: recovered.hard_state.clone(),
            snapshot: recovered.snapshot.clone(),
            entries: recovered.entries.clone(),
        }
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    /// The last entry's index, or the snapshot's if no entry follows it.
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    /// The term of the entry at `index`, if the model holds it (or the snapshot ends there).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        match &self.snapshot {
            Some(s) if s.meta.index == index => return Some(s.meta.term),
            _ => {}
        }
        self.entries.iter().find(|e| e.index == index).map(|e| e.term)
    }

    /// Whether a store recovered exactly this state.
    pub fn matches(&self, recovered: &Recovered) -> bool {
        self.hard_state == recovered.hard_state
            && self.snapshot == recovered.snapshot
            && self.entries == recovered.entries
    }

    /// Applies `batch` by the contract's rules, or says why it must be refused; a refused batch
    /// changes nothing.
    pub fn apply(&mut self, batch: &WriteBatch<'_>) -> Result<(), String> {
        let mut next = self.clone();
        next.apply_in_place(batch)?;
        *self = next;
        Ok(())
    }

    /// Applies `batch` field by field; on an error `self` is left half changed.
    fn apply_in_place(&mut self, batch: &WriteBatch<'_>) -> Result<(), String> {
        let entries = batch.entries;
        for (i, entry) in entries.iter().enumerate() {
            if entry.index == 0 {
                return Err("entry index 0".into());
            }
            if i > 0 && entry.index != entries[i - 1].index + 1 {
                return Err("entries not contiguous".into());
            }
        }
        if let Some(snapshot) = batch.snapshot {
            if snapshot.meta.index < self.snapshot_index() {
                return Err(format!(
                    "snapshot {} is older than {}",
                    snapshot.meta.index,
                    self.snapshot_index()
                ));
            }
            self.entries.retain(|e| e.index > snapshot.meta.index);
            self.snapshot = Some(snapshot.clone());
            if batch.discard_log {
                self.entries.clear();
            }
        } else if batch.discard_log {
            return Err("discard_log without a snapshot".into());
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = Some(Bytes::copy_from_slice(hard_state));
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|e| e.index < first.index);
        }
        for entry in entries {
            if entry.index <= self.snapshot_index() {
                continue;
            }
            if entry.index != self.last_index() + 1 {
                return Err(format!(
                    "entry {} leaves a gap after {}",
                    entry.index,
                    self.last_index()
                ));
            }
            self.entries.push(entry.clone());
        }
        Ok(())
    }

    /// Every state a restart may recover after `synced` was made durable and `pending` were
    /// written after it: `synced` plus some prefix of `pending`, each write whole — never part
    /// of one. The first state is `synced`, the last is every write applied.
    pub fn reachable(synced: &Model, pending: &[WriteBatch<'_>]) -> Vec<Model> {
        let mut states = Vec::with_capacity(pending.len() + 1);
        states.push(synced.clone());
        let mut state = synced.clone();
        for batch in pending {
            state.apply(batch).expect("pending writes were accepted, so they apply");
            states.push(state.clone());
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::SnapshotMeta;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| Entry::command(i, term, Bytes::from(vec![i as u8]))).collect()
    }

    /// Reference: Paxos Made Simple §2.2 — the rewrite of slots 5..=10 is kept whole or not at
    /// all, so no reachable state forgets an accepted slot.
    #[test]
    fn reachable_states_hold_whole_writes_only() {
        let mut synced = Model::default();
        synced.apply(&WriteBatch { entries: &entries(1..=10, 1), ..Default::default() }).unwrap();
        let rewrite = entries(5..=10, 2);
        let appended = entries(11..=12, 2);
        let pending = [
            WriteBatch { hard_state: Some(b"ballot 2"), entries: &rewrite, ..Default::default() },
            WriteBatch { entries: &appended, ..Default::default() },
        ];
        let states = Model::reachable(&synced, &pending);
        assert_eq!(states.len(), 3, "synced, then each write whole");
        assert_eq!(states[0], synced);
        assert_eq!(states[1].hard_state.as_deref(), Some(&b"ballot 2"[..]));
        assert_eq!(states[1].entries, [entries(1..=4, 1), rewrite].concat());
        assert_eq!(states[2].last_index(), 12);
        assert!(states.iter().all(|s| s.last_index() >= 10), "no state loses a slot");
    }

    #[test]
    fn a_refused_batch_changes_nothing() {
        let mut model = Model::default();
        model.apply(&WriteBatch { entries: &entries(1..=3, 1), ..Default::default() }).unwrap();
        let before = model.clone();
        let gap = entries(6..=6, 1);
        let batch = WriteBatch { hard_state: Some(b"hs"), entries: &gap, ..Default::default() };
        assert!(model.apply(&batch).is_err());
        assert_eq!(model, before);
    }

    #[test]
    fn snapshot_then_entries() {
        let mut model = Model::default();
        let snap = Snapshot {
            meta: SnapshotMeta { index: 5, term: 2, ..Default::default() },
            data: Bytes::new(),
        };
        let es = entries(4..=7, 2);
        model
            .apply(&WriteBatch { snapshot: Some(&snap), entries: &es, ..Default::default() })
            .unwrap();
        assert_eq!(model.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6, 7]);
        assert_eq!(model.term_at(5), Some(2));
    }
}
