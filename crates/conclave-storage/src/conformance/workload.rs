//! Seeded random batches that are valid for a given [`Model`]: appends, conflicting suffixes,
//! hard states, snapshots inside and beyond the log, and compaction requests.

use super::Model;
use crate::WriteBatch;
use bytes::Bytes;
use conclave_core::{DetRng, Entry, EntryKind, Membership, NodeId, Snapshot, SnapshotMeta};

/// A [`WriteBatch`] that owns its data, so a test can keep it after writing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedBatch {
    pub snapshot: Option<Snapshot>,
    pub hard_state: Option<Bytes>,
    pub entries: Vec<Entry>,
    pub compact_to: Option<u64>,
}

impl OwnedBatch {
    pub fn as_batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            snapshot: self.snapshot.as_ref(),
            hard_state: self.hard_state.as_deref(),
            entries: &self.entries,
            compact_to: self.compact_to,
            discard_log: false,
        }
    }
}

/// Generates batches from a seed; the same seed and models give the same batches.
#[derive(Debug)]
pub struct Workload {
    rng: DetRng,
    term: u64,
    /// The largest entry data generated; raise it to cross record-size boundaries.
    pub max_data_bytes: usize,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        Self { rng: DetRng::new(seed), term: 1, max_data_bytes: 300 }
    }

    /// The generator's RNG, for a test's own choices (when to sync, when to crash).
    pub fn rng(&mut self) -> &mut DetRng {
        &mut self.rng
    }

    /// A random batch that `model` accepts.
    pub fn next_batch(&mut self, model: &Model) -> OwnedBatch {
        let mut batch = OwnedBatch::default();
        let mut snapshot_index = model.snapshot_index();
        let mut last_index = model.last_index();
        if self.rng.chance(0.08) {
            let index = self.rng.range_inclusive(snapshot_index, last_index + 3).max(1);
            let term = model.term_at(index).unwrap_or(self.term);
            batch.snapshot = Some(Snapshot {
                meta: SnapshotMeta {
                    index,
                    term,
                    membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
                },
                data: snapshot_data(index, term),
            });
            snapshot_index = index;
            last_index = last_index.max(index);
        }
        if self.rng.chance(0.2) {
            batch.hard_state = Some(self.bytes(40));
        }
        if self.rng.chance(0.75) {
            let start = if self.rng.chance(0.15) && last_index > 0 {
                // A conflicting suffix, now and then reaching below the snapshot.
                self.term += 1;
                self.rng.range_inclusive(snapshot_index.saturating_sub(2).max(1), last_index)
            } else {
                last_index + 1
            };
            let count = if self.rng.chance(0.1) {
                self.rng.range_inclusive(10, 60)
            } else {
                self.rng.range_inclusive(1, 6)
            };
            for index in start..start + count {
                batch.entries.push(self.entry(index));
            }
        }
        if self.rng.chance(0.1) {
            batch.compact_to = Some(self.rng.range_inclusive(0, last_index + 5));
        }
        batch
    }

    fn entry(&mut self, index: u64) -> Entry {
        let kind = match self.rng.below(10) {
            0 => EntryKind::Noop,
            1 => EntryKind::Membership,
            _ => EntryKind::Command,
        };
        let data =
            if kind == EntryKind::Noop { Bytes::new() } else { self.bytes(self.max_data_bytes) };
        Entry { index, term: self.term, kind, data }
    }

    fn bytes(&mut self, max_len: usize) -> Bytes {
        random_bytes(&mut self.rng, max_len)
    }
}

/// A snapshot's data depends only on where it was taken, as a deterministic state machine's
/// would: two snapshots with the same index and term hold the same bytes.
fn snapshot_data(index: u64, term: u64) -> Bytes {
    let mut rng = DetRng::new(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term);
    random_bytes(&mut rng, 400)
}

fn random_bytes(rng: &mut DetRng, max_len: usize) -> Bytes {
    let len = rng.below(max_len as u64 + 1) as usize;
    (0..len).map(|_| rng.next_u64() as u8).collect()
}
