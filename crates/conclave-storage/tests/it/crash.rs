//! Power loss and corruption for the file store.
//!
//! The crash model: at every successful `sync` the test notes how much of each segment was
//! written; a crash keeps that much plus a random prefix of whatever was written after it, and
//! either cuts the file there or (a preallocated segment's blocks outliving their contents)
//! zeroes the rest of what was written; sometimes garbage follows the cut, and sometimes a
//! segment created since is lost (its directory entry was never synced). Snapshot files are written durably (temp, fsync, rename, fsync dir)
//! before `write` returns, so they stay whole. After reopening, the store must hold the synced
//! state plus a prefix of the later writes, each whole — a write is all-or-nothing on recovery —
//! and exactly the writes whose bytes all survived the cut.

use crate::support::{small_options, wal_lengths, written};
use bytes::Bytes;
use conclave_core::{DetRng, Entry, Recovered};
use conclave_storage::conformance::{Model, OwnedBatch, Workload, entries, snapshot};
use conclave_storage::{FileStore, FileStoreOptions, LogStore, StorageError, WriteBatch};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Cuts the store's segments as a power loss could, given the lengths at the last sync, and
/// returns how many bytes of each surviving segment were kept (before any garbage).
fn power_loss(
    dir: &Path,
    synced: &BTreeMap<PathBuf, u64>,
    rng: &mut DetRng,
) -> BTreeMap<PathBuf, u64> {
    let mut kept_lengths = BTreeMap::new();
    for (path, len) in wal_lengths(dir) {
        let durable = synced.get(&path).copied();
        if durable.is_none() && rng.chance(0.2) {
            fs::remove_file(&path).unwrap();
            continue;
        }
        let durable = durable.unwrap_or(0);
        assert!(len >= durable, "{} shrank below its synced length", path.display());
        if len == durable {
            kept_lengths.insert(path, len);
            continue;
        }
        let kept = durable + rng.range_inclusive(0, len - durable);
        kept_lengths.insert(path.clone(), kept);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        if rng.chance(0.5) {
            file.set_len(kept).unwrap();
        } else {
            file.write_all_at(&vec![0; (len - kept) as usize], kept).unwrap();
        }
        if rng.chance(0.3) {
            let garbage: Vec<u8> = if rng.chance(0.5) {
                vec![0; rng.range_inclusive(1, 64) as usize]
            } else {
                (0..rng.range_inclusive(1, 64)).map(|_| rng.next_u64() as u8).collect()
            };
            file.write_all_at(&garbage, kept).unwrap();
        }
    }
    kept_lengths
}

/// Where a write's bytes end: the active segment and its length right after the write.
fn write_end(dir: &Path) -> (PathBuf, u64) {
    wal_lengths(dir).pop_last().expect("an active segment")
}

/// How many of the pending writes a cut kept whole: those whose last byte (their commit record)
/// survived. Each write ends after the one before it, so they form a prefix.
fn writes_kept(ends: &[(PathBuf, u64)], kept_lengths: &BTreeMap<PathBuf, u64>) -> usize {
    let survived = |(path, end): &(PathBuf, u64)| kept_lengths.get(path).is_some_and(|k| k >= end);
    let kept = ends.iter().take_while(|end| survived(end)).count();
    assert!(
        ends[kept..].iter().all(|end| !survived(end)),
        "a cut keeps a prefix of the log's bytes: {ends:?} {kept_lengths:?}"
    );
    kept
}

