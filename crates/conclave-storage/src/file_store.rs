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
//! A batch becomes records appended to the active segment: snapshot marker, hard state,
//! truncation, entries (split over as many records as the size limit needs), compaction bound —
//! the batch's field order — and last a commit record. `write` hands them to the kernel in one
//! go; `sync` is one `fdatasync` of the active segment, however many writes came before it
//! (group commit). Recovery applies a batch only when it reads the batch's commit record, and
//! cuts the last segment back to its last commit, so a write is all-or-nothing: a crash cannot
//! keep the truncation of a suffix and lose the entries that were to replace it.
//!
//! Every segment opens with a head — a segment header, then the hard state, snapshot marker and
//! compaction bound current when it was created — so older segments are never needed for them.
//! The head is a batch of its own, with its own commit record.
//!
//! A segment is preallocated to `segment_size_bytes` when it is created and written in place,
//! so appends stay within the file's size and an `fdatasync` has no size change to commit; the
//! store also writes zeros a chunk ahead of its data, so the blocks an append lands in are
//! already written ones. The rest reads as zeros, which recovery takes for the end of the log
//! (a zero header is never a valid record) and which a segment loses when it is sealed.
//!
//! A segment is sealed once it has reached `segment_size_bytes` and everything in it is synced:
//! the first write after such a sync opens the next segment, writes its head and then the
//! write's batch. Three things follow, and recovery relies on each:
//!
//! - A batch never spans two segments, so every sealed segment ends with a commit record.
//! - Only the active segment ever holds unsynced bytes, so only it can end in a torn record or
//!   in a batch without its commit.
//! - A head restates only synced state (a segment rolls only when nothing is staged), so it
//!   never carries part of an unsynced write: whatever a crash keeps of the new segment, its
//!   head agrees with the sealed segments before it.
//!
//! Sealed segments are deleted, oldest first, once every entry they hold is at or below both the
//! current snapshot and the highest `compact_to` — and only after a sync has made the snapshot
//! marker that covers them durable.

use crate::janitor::Janitor;
use crate::plan::{Bounds, Plan};
use crate::record::{Encoder, SegmentHeader, SnapshotMarker};
use crate::replay::Replay;
use crate::snapshot_file::{self, EncodedSnapshot};
use crate::{FileStoreOptions, LogStore, StorageError, WriteBatch, fsutil, segment};
use bytes::Bytes;
use conclave_core::{Recovered, Snapshot};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An upper bound on the postcard overhead of one entry around its data: varints for index,
/// term and data length, and the kind.
const ENTRY_OVERHEAD_BYTES: u64 = 32;
/// An upper bound on the length prefix of an entries record.
const ENTRIES_RECORD_OVERHEAD_BYTES: u64 = 10;
/// How far past the data [`FileStore::zero_ahead`] writes zeros, each time the data reaches
/// the zeros written before: one sync in this many bytes of log carries the extra write.
const ZERO_AHEAD_BYTES: u64 = 1024 * 1024;

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
    /// The active segment's bytes below this offset have been written (zeros ahead of the
    /// data, or data), so the filesystem holds them as written blocks. See [`ZERO_AHEAD_BYTES`].
    zeroed_to: u64,
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
    /// Snapshot files a [`SnapshotWriter`] is writing or has written, not yet named by a marker.
    prewritten: Arc<Mutex<Prewritten>>,
    /// Unlinks discarded segments and snapshot files off this store's thread.
    janitor: Janitor,
}

/// What the [`SnapshotWriter`]s of a store are doing, shared with it.
#[derive(Debug, Default)]
struct Prewritten {
    /// Files being written or written and not yet installed: cleanup spares them (and their
    /// temporary files), though no marker names them yet.
    spared: BTreeSet<SnapshotMarker>,
    /// Files written and synced, ready to be installed by a marker alone.
    ready: BTreeSet<SnapshotMarker>,
}

/// Writes a snapshot's file — encoded, synced, renamed into place, the directory synced — on
/// whatever thread calls it, so that a large snapshot does not stall the thread that owns the
/// [`FileStore`]. The snapshot becomes current only when a later [`LogStore::write`] carries it;
/// that write then only appends the marker. A file written but never installed (a crash in
/// between) is named by no marker and ignored, as any surplus snapshot file.
#[derive(Clone, Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    max_bytes: u64,
    no_fsync: bool,
    /// `FileStoreOptions::snapshot_write_bytes_per_sec` (0: at once).
    pace: u64,
    prewritten: Arc<Mutex<Prewritten>>,
}

