//! The durable [`LogStore`]: a segmented write-ahead log plus snapshot files.
//!
//! Layout under the store's directory:
//!
//! ```text
//! wal/0000000000000001.log   segments, numbered from 1; the last one is active
//! wal/0000000000000002.log
//! snap/<index>-<term>.snap   snapshots, written atomically; the newest `snapshots_to_keep`
//! ```
//!
//! Every segment opens with a segment header, then the hard state, snapshot marker and
//! compaction bound current when it was created, so older segments are never needed for them.
//! A batch becomes records appended to the active segment: snapshot marker, hard state,
//! truncation, entries, compaction bound — the batch's field order. `write` hands them to the
//! kernel; `sync` is one `fdatasync` of the active segment, however many writes came before it
//! (group commit).
//!
//! A segment is sealed once it has reached `segment_size_bytes` and everything in it is synced:
//! the first write after such a sync opens the next segment. So only the active segment ever
//! holds unsynced bytes, and only it can end in a torn record. Sealed segments are deleted, oldest
//! first, once every entry they hold is at or below both the current snapshot and the highest
//! `compact_to` — and only after a sync has made the snapshot marker that covers them durable.

use crate::plan::{Bounds, Plan};
use crate::record::{Encoder, Record, SegmentHeader, SnapshotMarker};
use crate::replay::Replay;
use crate::snapshot_file::{self, EncodedSnapshot};
use crate::{FileStoreOptions, LogStore, StorageError, WriteBatch, fsutil, segment};
use bytes::Bytes;
use conclave_core::{Entry, Recovered};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An upper bound on the postcard overhead of one entry around its data: varints for index,
/// term and data length, and the kind.
const ENTRY_OVERHEAD_BYTES: u64 = 32;
/// An upper bound on the length prefix of an entries record.
const ENTRIES_RECORD_OVERHEAD_BYTES: u64 = 10;

/// A [`LogStore`] on the local filesystem. See the [module documentation](self) for the layout.
#[derive(Debug)]
pub struct FileStore {
    options: FileStoreOptions,
    encoder: Encoder,
    wal_dir: PathBuf,
    snap_dir: PathBuf,
    /// Oldest first; the last one is the active segment.
    segments: Vec<SegmentInfo>,
    active: File,
    active_len: u64,
    /// The active segment holds bytes not yet synced.
    dirty: bool,
    /// A segment was created since the last sync, so the directory needs an fsync too.
    wal_dir_dirty: bool,
    bounds: Bounds,
    hard_state: Option<Bytes>,
    snapshot: Option<SnapshotMarker>,
    compacted: u64,
    /// What the last successful sync made durable; deletions never go beyond it.
    durable_snapshot: Option<SnapshotMarker>,
    durable_compacted: u64,
    cleanup_due: bool,
    /// Set by the first fatal error; every later call fails with it.
    failed: Option<String>,
    /// Reused for encoding records, so a write does not allocate.
    buf: Vec<u8>,
}

#[derive(Debug)]
struct SegmentInfo {
    sequence: u64,
    path: PathBuf,
    /// The highest entry index ever written into this segment (0 if none).
    max_entry_index: u64,
}