fn crash_run(seed: u64, options: &FileStoreOptions) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let mut workload = Workload::new(seed);
    workload.max_data_bytes = 200;
    let mut rng = DetRng::new(seed.wrapping_mul(31) ^ 0xBAD_5EED);
    let (mut store, _) = FileStore::open(&dir, options.clone()).unwrap();
    let mut model = Model::default();
    let mut synced = model.clone();
    let mut synced_lengths = wal_lengths(&dir);
    let mut pending: Vec<OwnedBatch> = Vec::new();
    let mut ends: Vec<(PathBuf, u64)> = Vec::new();

    for _round in 0..6 {
        let steps = rng.range_inclusive(1, 60);
        for _ in 0..steps {
            let batch = workload.next_batch(&model);
            store.write(&batch.as_batch()).unwrap();
            model.apply(&batch.as_batch()).unwrap();
            pending.push(batch);
            ends.push(write_end(&dir));
            if rng.chance(0.3) {
                store.sync().unwrap();
                synced = model.clone();
                synced_lengths = wal_lengths(&dir);
                pending.clear();
                ends.clear();
            }
        }
        drop(store);
        let kept_lengths = power_loss(&dir, &synced_lengths, &mut rng);
        let kept = writes_kept(&ends, &kept_lengths);

        let replay = format!(
            "crash seed {seed}, replay with CONCLAVE_CRASH_SEED={seed} cargo test -p conclave-storage \
             --test it crash::power_loss (options {options:?})"
        );
        let (reopened, recovered) = FileStore::open(&dir, options.clone())
            .unwrap_or_else(|e| panic!("{replay}: reopen failed: {e}"));
        let batches: Vec<WriteBatch<'_>> = pending.iter().map(OwnedBatch::as_batch).collect();
        let reachable = Model::reachable(&synced, &batches);
        let summary = |m: &Model| {
            format!(
                "snapshot {:?} hs {:?} entries {:?}",
                m.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term)),
                m.hard_state,
                m.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>()
            )
        };
        let got = Model::from_recovered(&recovered);
        // The contract: the synced state plus a prefix of whole writes, never part of one.
        assert!(
            reachable.contains(&got),
            "{replay}: recovered a state no crash could leave\nsynced: {}\nrecovered: {}",
            summary(&synced),
            summary(&got),
        );
        // This store's promise under this crash: exactly the writes whose bytes all survived.
        assert!(
            reachable[kept] == got,
            "{replay}: {kept} of {} unsynced writes survived whole, but recovery served another \
             prefix\nexpected: {}\nrecovered: {}",
            pending.len(),
            summary(&reachable[kept]),
            summary(&got),
        );
        model = got;
        assert_eq!(reopened.last_index(), model.last_index(), "{replay}");
        // Opening makes what it recovered durable, so it is the new synced state.
        store = reopened;
        synced = model.clone();
        synced_lengths = wal_lengths(&dir);
        pending.clear();
        ends.clear();
    }
}

/// The seeds to run: `CONCLAVE_CRASH_SEED` picks one (to replay a failure), otherwise `debug`
/// seeds in a debug build and many more under `--release`.
fn seeds(first: u64, debug: u64, release: u64) -> std::ops::Range<u64> {
    if let Some(seed) = std::env::var("CONCLAVE_CRASH_SEED").ok().and_then(|s| s.parse().ok()) {
        return seed..seed + 1;
    }
    first..first + if cfg!(debug_assertions) { debug } else { release }
}

#[test]
fn power_loss_keeps_every_synced_write() {
    // fdatasync itself is irrelevant to this model of a crash, so most runs skip it for speed;
    // one keeps it to exercise the real path.
    let fast = FileStoreOptions { unsafe_no_fsync: true, ..small_options() };
    for seed in seeds(0, 50, 400) {
        crash_run(seed, &fast);
    }
    for seed in seeds(1000, 1, 3) {
        crash_run(seed, &small_options());
    }
}

/// Without preallocation: reading a preallocated 64 MiB segment after every write would make this
/// test minutes long, and the small segments above cover preallocated tails.
#[test]
fn power_loss_with_default_segments() {
    let options = FileStoreOptions {
        unsafe_no_fsync: true,
        preallocate: false,
        ..FileStoreOptions::default()
    };
    for seed in seeds(500, 15, 100) {
        crash_run(seed, &options);
    }
}

/// Writes `batches` small batches, syncing each, and returns the store directory's segment.
fn synced_log(dir: &Path, batches: u64) -> std::path::PathBuf {
    let (mut store, _) = FileStore::open(dir, FileStoreOptions::default()).unwrap();
    for i in 1..=batches {
        let hs = format!("term {i}");
        store
            .write(&WriteBatch {
                hard_state: Some(hs.as_bytes()),
                entries: &entries(i..=i, i),
                ..Default::default()
            })
            .unwrap();
        store.sync().unwrap();
    }
    drop(store);
    let segments = wal_lengths(dir);
    assert_eq!(segments.len(), 1);
    segments.into_keys().next().unwrap()
}