impl SnapshotWriter {
    /// Writes `snapshot`'s file durably. A file already present under its name (the same index
    /// and term) is left alone: the installing write then checks and writes it as usual.
    pub fn write(&self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let marker = SnapshotMarker { index: snapshot.meta.index, term: snapshot.meta.term };
        let path = self.dir.join(snapshot_file::file_name(marker));
        {
            let mut shared = self.prewritten.lock().unwrap_or_else(|p| p.into_inner());
            if shared.spared.contains(&marker)
                || path.try_exists().map_err(|e| StorageError::io("stat", &path, e))?
            {
                return Ok(());
            }
            // Spared before the temporary file exists, so cleanup never removes it.
            shared.spared.insert(marker);
        }
        let written = snapshot_file::encode(snapshot, self.max_bytes).and_then(|encoded| {
            snapshot_file::write(&self.dir, &encoded, self.no_fsync, self.pace)
        });
        let mut shared = self.prewritten.lock().unwrap_or_else(|p| p.into_inner());
        match written {
            Ok(()) => {
                shared.ready.insert(marker);
                Ok(())
            }
            Err(error) => {
                shared.spared.remove(&marker);
                Err(error)
            }
        }
    }
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
    /// A torn tail of the last segment — a damaged last record, or whole records of a batch
    /// whose commit record never made it — is truncated back to the last commit and logged.
    /// Any other damage — a bad record followed by valid ones, a bad record or a batch without
    /// its commit in a sealed segment, a missing segment or snapshot — fails with
    /// [`StorageError::Corrupt`] naming the file and offset.
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
        Janitor::sweep(&wal_dir)?;
        Janitor::sweep(&snap_dir)?;
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
                (create_segment(&path, &options)?, 0, true)
            }
        };
        let mut store = FileStore {
            encoder,
            wal_dir,
            snap_dir,
            segments,
            active,
            active_len,
            zeroed_to: active_len,
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
            prewritten: Arc::default(),
            janitor: Janitor::start(),
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

    /// The batch that opens a segment: its header and the state older segments would otherwise
    /// be needed for, committed.
    fn encode_head(&self, sequence: u64, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        let mut records = 0;
        let mut counted = |result: Result<(), StorageError>| result.map(|()| records += 1);
        counted(self.encoder.header(buf, &SegmentHeader::new(sequence, self.bounds.last_index)))?;
        if let Some(hard_state) = &self.hard_state {
            counted(self.encoder.hard_state(buf, hard_state))?;
        }
        if let Some(marker) = &self.snapshot {
            counted(self.encoder.snapshot(buf, marker))?;
        }
        if self.compacted > 0 {
            counted(self.encoder.compact(buf, self.compacted))?;
        }
        self.encoder.commit(buf, records)
    }

    /// Encodes a checked batch as records, in field order, closed by a commit record (none at
    /// all for a batch that changes nothing). On failure the caller discards `buf`.
    fn encode_plan(
        &self,
        plan: &Plan<'_>,
        marker: Option<SnapshotMarker>,
        buf: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let mut records = 0;
        let mut counted = |result: Result<(), StorageError>| result.map(|()| records += 1);
        if let Some(marker) = &marker {
            counted(self.encoder.snapshot(buf, marker))?;
        }
        if let Some(hard_state) = plan.hard_state {
            counted(self.encoder.hard_state(buf, hard_state))?;
        }
        if let Some(from) = plan.truncate_from {
            counted(self.encoder.truncate(buf, from))?;
        }
        // Split entries into records that stay under the limit; one entry above it is refused.
        let limit = self.options.max_record_bytes;
        let mut start = 0;
        let mut estimate = ENTRIES_RECORD_OVERHEAD_BYTES;
        for (i, entry) in plan.entries.iter().enumerate() {
            let size = entry.data.len() as u64 + ENTRY_OVERHEAD_BYTES;
            if i > start && estimate + size > limit {
                counted(self.encoder.entries(buf, &plan.entries[start..i]))?;
                start = i;
                estimate = ENTRIES_RECORD_OVERHEAD_BYTES;
            }
            estimate += size;
        }
        if start < plan.entries.len() {
            counted(self.encoder.entries(buf, &plan.entries[start..]))?;
        }
        if let Some(to) = plan.compact_to.filter(|&to| to > self.compacted) {
            counted(self.encoder.compact(buf, to))?;
        }
        if records == 0 {
            return Ok(());
        }
        self.encoder.commit(buf, records)
    }

    /// Carries out a checked, encoded batch. Any error here leaves the disk in an unknown state.
    fn persist(
        &mut self,
        plan: &Plan<'_>,
        snapshot: Option<EncodedSnapshot>,
        records: &[u8],
    ) -> Result<(), StorageError> {
        // Only between synced writes: the new head restates the in-memory state, which must
        // be durable already (see the module documentation).
        if self.active_len >= self.options.segment_size_bytes && !self.dirty {
            self.roll()?;
        }
        // The snapshot file is durable before the marker that names it is even written.
        if let Some(encoded) = snapshot.as_ref().filter(|e| !e.is_prewritten()) {
            let named = Some(encoded.marker);
            let in_use = named == self.snapshot || named == self.durable_snapshot;
            if !(in_use && snapshot_file::is_written(&self.snap_dir, encoded)?) {
                if in_use {
                    // A marker already names this file. Replacing the file first would let a
                    // crash pair that marker with the new bytes while losing the writes staged
                    // in between; syncing them first keeps what a crash leaves a prefix of
                    // whole writes. This batch may still lose its other fields yet keep the new
                    // bytes: both files hold the state at the same index and term.
                    self.sync_inner()?;
                }
                // On the node's thread: a peer's snapshot is written at once.
                snapshot_file::write(&self.snap_dir, encoded, self.options.unsafe_no_fsync, 0)?;
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
        self.active
            .write_all_at(bytes, self.active_len)
            .map_err(|e| StorageError::io("write", path, e))?;
        self.active_len += bytes.len() as u64;
        self.dirty = true;
        if self.options.preallocate && self.active_len > self.zeroed_to {
            self.zero_ahead()?;
        }
        Ok(())
    }

    /// Writes zeros over the next [`ZERO_AHEAD_BYTES`] of the preallocated segment, past the
    /// data. `fallocate` reserves blocks but leaves them *unwritten* in the filesystem's
    /// extent map; the first `fdatasync` after data lands in such a block must also write the
    /// map back. Zeros written ahead turn the blocks into written ones in one sync per chunk,
    /// so the syncs between flush data alone (on the ext4 test machine: 4 KiB `fdatasync` p50
    /// 200 → 134 µs). The zeros read as the segment's unwritten end, as before.
    fn zero_ahead(&mut self) -> Result<(), StorageError> {
        static ZEROS: [u8; ZERO_AHEAD_BYTES as usize] = [0; ZERO_AHEAD_BYTES as usize];
        let start = self.active_len;
        let end = (start + ZERO_AHEAD_BYTES).min(self.options.segment_size_bytes);
        if end > start {
            let path = &self.segments.last().expect("an active segment").path;
            self.active
                .write_all_at(&ZEROS[..(end - start) as usize], start)
                .map_err(|e| StorageError::io("write", path, e))?;
        }
        self.zeroed_to = end.max(start);
        Ok(())
    }

    /// Seals the active segment (already synced) and opens the next one with a fresh head.
    fn roll(&mut self) -> Result<(), StorageError> {
        debug_assert!(!self.dirty, "a head written over unsynced writes could outlive them");
        let sequence = self.segments.last().expect("an active segment").sequence + 1;
        let mut head = Vec::new();
        self.encode_head(sequence, &mut head)?;
        // The sealed segment loses its preallocated rest, durably, before the next segment
        // exists: a sealed segment always ends with its last commit record.
        let sealed = &self.segments.last().expect("an active segment").path;
        let len = self.active.metadata().map_err(|e| StorageError::io("stat", sealed, e))?.len();
        if len > self.active_len {
            self.active
                .set_len(self.active_len)
                .map_err(|e| StorageError::io("truncate", sealed, e))?;
            if !self.options.unsafe_no_fsync {
                self.active.sync_data().map_err(|e| StorageError::io("fdatasync", sealed, e))?;
            }
        }
        let path = self.wal_dir.join(segment::file_name(sequence));
        self.active = create_segment(&path, &self.options)?;
        self.active_len = 0;
        self.zeroed_to = 0;
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
            self.janitor.discard(&segment.path)?;
        }
        if doomed > 0 {
            fsutil::sync_dir(&self.wal_dir, no_fsync)?;
        }
        let keep = self.options.snapshots_to_keep;
        let spared = self.prewritten.lock().unwrap_or_else(|p| p.into_inner()).spared.clone();
        if snapshot_file::prune(
            &self.snap_dir,
            self.durable_snapshot,
            keep,
            &spared,
            &self.janitor,
        )? {
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
            Some(s) => {
                let marker = SnapshotMarker { index: s.meta.index, term: s.meta.term };
                let mut prewritten = self.prewritten.lock().unwrap_or_else(|p| p.into_inner());
                if prewritten.ready.remove(&marker) {
                    prewritten.spared.remove(&marker);
                    // Its file is durable already (SnapshotWriter): only the marker is left.
                    Some(EncodedSnapshot::written(marker))
                } else {
                    Some(snapshot_file::encode(s, self.options.max_snapshot_bytes)?)
                }
            }
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

    /// Reads the file the current snapshot marker names (its checksum checked, as at recovery).
    fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        self.check_usable()?;
        match self.snapshot {
            Some(marker) => {
                snapshot_file::read(&self.snap_dir, marker, self.options.max_snapshot_bytes)
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        Some(SnapshotWriter {
            dir: self.snap_dir.clone(),
            max_bytes: self.options.max_snapshot_bytes,
            no_fsync: self.options.unsafe_no_fsync,
            pace: self.options.snapshot_write_bytes_per_sec,
            prewritten: Arc::clone(&self.prewritten),
        })
    }

    fn last_index(&self) -> u64 {
        self.bounds.last_index
    }
}

/// No committed batch survives, not even a segment head. That is a new store (or one whose very
/// first open crashed before its first segment's head was synced) — unless something shows it
/// had a history: a later segment than the first (its head was synced before older segments
/// were deleted), or a snapshot file. Then the log was lost or damaged, and starting empty
/// would drop it silently.
fn refuse_lost_history(listed: &[(u64, PathBuf)], snap_dir: &Path) -> Result<(), StorageError> {
    if let Some((sequence, path)) = listed.last().filter(|(sequence, _)| *sequence != 1) {
        return Err(StorageError::corrupt(
            path,
            0,
            format!("segment {sequence} has no committed batch and older segments are gone"),
        ));
    }
    if let Some((_, path)) = snapshot_file::list(snap_dir)?.0.first() {
        return Err(StorageError::corrupt(
            path,
            0,
            "a snapshot exists but the write-ahead log has no committed batch",
        ));
    }
    Ok(())
}

fn create_segment(path: &Path, options: &FileStoreOptions) -> Result<File, StorageError> {
    let file = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("create", path, e))?;
    if options.preallocate {
        preallocate(&file, path, options.segment_size_bytes);
    }
    Ok(file)
}

/// Reserves the first `len` bytes of `file` on disk; its size grows to at least `len` and the
/// new bytes read as zeros. Preallocation only saves time, so where it fails (a filesystem
/// without `fallocate`, a nearly full disk) the store says so and goes on appending.
fn preallocate(file: &File, path: &Path, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if let Err(errno) = nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, len)
        {
            tracing::warn!(file = %path.display(), %errno, "cannot preallocate a log segment; appending without it");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, path, len);
}

/// Replays the segment at `path` into `replay`. For the last segment, also truncates a torn
/// tail back to the last commit and returns the file opened for appending, with the length
/// kept.
fn open_segment(
    replay: &mut Replay,
    sequence: u64,
    path: &Path,
    last: bool,
    options: &FileStoreOptions,
) -> Result<(SegmentInfo, Option<File>, u64), StorageError> {
    let bytes = fs::read(path).map_err(|e| StorageError::io("read", path, e))?;
    replay.begin_segment(path, sequence);
    let scanned = segment::scan(path, &bytes, options.max_record_bytes, last, |range, record| {
        replay.read(range, record)
    })?;
    let end = replay.end_segment(last)?;
    if !last && end.committed_len == 0 {
        return Err(StorageError::corrupt(path, 0, "sealed segment is empty"));
    }
    let info =
        SegmentInfo { sequence, path: path.to_path_buf(), max_entry_index: end.max_entry_index };
    if !last {
        return Ok((info, None, end.committed_len));
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let kept = end.committed_len;
    // Zeros at the end are the preallocated rest of the segment, not data.
    let written = segment::zeros_from(&bytes) as u64;
    if kept < written {
        let uncommitted = match end.uncommitted_records {
            0 => None,
            n => Some(format!("{n} records of a batch without its commit record")),
        };
        let valid_len = scanned.valid_len;
        let reason = match (uncommitted, scanned.torn) {
            (Some(records), Some(torn)) => format!("{records}, then {torn} at offset {valid_len}"),
            (Some(records), None) => records,
            (None, Some(torn)) => format!("{torn} at offset {valid_len}"),
            // Not expected: a scan that read to the end leaves bytes only in an open batch.
            (None, None) => "bytes after the last commit record".to_string(),
        };
        tracing::warn!(
            file = %path.display(),
            offset = kept,
            dropped_bytes = written - kept,
            uncommitted_records = end.uncommitted_records,
            %reason,
            "recovered from a torn write-ahead log tail by truncating it back to the last \
             committed batch"
        );
        file.set_len(kept).map_err(|e| StorageError::io("truncate", path, e))?;
        if options.preallocate {
            preallocate(&file, path, options.segment_size_bytes);
        }
        if !options.unsafe_no_fsync {
            file.sync_data().map_err(|e| StorageError::io("fdatasync", path, e))?;
        }
    } else if options.preallocate {
        // A segment written by a build that did not preallocate; the open's sync covers it.
        preallocate(&file, path, options.segment_size_bytes);
    }
    Ok((info, Some(file), kept))
}