impl FileStore {
    /// Opens the store in `dir` (creating it if needed) and recovers what was durable.
    ///
    /// A torn tail of the last segment is truncated away and logged. Any other damage —
    /// a bad record followed by valid ones, a bad record in a sealed segment, a missing segment
    /// or snapshot — fails with [`StorageError::Corrupt`] naming the file and offset.
    pub fn open(
        dir: &Path,
        options: FileStoreOptions,
    ) -> Result<(FileStore, Recovered), StorageError> {
        options.validate()?;
        let no_fsync = options.unsafe_no_fsync;
        let wal_dir = dir.join("wal");
        let snap_dir = dir.join("snap");
        fsutil::ensure_dir(dir, no_fsync)?;
        fsutil::ensure_dir(&wal_dir, no_fsync)?;
        fsutil::ensure_dir(&snap_dir, no_fsync)?;
        let encoder = Encoder { max_record_bytes: options.max_record_bytes };

        let listed = segment::list(&wal_dir)?;
        let mut replay = Replay::default();
        let mut segments = Vec::with_capacity(listed.len().max(1));
        let mut active = None;
        for (i, (sequence, path)) in listed.iter().enumerate() {
            let last = i + 1 == listed.len();
            let (info, file, valid_len) =
                open_segment(&mut replay, *sequence, path, last, &options)?;
            segments.push(info);
            active = file.map(|f| (f, valid_len));
        }
        if !replay.started() {
            refuse_lost_history(&listed, &snap_dir)?;
        }
        let replayed = replay.finish(&wal_dir)?;
        let snapshot = match replayed.snapshot {
            Some(marker) => {
                Some(snapshot_file::read(&snap_dir, marker, options.max_snapshot_bytes)?)
            }
            None => None,
        };

        let snapshot_index = replayed.snapshot.map_or(0, |m| m.index);
        let bounds =
            Bounds { snapshot_index, last_index: snapshot_index + replayed.entries.len() as u64 };
        let (active, active_len, fresh) = match active {
            Some((file, len)) if len > 0 => (file, len, false),
            Some((file, _)) => (file, 0, true),
            None => {
                let path = wal_dir.join(segment::file_name(1));
                segments.push(SegmentInfo { sequence: 1, path: path.clone(), max_entry_index: 0 });
                (create_segment(&path)?, 0, true)
            }
        };
        let mut store = FileStore {
            encoder,
            wal_dir,
            snap_dir,
            segments,
            active,
            active_len,
            // The recovered bytes may still sit only in the page cache (after a process crash
            // the kernel kept them); make them durable before anyone acts on them.
            dirty: true,
            wal_dir_dirty: true,
            bounds,
            hard_state: replayed.hard_state.clone(),
            snapshot: replayed.snapshot,
            compacted: replayed.compacted,
            durable_snapshot: replayed.snapshot,
            durable_compacted: replayed.compacted,
            cleanup_due: true,
            failed: None,
            buf: Vec::new(),
            options,
        };
        if fresh {
            // An empty active segment (a new store, or one whose only records were torn) gets
            // its head before anything else goes in.
            let mut head = Vec::new();
            store.encode_head(store.segments.last().expect("a segment").sequence, &mut head)?;
            store.append(&head)?;
        }
        store.sync()?;

        let recovered =
            Recovered { hard_state: replayed.hard_state, snapshot, entries: replayed.entries };
        Ok((store, recovered))
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(reason) => Err(StorageError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records a fatal error so that every later call refuses to run.
    fn fail(&mut self, error: StorageError) -> StorageError {
        if error.is_fatal() && self.failed.is_none() {
            self.failed = Some(error.to_string());
        }
        error
    }

    /// The records that open a segment: its header and the state older segments would
    /// otherwise be needed for.
    fn encode_head(&self, sequence: u64, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        let header = SegmentHeader { segment: sequence, last_index: self.bounds.last_index };
        self.encoder.header(buf, &header)?;
        if let Some(hard_state) = &self.hard_state {
            self.encoder.hard_state(buf, hard_state)?;
        }
        if let Some(marker) = &self.snapshot {
            self.encoder.snapshot(buf, marker)?;
        }
        if self.compacted > 0 {
            self.encoder.compact(buf, self.compacted)?;
        }
        Ok(())
    }

    /// Encodes a checked batch as records, in field order. Touches nothing on failure.
    fn encode_plan(
        &self,
        plan: &Plan<'_>,
        marker: Option<SnapshotMarker>,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        if let Some(marker) = &marker {
            self.encoder.snapshot(buf, marker)?;
        }
        if let Some(hard_state) = plan.hard_state {
            self.encoder.hard_state(buf, hard_state)?;
        }
        if let Some(from) = plan.truncate_from {
            self.encoder.truncate(buf, from)?;
        }
        // Split entries into records that stay under the limit; one entry above it is refused.
        let limit = self.options.max_record_bytes;
        let mut start = 0;
        let mut estimate = ENTRIES_RECORD_OVERHEAD_BYTES;
        for (i, entry) in plan.entries.iter().enumerate() {
            let size = entry.data.len() as u64 + ENTRY_OVERHEAD_BYTES;
            if i > start && estimate + size > limit {
                self.encoder.entries(buf, &plan.entries[start..i])?;
                start = i;
                estimate = ENTRIES_RECORD_OVERHEAD_BYTES;
            }
            estimate += size;
        }
        if start < plan.entries.len() {
            self.encoder.entries(buf, &plan.entries[start..])?;
        }
        if let Some(to) = plan.compact_to.filter(|&to| to > self.compacted) {
            self.encoder.compact(buf, to)?;
        }
        Ok(())
    }

    /// Carries out a checked, encoded batch. Any error here leaves the disk in an unknown state.
    fn persist(
        &mut self,
        plan: &Plan<'_>,
        snapshot: Option<EncodedSnapshot>,
        records: &[u8],
    ) -> Result<(), StorageError> {
        if self.active_len >= self.options.segment_size_bytes && !self.dirty {
            self.roll()?;
        }
        // The snapshot file is durable before the marker that names it is even written.
        if let Some(encoded) = &snapshot {
            let named = Some(encoded.marker);
            let in_use = named == self.snapshot || named == self.durable_snapshot;
            if !(in_use && snapshot_file::is_written(&self.snap_dir, encoded)?) {
                if in_use {
                    // A marker already names this file. Replacing the file first would let a
                    // crash pair that marker with the new bytes while losing the writes staged
                    // in between; syncing them first keeps what a crash leaves a prefix.
                    self.sync_inner()?;
                }
                snapshot_file::write(&self.snap_dir, encoded, self.options.unsafe_no_fsync)?;
            }
        }
        self.append(records)?;

        self.bounds.apply(plan);
        if let Some(hard_state) = plan.hard_state {
            self.hard_state = Some(Bytes::copy_from_slice(hard_state));
        }
        if let Some(encoded) = snapshot {
            self.snapshot = Some(encoded.marker);
            self.cleanup_due = true;
        }
        if let Some(to) = plan.compact_to.filter(|&to| to > self.compacted) {
            self.compacted = to;
            self.cleanup_due = true;
        }
        if let Some(last) = plan.entries.last() {
            let active = self.segments.last_mut().expect("an active segment");
            active.max_entry_index = active.max_entry_index.max(last.index);
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let path = &self.segments.last().expect("an active segment").path;
        self.active.write_all(bytes).map_err(|e| StorageError::io("write", path, e))?;
        self.active_len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Seals the active segment (already synced) and opens the next one with a fresh head.
    fn roll(&mut self) -> Result<(), StorageError> {
        let sequence = self.segments.last().expect("an active segment").sequence + 1;
        let mut head = Vec::new();
        self.encode_head(sequence, &mut head)?;
        let path = self.wal_dir.join(segment::file_name(sequence));
        self.active = create_segment(&path)?;
        self.active_len = 0;
        self.wal_dir_dirty = true;
        self.segments.push(SegmentInfo { sequence, path, max_entry_index: 0 });
        self.append(&head)
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        let no_fsync = self.options.unsafe_no_fsync;
        if self.dirty {
            if !no_fsync {
                let path = &self.segments.last().expect("an active segment").path;
                self.active.sync_data().map_err(|e| StorageError::io("fdatasync", path, e))?;
            }
            self.dirty = false;
        }
        if self.wal_dir_dirty {
            fsutil::sync_dir(&self.wal_dir, no_fsync)?;
            self.wal_dir_dirty = false;
        }
        self.durable_snapshot = self.snapshot;
        self.durable_compacted = self.compacted;
        if self.cleanup_due {
            self.cleanup()?;
            self.cleanup_due = false;
        }
        Ok(())
    }

    /// Deletes sealed segments that hold nothing a restart needs, and surplus snapshot files.
    fn cleanup(&mut self) -> Result<(), StorageError> {
        let no_fsync = self.options.unsafe_no_fsync;
        let covered = self.durable_compacted.min(self.durable_snapshot.map_or(0, |m| m.index));
        let sealed = self.segments.len() - 1;
        let doomed =
            self.segments[..sealed].iter().take_while(|s| s.max_entry_index <= covered).count();
        // Oldest first, so a crash halfway still leaves a run of segments without gaps.
        for segment in self.segments.drain(..doomed) {
            fsutil::remove_file(&segment.path)?;
        }
        if doomed > 0 {
            fsutil::sync_dir(&self.wal_dir, no_fsync)?;
        }
        let keep = self.options.snapshots_to_keep;
        if snapshot_file::prune(&self.snap_dir, self.durable_snapshot, keep)? {
            fsutil::sync_dir(&self.snap_dir, no_fsync)?;
        }
        Ok(())
    }
}

impl LogStore for FileStore {
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        self.check_usable()?;
        let plan = self.bounds.plan(batch)?;
        let snapshot = match plan.snapshot {
            Some(s) => Some(snapshot_file::encode(s, self.options.max_snapshot_bytes)?),
            None => None,
        };
        let mut records = std::mem::take(&mut self.buf);
        records.clear();
        let encoded = self.encode_plan(&plan, snapshot.as_ref().map(|s| s.marker), &mut records);
        let result = match encoded {
            // Refused before anything was written: the store is unchanged and still usable.
            Err(error) => Err(error),
            Ok(()) => self.persist(&plan, snapshot, &records).map_err(|e| self.fail(e)),
        };
        self.buf = records;
        result
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        self.sync_inner().map_err(|e| self.fail(e))
    }

    fn last_index(&self) -> u64 {
        self.bounds.last_index
    }
}

/// No valid record survives. That is a new store (or one whose very first open crashed before
/// its first segment's head was synced) — unless something shows it had a history: a later
/// segment than the first (its head was synced before older segments were deleted), or a
/// snapshot file. Then the log was lost or damaged, and starting empty would drop it silently.
fn refuse_lost_history(listed: &[(u64, PathBuf)], snap_dir: &Path) -> Result<(), StorageError> {
    if let Some((sequence, path)) = listed.last().filter(|(sequence, _)| *sequence != 1) {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("segment {sequence} has no valid record and older segments are gone"),
        ));
    }
    if let Some((_, path)) = snapshot_file::list(snap_dir)?.0.first() {
        return Err(StorageError::corrupt(
            path,
            0,
            "a snapshot exists but the write-ahead log has no valid record",
        ));
    }
    Ok(())
}

fn create_segment(path: &Path) -> Result<File, StorageError> {
    fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|e| StorageError::io("create", path, e))
}