fn expect_corrupt(dir: &Path, file: &Path, context: &str) {
    match FileStore::open(dir, FileStoreOptions::default()) {
        Err(StorageError::Corrupt { file: named, offset, reason }) => {
            assert_eq!(named, file, "{context}: wrong file named ({reason} at {offset})");
            let message = StorageError::Corrupt { file: named, offset, reason }.to_string();
            assert!(message.contains(&file.display().to_string()), "{context}: {message}");
        }
        Err(other) => panic!("{context}: expected corruption, got {other}"),
        Ok((_, recovered)) => {
            panic!("{context}: served {} entries from a corrupt log", recovered.entries.len())
        }
    }
}

/// A flipped byte anywhere before the last record sits inside synced data that valid records
/// follow: the store must refuse to open, naming the segment, rather than serve around it.
#[test]
fn flipped_byte_in_synced_data_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let pristine = root.path().join("pristine");
    let segment = synced_log(&pristine, 20);
    let bytes = written(&segment);
    // The last record is the 20th batch's entries; flips are taken from well before it.
    let limit = bytes.len() - 120;
    let mut rng = DetRng::new(7);
    for trial in 0..60 {
        let at = rng.below(limit as u64) as usize;
        let dir = root.path().join(format!("trial-{trial}"));
        fs::create_dir_all(dir.join("wal")).unwrap();
        fs::create_dir_all(dir.join("snap")).unwrap();
        let file = dir.join("wal").join(segment.file_name().unwrap());
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << rng.below(8);
        fs::write(&file, &damaged).unwrap();
        expect_corrupt(&dir, &file, &format!("flip at offset {at}"));
    }
}

/// A length field blown up to 4 GiB inside synced data is refused, not allocated.
#[test]
fn oversized_length_field_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let segment = synced_log(&dir, 5);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&segment, &bytes).unwrap();
    expect_corrupt(&dir, &segment, "length field of the first record");
}

/// Damage in a sealed segment is refused even when it is that segment's last record.
#[test]
fn damage_in_a_sealed_segment_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    for i in 1..=200 {
        store.write(&WriteBatch { entries: &entries(i..=i, 1), ..Default::default() }).unwrap();
        store.sync().unwrap();
    }
    drop(store);
    let segments = wal_lengths(&dir);
    assert!(segments.len() >= 3, "small segments roll: {segments:?}");
    let (first, len) = segments.iter().next().unwrap();
    let mut bytes = fs::read(first).unwrap();
    bytes[*len as usize - 1] ^= 0xFF;
    fs::write(first, &bytes).unwrap();
    match FileStore::open(&dir, small_options()) {
        Err(StorageError::Corrupt { file, .. }) => assert_eq!(&file, first),
        other => panic!("expected corruption in {}, got {:?}", first.display(), other.map(|_| ())),
    }
}

/// A segment missing from the middle of the sequence is refused.
#[test]
fn missing_segment_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    for i in 1..=200 {
        store.write(&WriteBatch { entries: &entries(i..=i, 1), ..Default::default() }).unwrap();
        store.sync().unwrap();
    }
    drop(store);
    let segments: Vec<_> = wal_lengths(&dir).into_keys().collect();
    fs::remove_file(&segments[1]).unwrap();
    assert!(matches!(FileStore::open(&dir, small_options()), Err(StorageError::Corrupt { .. })));
}

/// A damaged snapshot file is refused, naming the file.
#[test]
fn damaged_snapshot_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    store.write(&WriteBatch { entries: &entries(1..=10, 1), ..Default::default() }).unwrap();
    let snap = snapshot(5, 1);
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let snap_file = dir.join("snap").join("0000000000000005-0000000000000001.snap");
    let mut bytes = fs::read(&snap_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    fs::write(&snap_file, &bytes).unwrap();
    expect_corrupt(&dir, &snap_file, "flipped byte in the snapshot");

    fs::remove_file(&snap_file).unwrap();
    expect_corrupt(&dir, &snap_file, "missing snapshot file");
}

/// A torn tail is cut off and the store carries on from the last whole record.
#[test]
fn torn_tail_is_truncated_and_the_store_carries_on() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let segment = synced_log(&dir, 5);
    let synced_len = written(&segment).len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .write_all_at(&[0x2A; 5], synced_len)
        .unwrap();

    let (mut store, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 5);
    assert_eq!(recovered.hard_state.as_deref(), Some(&b"term 5"[..]));
    assert_eq!(written(&segment).len() as u64, synced_len, "the torn bytes are gone");
    let preallocated = FileStoreOptions::default().segment_size_bytes;
    assert_eq!(fs::metadata(&segment).unwrap().len(), preallocated, "preallocated again");
    store.write(&WriteBatch { entries: &entries(6..=6, 6), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 6);
}

