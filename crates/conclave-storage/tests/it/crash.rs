//! Power loss and corruption for the file store.
//!
//! The crash model: at every successful `sync` the test notes each segment's length; a crash
//! cuts every segment back to that length plus a random prefix of whatever was written after it,
//! sometimes followed by garbage, and sometimes loses a segment created since (its directory
//! entry was never synced). Snapshot files are written durably (temp, fsync, rename, fsync dir)
//! before `write` returns, so they stay whole. After reopening, the store must hold the synced
//! state plus at most a prefix of the later writes — never anything else.

use crate::support::{small_options, wal_lengths};
use conclave_core::DetRng;
use conclave_storage::conformance::{Model, OwnedBatch, Workload, entries, snapshot};
use conclave_storage::{FileStore, FileStoreOptions, LogStore, StorageError, WriteBatch};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Cuts the store's segments as a power loss could, given the lengths at the last sync.
fn power_loss(
    dir: &Path,
    synced: &std::collections::BTreeMap<std::path::PathBuf, u64>,
    rng: &mut DetRng,
) {
    for (path, len) in wal_lengths(dir) {
        let durable = synced.get(&path).copied();
        if durable.is_none() && rng.chance(0.2) {
            fs::remove_file(&path).unwrap();
            continue;
        }
        let durable = durable.unwrap_or(0);
        assert!(len >= durable, "{} shrank below its synced length", path.display());
        if len == durable {
            continue;
        }
        let kept = durable + rng.range_inclusive(0, len - durable);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(kept).unwrap();
        drop(file);
        if rng.chance(0.3) {
            let garbage: Vec<u8> = if rng.chance(0.5) {
                vec![0; rng.range_inclusive(1, 64) as usize]
            } else {
                (0..rng.range_inclusive(1, 64)).map(|_| rng.next_u64() as u8).collect()
            };
            OpenOptions::new().append(true).open(&path).unwrap().write_all(&garbage).unwrap();
        }
    }
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

    for _round in 0..6 {
        let steps = rng.range_inclusive(1, 60);
        for _ in 0..steps {
            let batch = workload.next_batch(&model);
            store.write(&batch.as_batch()).unwrap();
            model.apply(&batch.as_batch()).unwrap();
            pending.push(batch);
            if rng.chance(0.3) {
                store.sync().unwrap();
                synced = model.clone();
                synced_lengths = wal_lengths(&dir);
                pending.clear();
            }
        }
        drop(store);
        power_loss(&dir, &synced_lengths, &mut rng);

        let replay = format!(
            "crash seed {seed}, replay with CONCLAVE_CRASH_SEED={seed} cargo test -p conclave-storage \
             --test it crash::power_loss (options {options:?})"
        );
        let (reopened, recovered) = FileStore::open(&dir, options.clone())
            .unwrap_or_else(|e| panic!("{replay}: reopen failed: {e}"));
        let batches: Vec<WriteBatch<'_>> = pending.iter().map(OwnedBatch::as_batch).collect();
        let reachable = Model::reachable(&synced, &batches);
        assert!(
            reachable.iter().any(|m| m.matches(&recovered)),
            "{replay}: recovered a state no crash could leave\nsynced: last {} hs {:?}\nrecovered: snapshot {:?} entries {:?}",
            synced.last_index(),
            synced.hard_state,
            recovered.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term)),
            recovered.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        );
        model = Model::from_recovered(&recovered);
        assert_eq!(reopened.last_index(), model.last_index(), "{replay}");
        // Opening makes what it recovered durable, so it is the new synced state.
        store = reopened;
        synced = model.clone();
        synced_lengths = wal_lengths(&dir);
        pending.clear();
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

#[test]
fn power_loss_with_default_segments() {
    let options = FileStoreOptions { unsafe_no_fsync: true, ..FileStoreOptions::default() };
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
    let bytes = fs::read(&segment).unwrap();
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
    let synced_len = fs::metadata(&segment).unwrap().len();
    OpenOptions::new().append(true).open(&segment).unwrap().write_all(&[0x2A; 5]).unwrap();

    let (mut store, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 5);
    assert_eq!(recovered.hard_state.as_deref(), Some(&b"term 5"[..]));
    assert_eq!(fs::metadata(&segment).unwrap().len(), synced_len, "the torn bytes are gone");
    store.write(&WriteBatch { entries: &entries(6..=6, 6), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 6);
}

/// Flipping a byte of the very last record is indistinguishable from a torn write: that record
/// is dropped and everything before it is served.
#[test]
fn damage_in_the_last_record_reads_as_a_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let segment = synced_log(&dir, 5);
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.entries.len(), 4);
    assert_eq!(
        recovered.hard_state.as_deref(),
        Some(&b"term 5"[..]),
        "batch 5's hard state is its own record"
    );
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
