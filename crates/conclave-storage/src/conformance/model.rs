//! The reference model: the [`crate::store`] rules written as plainly as possible, used as the
//! oracle that every store's behaviour is compared against.
//!
//! It is deliberately independent of the stores' own batch checking, so that a mistake there
//! shows up as a disagreement instead of being copied into the expectation.

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
        next.walk(batch, &mut |_| {})?;
        *self = next;
        Ok(())
    }

    /// Every state a crash may leave when it cuts `batch` short: nothing of it, then each field
    /// in order, with entries kept one at a time. The last state is the whole batch applied.
    pub fn steps(&self, batch: &WriteBatch<'_>) -> Result<Vec<Model>, String> {
        let mut steps = vec![self.clone()];
        let mut state = self.clone();
        state.walk(batch, &mut |step| steps.push(step.clone()))?;
        Ok(steps)
    }

    /// Applies `batch` to `self` step by step, showing `visit` the state after each step.
    fn walk(
        &mut self,
        batch: &WriteBatch<'_>,
        visit: &mut dyn FnMut(&Model),
    ) -> Result<(), String> {
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
            visit(self);
            if batch.discard_log && !self.entries.is_empty() {
                self.entries.clear();
                visit(self);
            }
        } else if batch.discard_log {
            return Err("discard_log without a snapshot".into());
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = Some(Bytes::copy_from_slice(hard_state));
            visit(self);
        }
        let last_index = self.last_index();
        if let Some(first) = entries.first().filter(|f| f.index <= last_index) {
            let before = self.entries.len();
            self.entries.retain(|e| e.index < first.index);
            if self.entries.len() != before {
                visit(self);
            }
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
            visit(self);
        }
        Ok(())
    }

    /// Every state a restart may recover after `synced` was made durable and `pending` were
    /// written after it: `synced` plus some prefix of `pending`, the last one perhaps cut short.
    pub fn reachable(synced: &Model, pending: &[WriteBatch<'_>]) -> Vec<Model> {
        let mut states = vec![synced.clone()];
        let mut base = synced.clone();
        for batch in pending {
            let steps = base.steps(batch).expect("pending writes were accepted, so they apply");
            base = steps.last().expect("at least one step").clone();
            states.extend(steps.into_iter().skip(1));
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

    #[test]
    fn steps_cut_a_batch_in_field_order() {
        let mut model = Model::default();
        model.apply(&WriteBatch { entries: &entries(1..=3, 1), ..Default::default() }).unwrap();
        let es = entries(2..=3, 2);
        let batch = WriteBatch { hard_state: Some(b"hs"), entries: &es, ..Default::default() };
        let steps = model.steps(&batch).unwrap();
        // unchanged, hard state, truncation, entry 2, entry 3
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[2].last_index(), 1);
        assert_eq!(steps[4].entries, [entries(1..=1, 1), es].concat());
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