/// Flipping a byte of the very last record — the last batch's commit record — is
/// indistinguishable from a torn write: that batch is dropped whole and everything before it is
/// served.
#[test]
fn damage_in_the_last_record_reads_as_a_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let segment = synced_log(&dir, 5);
    let mut bytes = written(&segment);
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    OpenOptions::new().write(true).open(&segment).unwrap().write_all_at(&bytes, 0).unwrap();
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 4);
    assert_eq!(
        recovered.hard_state.as_deref(),
        Some(&b"term 4"[..]),
        "batch 5's hard state goes with the rest of batch 5"
    );
    let kept = written(&segment).len() as u64;
    assert!(kept < bytes.len() as u64 - 10, "the file is cut back to batch 4's commit");
}

/// A log whose only segment lost its head while snapshots or older history prove it had one is
/// refused: starting empty would silently drop everything.
#[test]
fn losing_the_only_segment_head_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    for i in 1..=200 {
        store.write(&WriteBatch { entries: &entries(i..=i, 1), ..Default::default() }).unwrap();
        store.sync().unwrap();
    }
    let snap = snapshot(200, 1);
    store
        .write(&WriteBatch { snapshot: Some(&snap), compact_to: Some(200), ..Default::default() })
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let segments: Vec<_> = wal_lengths(&dir).into_keys().collect();
    assert_eq!(segments.len(), 1, "compaction leaves only the active segment");
    fs::write(&segments[0], [0u8; 16]).unwrap();
    expect_corrupt_with(&dir, &segments[0], small_options());
}

fn expect_corrupt_with(dir: &Path, file: &Path, options: FileStoreOptions) {
    match FileStore::open(dir, options) {
        Err(StorageError::Corrupt { file: named, .. }) => assert_eq!(named, file),
        other => panic!("expected corruption in {}, got {:?}", file.display(), other.map(|_| ())),
    }
}

/// The acceptor's state a cut of the log may recover: entries 1..=10 and the hard state.
fn log_of(recovered: &Recovered) -> (Option<&[u8]>, Vec<(u64, u64)>) {
    let entries = recovered.entries.iter().map(|e| (e.index, e.term)).collect();
    (recovered.hard_state.as_deref(), entries)
}

