//! Rebuilds the log from the write-ahead log's records, checking each one as it goes.
//!
//! Replay starts at the oldest segment that still exists. Compaction may have deleted the
//! segments before it, so the entries they held are unknown at first: the segment header says
//! where the log stood (`last_index`), and replay treats `(snapshot, last_index]` as missing.
//! A later snapshot marker must cover that gap by the end, or the log is refused — a deleted
//! segment held entries that no snapshot covers.

use crate::StorageError;
use crate::record::{Record, SnapshotMarker};
use bytes::Bytes;
use conclave_core::Entry;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The log as replayed so far.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub hard_state: Option<Bytes>,
    pub snapshot: Option<SnapshotMarker>,
    /// The highest index a compact record allowed to be discarded.
    pub compacted: u64,
    /// The index just before `entries[0]`; above the snapshot's index while entries in deleted
    /// segments are still unaccounted for.
    offset: u64,
    entries: VecDeque<Entry>,
    started: bool,
    /// Where the first still-missing entry was expected, to name it in an error.
    first_file: Option<PathBuf>,
}

/// What replay recovered.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub hard_state: Option<Bytes>,
    pub snapshot: Option<SnapshotMarker>,
    pub compacted: u64,
    pub entries: Vec<Entry>,
}

impl Replay {
    /// Whether any segment header was seen, i.e. whether any record at all was valid.
    pub fn started(&self) -> bool {
        self.started
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.map_or(0, |s| s.index)
    }

    pub fn last_index(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// Applies the record found at `offset` of `file`, segment `sequence`. `opens_segment`
    /// says whether it is the segment's first record.
    pub fn apply(
        &mut self,
        file: &Path,
        sequence: u64,
        offset: u64,
        opens_segment: bool,
        record: Record,
    ) -> Result<(), StorageError> {
        let corrupt = |reason: String| StorageError::corrupt(file, offset, reason);
        if opens_segment != matches!(record, Record::Header(_)) {
            return Err(corrupt(if opens_segment {
                "segment does not start with a segment header".into()
            } else {
                "segment header in the middle of a segment".into()
            }));
        }
        match record {
            Record::Header(header) => {
                if header.segment != sequence {
                    return Err(corrupt(format!(
                        "segment header says segment {}, the file name says {sequence}",
                        header.segment
                    )));
                }
                if !self.started {
                    if sequence == 1 && header.last_index != 0 {
                        return Err(corrupt(
                            "the first segment does not start an empty log".into(),
                        ));
                    }
                    self.started = true;
                    self.offset = header.last_index;
                    self.first_file = Some(file.to_path_buf());
                } else if header.last_index != self.last_index() {
                    return Err(corrupt(format!(
                        "segment header says the log ended at {}, replay reached {}",
                        header.last_index,
                        self.last_index()
                    )));
                }
            }
            Record::HardState(hard_state) => self.hard_state = Some(hard_state),
            Record::Snapshot(marker) => {
                if marker.index < self.snapshot_index() {
                    return Err(corrupt(format!(
                        "snapshot marker {} goes back from {}",
                        marker.index,
                        self.snapshot_index()
                    )));
                }
                if marker.index >= self.last_index() {
                    self.entries.clear();
                    self.offset = marker.index;
                } else if marker.index > self.offset {
                    self.entries.drain(..(marker.index - self.offset) as usize);
                    self.offset = marker.index;
                }
                self.snapshot = Some(marker);
            }
            Record::Truncate { from } => {
                if from <= self.snapshot_index() || from > self.last_index() {
                    return Err(corrupt(format!(
                        "truncation from {from} outside the log ({}, {}]",
                        self.snapshot_index(),
                        self.last_index()
                    )));
                }
                if from <= self.offset {
                    self.entries.clear();
                    self.offset = from - 1;
                } else {
                    self.entries.truncate((from - self.offset - 1) as usize);
                }
            }
            Record::Entries(entries) => {
                if entries.is_empty() {
                    return Err(corrupt("empty entries record".into()));
                }
                for entry in entries {
                    let expected = self.last_index() + 1;
                    if entry.index != expected {
                        return Err(corrupt(format!(
                            "entry {} where entry {expected} should follow",
                            entry.index
                        )));
                    }
                    self.entries.push_back(entry);
                }
            }
            Record::Compact { to } => self.compacted = self.compacted.max(to),
        }
        Ok(())
    }

    /// Checks that nothing is missing and hands over the result.
    pub fn finish(self, wal_dir: &Path) -> Result<Replayed, StorageError> {
        if self.offset > self.snapshot_index() {
            let reason = format!(
                "entries {}..={} were in deleted segments, but no snapshot covers them",
                self.snapshot_index() + 1,
                self.offset
            );
            let file = self.first_file.unwrap_or_else(|| wal_dir.to_path_buf());
            return Err(StorageError::corrupt(file, 0, reason));
        }
        Ok(Replayed {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            compacted: self.compacted,
            entries: self.entries.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SegmentHeader;

    fn header(segment: u64, last_index: u64) -> Record {
        Record::Header(SegmentHeader { segment, last_index })
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Record {
        Record::Entries(range.map(|i| Entry::noop(i, 1)).collect())
    }

    fn replay(records: Vec<(u64, Record)>) -> Result<Replayed, StorageError> {
        let mut r = Replay::default();
        let mut last_segment = 0;
        for (offset, (segment, record)) in records.into_iter().enumerate() {
            let opens = segment != last_segment;
            last_segment = segment;
            r.apply(Path::new("wal/x.log"), segment, offset as u64, opens, record)?;
        }
        r.finish(Path::new("wal"))
    }

    #[test]
    fn truncate_and_append_replace_a_suffix() {
        let out = replay(vec![
            (1, header(1, 0)),
            (1, entries(1..=5)),
            (1, Record::Truncate { from: 3 }),
            (1, entries(3..=4)),
        ])
        .unwrap();
        assert_eq!(out.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_tail_of_segments_replays_when_a_snapshot_covers_the_deleted_ones() {
        let out = replay(vec![
            (4, header(4, 10)),
            (4, Record::Snapshot(SnapshotMarker { index: 6, term: 1 })),
            (4, entries(11..=12)),
            (5, header(5, 12)),
            (5, Record::Snapshot(SnapshotMarker { index: 11, term: 1 })),
        ])
        .unwrap();
        assert_eq!(out.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![12]);
    }

    #[test]
    fn entries_lost_with_a_deleted_segment_are_refused() {
        let err = replay(vec![
            (4, header(4, 10)),
            (4, Record::Snapshot(SnapshotMarker { index: 6, term: 1 })),
            (4, entries(11..=12)),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("entries 7..=10"), "{err}");
    }

    #[test]
    fn gaps_and_misplaced_headers_are_refused() {
        assert!(replay(vec![(1, header(1, 0)), (1, entries(2..=3))]).is_err());
        assert!(replay(vec![(1, entries(1..=3))]).is_err());
        assert!(replay(vec![(2, header(3, 0))]).is_err());
        assert!(replay(vec![(1, header(1, 0)), (1, entries(1..=3)), (2, header(2, 2))]).is_err());
    }
}
