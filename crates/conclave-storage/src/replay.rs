//! Rebuilds the log from the write-ahead log's records, checking each one as it goes.
//!
//! Records take effect a batch at a time: replay holds a batch's records back until it reads
//! the commit record that closes the batch, then applies them in order. A batch without its
//! commit can only be the end of the last segment — a write the crash cut short before it was
//! synced — and is dropped whole, so recovery never shows part of one `LogStore::write` (the
//! truncation of a suffix without the entries that replace it, say). In a sealed segment, which
//! was synced before the next one began, such a batch is damage and is refused.
//!
//! Replay starts at the oldest segment that still exists. Compaction may have deleted the
//! segments before it, so the entries they held are unknown at first: the segment header says
//! where the log stood (`last_index`), and replay treats `(snapshot, last_index]` as missing.
//! A later snapshot marker must cover that gap by the end, or the log is refused — a deleted
//! segment held entries that no snapshot covers.

use crate::StorageError;
use crate::record::{FORMAT, Record, SnapshotMarker};
use bytes::Bytes;
use conclave_core::Entry;
use std::collections::VecDeque;
use std::ops::Range;
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
    /// The segment being read.
    file: PathBuf,
    sequence: u64,
    /// The records read since the last commit, with their offsets: the batch still open.
    pending: Vec<(u64, Record)>,
    /// Where the last commit record of this segment ends.
    committed_len: u64,
    /// The highest entry index the committed batches of this segment appended.
    max_entry_index: u64,
}

/// How a segment ended, as far as its batches go.
#[derive(Debug)]
pub(crate) struct SegmentEnd {
    /// Bytes up to the end of the segment's last commit record: what recovery keeps.
    pub committed_len: u64,
    /// Whole records after that commit: a batch cut short, dropped.
    pub uncommitted_records: usize,
    /// The highest entry index the segment's committed batches appended (0 if none).
    pub max_entry_index: u64,
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
    /// Whether any segment head was committed, i.e. whether any batch at all took effect.
    pub fn started(&self) -> bool {
        self.started
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.map_or(0, |s| s.index)
    }