/// Syncs slots 1..=10 accepted at ballot 1, then — unsynced — rewrites slots 5..=10 at ballot 2
/// in one batch (a truncation followed by the new entries), and reopens the store from every
/// byte-length cut of the unsynced tail, and from a lost new segment. Each cut must recover the
/// old log or the new one, whole: never the truncation without the entries that replace it.
///
/// Reference: Paxos Made Simple §2.2 (an acceptor must remember what it accepted, even across
/// a crash); Multi-Paxos re-emits the later accepted slots after rewriting one, so a batch that
/// rewrites a suffix must not lose that suffix if it is cut short.
///
/// Returns whether the rewrite went into a new segment.
fn rewritten_suffix_survives_every_cut(options: FileStoreOptions, data_bytes: usize) -> bool {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let accepted = |range: std::ops::RangeInclusive<u64>, ballot: u64| -> Vec<Entry> {
        let data = |i: u64| Bytes::from(vec![(i + ballot) as u8; data_bytes]);
        range.map(|i| Entry::command(i, ballot, data(i))).collect()
    };
    let (mut store, _) = FileStore::open(&dir, options.clone()).unwrap();
    let old = accepted(1..=10, 1);
    store
        .write(&WriteBatch { hard_state: Some(b"ballot 1"), entries: &old, ..Default::default() })
        .unwrap();
    store.sync().unwrap();
    let synced = wal_lengths(&dir);
    let rewrite = accepted(5..=10, 2);
    store
        .write(&WriteBatch {
            hard_state: Some(b"ballot 2"),
            entries: &rewrite,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.last_index(), 10);
    drop(store);

    let written = wal_lengths(&dir);
    let grown: Vec<_> =
        written.iter().filter(|(path, len)| synced.get(*path) != Some(*len)).collect();
    assert_eq!(grown.len(), 1, "one segment holds the unsynced batch: {written:?}");
    let (tail_path, &tail_len) = grown[0];
    let tail_bytes = fs::read(tail_path).unwrap();
    let tail_from = synced.get(tail_path).copied();
    let old_log: Vec<_> = old.iter().map(|e| (e.index, e.term)).collect();
    let new_log: Vec<_> = (1..=4).map(|i| (i, 1)).chain((5..=10).map(|i| (i, 2))).collect();

    // `None` stands for the new segment's directory entry never reaching the disk.
    let cuts = tail_from
        .is_none()
        .then_some(None)
        .into_iter()
        .chain((tail_from.unwrap_or(0)..=tail_len).map(Some));
    // The other segments are sealed: opening reads them and leaves them as they are.
    let trial = root.path().join("trial");
    fs::create_dir_all(trial.join("wal")).unwrap();
    fs::create_dir_all(trial.join("snap")).unwrap();
    for path in written.keys().filter(|path| *path != tail_path) {
        fs::copy(path, trial.join("wal").join(path.file_name().unwrap())).unwrap();
    }
    let tail_target = trial.join("wal").join(tail_path.file_name().unwrap());
    for cut in cuts {
        // Opening cuts the tail back (and may give it a new head): restore it as the crash
        // left it. Overwriting in place, not recreating, keeps each trial cheap.
        match cut {
            Some(cut) => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&tail_target)
                    .unwrap();
                file.write_all(&tail_bytes[..cut as usize]).unwrap();
                file.set_len(cut).unwrap();
            }
            None if tail_target.exists() => fs::remove_file(&tail_target).unwrap(),
            None => {}
        }
        let (store, recovered) = FileStore::open(&trial, options.clone())
            .unwrap_or_else(|e| panic!("cut {cut:?} of {tail_len}: reopen failed: {e}"));
        let (hard_state, log) = log_of(&recovered);
        assert!(
            log.len() >= 10,
            "cut {cut:?} of {tail_len}: lost accepted slots, recovered {log:?}"
        );
        if cut == Some(tail_len) {
            assert_eq!((hard_state, &log), (Some(&b"ballot 2"[..]), &new_log), "whole tail");
        } else {
            assert_eq!(
                (hard_state, &log),
                (Some(&b"ballot 1"[..]), &old_log),
                "cut {cut:?} of {tail_len}: a cut batch must leave no trace"
            );
        }
        assert_eq!(store.last_index(), 10, "cut {cut:?}");
    }
    tail_from.is_none()
}

// The cuts are made by hand, so fdatasync adds nothing here but time.

#[test]
fn rewritten_suffix_is_never_lost_in_one_segment() {
    let options = FileStoreOptions { unsafe_no_fsync: true, ..FileStoreOptions::default() };
    assert!(!rewritten_suffix_survives_every_cut(options, 24));
}

/// Small segments: the synced log fills the first segment, so the rewrite opens a new one
/// (whose head is cut too), and its entries are split over several records.
#[test]
fn rewritten_suffix_is_never_lost_across_a_rollover() {
    let options = FileStoreOptions { unsafe_no_fsync: true, ..small_options() };
    assert!(rewritten_suffix_survives_every_cut(options, 300), "the rewrite opened a segment");
}

/// A segment written before commit records existed (format 1) holds batches without commits;
/// replaying it by today's rules would drop them all as a torn tail and start empty. It is
/// refused instead, naming the format.
#[test]
fn a_segment_of_format_1_is_refused() {
    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(payload);
        bytes
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    fs::create_dir_all(dir.join("wal")).unwrap();
    fs::create_dir_all(dir.join("snap")).unwrap();
    let segment = dir.join("wal").join("0000000000000001.log");
    // Format 1: a header of (segment 1, last index 0), then a hard state of b"term 3".
    let mut bytes = record(1, &[1, 0]);
    bytes.extend(record(2, b"\x06term 3"));
    fs::write(&segment, &bytes).unwrap();
    match FileStore::open(&dir, FileStoreOptions::default()) {
        Err(StorageError::Corrupt { file, reason, .. }) => {
            assert_eq!(file, segment);
            assert!(reason.contains("format 1"), "{reason}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
}