/// Replays the segment at `path` into `replay`. For the last segment, also truncates a torn
/// tail and returns the file opened for appending, with its valid length.
fn open_segment(
    replay: &mut Replay,
    sequence: u64,
    path: &Path,
    last: bool,
    options: &FileStoreOptions,
) -> Result<(SegmentInfo, Option<File>, u64), StorageError> {
    let bytes = fs::read(path).map_err(|e| StorageError::io("read", path, e))?;
    let mut max_entry_index = 0;
    let end = segment::scan(path, &bytes, options.max_record_bytes, last, |offset, record| {
        if let Record::Entries(entries) = &record {
            max_entry_index = max_entry_index.max(entries.last().map_or(0, |e: &Entry| e.index));
        }
        replay.apply(path, sequence, offset, offset == 0, record)
    })?;
    if !last && end.valid_len == 0 {
        return Err(StorageError::corrupt(path, 0, "sealed segment is empty"));
    }
    let info = SegmentInfo { sequence, path: path.to_path_buf(), max_entry_index };
    if !last {
        return Ok((info, None, end.valid_len));
    }
    let file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    if let Some(reason) = end.torn {
        tracing::warn!(
            file = %path.display(),
            offset = end.valid_len,
            dropped_bytes = bytes.len() as u64 - end.valid_len,
            %reason,
            "recovered from a torn write-ahead log tail by truncating it"
        );
        file.set_len(end.valid_len).map_err(|e| StorageError::io("truncate", path, e))?;
        if !options.unsafe_no_fsync {
            file.sync_data().map_err(|e| StorageError::io("fdatasync", path, e))?;
        }
    }
    Ok((info, Some(file), end.valid_len))
}