    pub fn last_index(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// Starts reading segment `sequence`, stored at `file`.
    pub fn begin_segment(&mut self, file: &Path, sequence: u64) {
        debug_assert!(self.pending.is_empty(), "the previous segment was ended");
        self.file = file.to_path_buf();
        self.sequence = sequence;
        self.committed_len = 0;
        self.max_entry_index = 0;
    }

    /// Takes the record found at `range` of the current segment: holds it back, or — a commit
    /// record — applies the batch it closes.
    pub fn read(&mut self, range: Range<u64>, record: Record) -> Result<(), StorageError> {
        let Record::Commit { records } = record else {
            self.pending.push((range.start, record));
            return Ok(());
        };
        if usize::try_from(records).ok() != Some(self.pending.len()) {
            return Err(StorageError::corrupt(
                &self.file,
                range.start,
                format!(
                    "commit record closes {records} records, but {} follow the previous commit",
                    self.pending.len()
                ),
            ));
        }
        // Swapped out and back so the buffer is reused from batch to batch.
        let mut batch = std::mem::take(&mut self.pending);
        for (offset, record) in batch.drain(..) {
            self.apply(offset, record)?;
        }
        self.pending = batch;
        self.committed_len = range.end;
        Ok(())
    }

    /// Ends the current segment. `last` says whether it is the newest one, the only one whose
    /// final batch may lack its commit (the caller then truncates it to `committed_len`).
    pub fn end_segment(&mut self, last: bool) -> Result<SegmentEnd, StorageError> {
        let uncommitted_records = self.pending.len();
        if let Some(&(offset, _)) = self.pending.first().filter(|_| !last) {
            return Err(StorageError::corrupt(
                &self.file,
                offset,
                format!(
                    "sealed segment ends in a batch of {uncommitted_records} records without \
                     its commit record"
                ),
            ));
        }
        self.pending.clear();
        Ok(SegmentEnd {
            committed_len: self.committed_len,
            uncommitted_records,
            max_entry_index: self.max_entry_index,
        })
    }

    /// Applies the record found at `offset` of the current segment, once its batch committed.
    fn apply(&mut self, offset: u64, record: Record) -> Result<(), StorageError> {
        let file = &self.file;
        let sequence = self.sequence;
        let corrupt = |reason: String| StorageError::corrupt(file, offset, reason);
        let opens_segment = offset == 0;
        if opens_segment != matches!(record, Record::Header(_)) {
            return Err(corrupt(if opens_segment {
                "segment does not start with a segment header".into()
            } else {
                "segment header in the middle of a segment".into()
            }));
        }
        match record {
            Record::Header(header) => {
                if header.format != FORMAT {
                    return Err(corrupt(format!(
                        "segment of format {}; this build reads format {FORMAT}",
                        header.format
                    )));
                }
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
                    self.first_file = Some(file.clone());
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
                self.max_entry_index = self.max_entry_index.max(self.last_index());
            }
            Record::Compact { to } => self.compacted = self.compacted.max(to),
            Record::Commit { .. } => unreachable!("read() applies commits, never holds them"),
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
        Record::Header(SegmentHeader::new(segment, last_index))
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Record {
        Record::Entries(range.map(|i| Entry::noop(i, 1)).collect())
    }

    fn commit(records: u32) -> Record {
        Record::Commit { records }
    }

    fn indexes(replayed: &Replayed) -> Vec<u64> {
        replayed.entries.iter().map(|e| e.index).collect()
    }

    /// Replays `segments` (sequence, records), each record one byte long at its position, and
    /// returns the result with how each segment ended.
    fn replay_segments(
        segments: Vec<(u64, Vec<Record>)>,
    ) -> Result<(Replayed, Vec<SegmentEnd>), StorageError> {
        let mut r = Replay::default();
        let mut ends = Vec::new();
        let count = segments.len();
        for (i, (sequence, records)) in segments.into_iter().enumerate() {
            r.begin_segment(Path::new("wal/x.log"), sequence);
            for (offset, record) in (0u64..).zip(records) {
                r.read(offset..offset + 1, record)?;
            }
            ends.push(r.end_segment(i + 1 == count)?);
        }
        Ok((r.finish(Path::new("wal"))?, ends))
    }

    fn replay(segments: Vec<(u64, Vec<Record>)>) -> Result<Replayed, StorageError> {
        replay_segments(segments).map(|(replayed, _)| replayed)
    }

    #[test]
    fn truncate_and_append_replace_a_suffix() {
        let out = replay(vec![(
            1,
            vec![
                header(1, 0),
                commit(1),
                entries(1..=5),
                commit(1),
                Record::Truncate { from: 3 },
                entries(3..=4),
                commit(2),
            ],
        )])
        .unwrap();
        assert_eq!(indexes(&out), vec![1, 2, 3, 4]);
    }

    /// Reference: Paxos Made Simple §2.2 — an acceptor must not forget what it accepted, so a
    /// rewrite cut short must leave the old suffix in place rather than only its truncation.
    #[test]
    fn a_batch_without_its_commit_is_dropped_whole() {
        let (out, ends) = replay_segments(vec![(
            1,
            vec![
                header(1, 0),
                commit(1),
                Record::HardState(Bytes::from_static(b"ballot 1")),
                entries(1..=10),
                commit(2),
                Record::HardState(Bytes::from_static(b"ballot 2")),
                Record::Truncate { from: 5 },
                entries(5..=7),
            ],
        )])
        .unwrap();
        assert_eq!(indexes(&out), (1..=10).collect::<Vec<_>>());
        assert_eq!(out.hard_state.as_deref(), Some(&b"ballot 1"[..]));
        assert_eq!((ends[0].committed_len, ends[0].uncommitted_records), (5, 3));
        assert_eq!(ends[0].max_entry_index, 10);
    }

    #[test]
    fn an_uncommitted_head_leaves_the_segment_empty() {
        let (_, ends) = replay_segments(vec![
            (1, vec![header(1, 0), commit(1), entries(1..=2), commit(1)]),
            (2, vec![header(2, 2), Record::HardState(Bytes::new())]),
        ])
        .unwrap();
        assert_eq!((ends[1].committed_len, ends[1].uncommitted_records), (0, 2));
    }

    #[test]
    fn a_sealed_segment_ending_without_a_commit_is_refused() {
        let err = replay(vec![
            (1, vec![header(1, 0), commit(1), entries(1..=2)]),
            (2, vec![header(2, 0), commit(1)]),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("without its commit record"), "{err}");
    }

    #[test]
    fn a_commit_that_miscounts_its_batch_is_refused() {
        let err = replay(vec![(1, vec![header(1, 0), commit(1), entries(1..=2), commit(2)])])
            .unwrap_err();
        assert!(err.to_string().contains("closes 2 records, but 1"), "{err}");
    }

    #[test]
    fn another_format_is_refused() {
        let old = Record::Header(SegmentHeader { format: 1, segment: 1, last_index: 0 });
        let err = replay(vec![(1, vec![old, commit(1)])]).unwrap_err();
        assert!(err.to_string().contains("format 1"), "{err}");
    }

    #[test]
    fn a_tail_of_segments_replays_when_a_snapshot_covers_the_deleted_ones() {
        let out = replay(vec![
            (
                4,
                vec![
                    header(4, 10),
                    commit(1),
                    Record::Snapshot(SnapshotMarker { index: 6, term: 1 }),
                    entries(11..=12),
                    commit(2),
                ],
            ),
            (
                5,
                vec![
                    header(5, 12),
                    Record::Snapshot(SnapshotMarker { index: 6, term: 1 }),
                    commit(2),
                    Record::Snapshot(SnapshotMarker { index: 11, term: 1 }),
                    commit(1),
                ],
            ),
        ])
        .unwrap();
        assert_eq!(indexes(&out), vec![12]);
    }

    #[test]
    fn entries_lost_with_a_deleted_segment_are_refused() {
        let err = replay(vec![(
            4,
            vec![
                header(4, 10),
                commit(1),
                Record::Snapshot(SnapshotMarker { index: 6, term: 1 }),
                entries(11..=12),
                commit(2),
            ],
        )])
        .unwrap_err();
        assert!(err.to_string().contains("entries 7..=10"), "{err}");
    }

    #[test]
    fn gaps_and_misplaced_headers_are_refused() {
        let committed = |mut records: Vec<Record>| {
            let n = records.len() as u32;
            records.push(commit(n));
            records
        };
        assert!(replay(vec![(1, committed(vec![header(1, 0), entries(2..=3)]))]).is_err());
        assert!(replay(vec![(1, committed(vec![entries(1..=3)]))]).is_err());
        assert!(replay(vec![(2, committed(vec![header(3, 0)]))]).is_err());
        assert!(
            replay(vec![
                (1, committed(vec![header(1, 0), entries(1..=3)])),
                (2, committed(vec![header(2, 2)])),
            ])
            .is_err()
        );
    }
}
