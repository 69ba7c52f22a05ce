//! File-store behaviour beyond the shared contract: segments, compaction, snapshot files,
//! limits and options.

use crate::support::{files_in, small_options, wal_lengths};
use bytes::Bytes;
use conclave_core::Entry;
use conclave_storage::conformance::{entries, snapshot};
use conclave_storage::{FileStore, FileStoreOptions, LogStore, StorageError, WriteBatch};

fn append_synced(store: &mut FileStore, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        store.write(&WriteBatch { entries: &entries(i..=i, 1), ..Default::default() }).unwrap();
        store.sync().unwrap();
    }
}

#[test]
fn compaction_deletes_only_covered_segments_and_only_after_sync() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    store
        .write(&WriteBatch { hard_state: Some(b"term 1, voted 2"), ..Default::default() })
        .unwrap();
    append_synced(&mut store, 1..=400);
    let before = wal_lengths(&dir).len();
    assert!(before >= 5, "400 entries roll several 2 KiB segments, got {before}");

    let snap = snapshot(300, 1);
    store
        .write(&WriteBatch { snapshot: Some(&snap), compact_to: Some(300), ..Default::default() })
        .unwrap();
    assert_eq!(wal_lengths(&dir).len(), before, "nothing is deleted before the marker is synced");
    store.sync().unwrap();
    let after = wal_lengths(&dir).len();
    assert!(after < before, "covered segments are deleted: {before} -> {after}");
    assert!(after >= 2, "segments holding entries above 300 stay");
    drop(store);
    // Unlinked on the janitor's thread, which a dropped store waits for.
    assert!(files_in(&dir.join("wal"), ".trash").is_empty());

    // The hard state was written once, in a segment that is gone now: segment heads carry it.
    let (_, recovered) = FileStore::open(&dir, small_options()).unwrap();
    assert_eq!(recovered.hard_state.as_deref(), Some(&b"term 1, voted 2"[..]));
    assert_eq!(recovered.snapshot, Some(snap));
    assert_eq!(recovered.entries, entries(301..=400, 1));
}

#[test]
fn compact_to_bounds_deletion_by_the_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    append_synced(&mut store, 1..=200);
    let before = wal_lengths(&dir).len();
    // compact_to without a snapshot covering it deletes nothing.
    store.write(&WriteBatch { compact_to: Some(190), ..Default::default() }).unwrap();
    store.sync().unwrap();
    assert_eq!(wal_lengths(&dir).len(), before);
    // A snapshot without compact_to deletes nothing either; together they do.
    let snap = snapshot(100, 1);
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    store.sync().unwrap();
    assert!(
        wal_lengths(&dir).len() < before,
        "snapshot 100 with compact_to 190 allows deleting up to 100"
    );
    drop(store);
    let (_, recovered) = FileStore::open(&dir, small_options()).unwrap();
    assert_eq!(recovered.entries, entries(101..=200, 1));
}

#[test]
fn snapshot_files_keep_the_newest_two() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=40);
    for index in [10, 20, 30, 40] {
        let snap = snapshot(index, 1);
        store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
        store.sync().unwrap();
    }
    let names: Vec<String> = files_in(&dir.join("snap"), ".snap")
        .into_keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["0000000000000030-0000000000000001.snap", "0000000000000040-0000000000000001.snap"]
    );
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.snapshot.map(|s| s.meta.index), Some(40));
    assert!(recovered.entries.is_empty());
}

// A snapshot file written ahead on another thread survives the cleanups that run before its
// marker is written (it is newer than the current snapshot, which cleanup otherwise treats as an
// orphan), and then installs with the marker alone.
#[test]
fn a_snapshot_written_ahead_survives_cleanup_and_installs_by_its_marker() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=30);
    let first = snapshot(10, 1);
    store.write(&WriteBatch { snapshot: Some(&first), ..Default::default() }).unwrap();
    store.sync().unwrap();

    let ahead = snapshot(20, 1);
    let writer = store.snapshot_writer().expect("a file store writes snapshots ahead");
    let handle = {
        let ahead = ahead.clone();
        std::thread::spawn(move || writer.write(&ahead))
    };
    handle.join().unwrap().unwrap();
    // A cleanup in between (compaction under the current snapshot) spares the new file.
    store.write(&WriteBatch { compact_to: Some(10), ..Default::default() }).unwrap();
    store.sync().unwrap();
    assert_eq!(files_in(&dir.join("snap"), ".snap").len(), 2);

    let before = std::fs::metadata(dir.join("snap/0000000000000020-0000000000000001.snap"))
        .unwrap()
        .modified()
        .unwrap();
    store.write(&WriteBatch { snapshot: Some(&ahead), ..Default::default() }).unwrap();
    store.sync().unwrap();
    let after = std::fs::metadata(dir.join("snap/0000000000000020-0000000000000001.snap"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "installing only writes the marker");
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, Some(ahead));
    assert_eq!(recovered.entries, entries(21..=30, 1));
}

// A snapshot written ahead in paced pieces (several of them here) is the same file as one
// written at once: it installs by its marker and reads back byte for byte.
#[test]
fn a_snapshot_written_in_paced_pieces_reads_back_whole() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let options = FileStoreOptions {
        snapshot_write_bytes_per_sec: 256 * 1024 * 1024,
        ..FileStoreOptions::default()
    };
    let (mut store, _) = FileStore::open(&dir, options.clone()).unwrap();
    append_synced(&mut store, 1..=30);
    let mut big = snapshot(20, 1);
    let len = 3 * FileStoreOptions::SNAPSHOT_WRITE_CHUNK_BYTES + 12_345;
    big.data = Bytes::from((0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    store.snapshot_writer().unwrap().write(&big).unwrap();
    store.write(&WriteBatch { snapshot: Some(&big), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, options).unwrap();
    assert_eq!(recovered.snapshot, Some(big));
    assert_eq!(recovered.entries, entries(21..=30, 1));
}

// A file written ahead whose marker never came (a crash in between) is an orphan like any other.
#[test]
fn a_snapshot_written_ahead_but_never_installed_is_ignored() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=10);
    store.snapshot_writer().unwrap().write(&snapshot(8, 1)).unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.entries, entries(1..=10, 1));
    assert!(files_in(&dir.join("snap"), ".snap").is_empty(), "the orphan snapshot is removed");
}

#[test]
fn unreferenced_snapshot_is_ignored_and_removed_on_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=10);
    let synced_lengths = wal_lengths(&dir);
    let snap = snapshot(8, 1);
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    drop(store);
    // Power loss before the marker was synced: cut the log back, the snapshot file survives.
    for (path, len) in synced_lengths {
        std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }
    assert_eq!(files_in(&dir.join("snap"), ".snap").len(), 1);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.entries, entries(1..=10, 1));
    assert!(files_in(&dir.join("snap"), ".snap").is_empty(), "the orphan snapshot is removed");
}

// A crash between discarding a file (renamed to `.trash`) and unlinking it leaves the trash;
// the next open deletes it and reads nothing from it.
#[test]
fn trash_a_crash_left_behind_is_deleted_on_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    append_synced(&mut store, 1..=20);
    drop(store);
    let wal_trash = dir.join("wal/0000000000000000.log.trash");
    let snap_trash = dir.join("snap/0000000000000005-0000000000000001.snap.trash");
    std::fs::write(&wal_trash, b"not a segment any more").unwrap();
    std::fs::write(&snap_trash, b"not a snapshot any more").unwrap();
    let (_, recovered) = FileStore::open(&dir, small_options()).unwrap();
    assert_eq!(recovered.entries, entries(1..=20, 1));
    assert!(!wal_trash.exists() && !snap_trash.exists(), "trash is deleted on open");
}

#[test]
fn oversized_records_are_refused_and_the_store_stays_usable() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let options = small_options();
    let (mut store, _) = FileStore::open(&dir, options.clone()).unwrap();
    let huge = vec![Entry::command(1, 1, Bytes::from(vec![7; 2000]))];
    let err = store.write(&WriteBatch { entries: &huge, ..Default::default() }).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { limit: 1024, .. }), "{err}");
    assert!(!err.is_fatal());
    let err = store
        .write(&WriteBatch { hard_state: Some(&[1; 4096]), ..Default::default() })
        .unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { what: "hard state", .. }), "{err}");
    assert_eq!(store.last_index(), 0);

    // Many entries that together exceed one record are split across records.
    let many: Vec<Entry> =
        (1..=40).map(|i| Entry::command(i, 1, Bytes::from(vec![i as u8; 200]))).collect();
    store.write(&WriteBatch { entries: &many, ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, options).unwrap();
    assert_eq!(recovered.entries, many);
}

#[test]
fn snapshot_above_the_limit_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let options = FileStoreOptions { max_snapshot_bytes: 100, ..FileStoreOptions::default() };
    let (mut store, _) = FileStore::open(&root.path().join("store"), options).unwrap();
    let mut snap = snapshot(1, 1);
    snap.data = Bytes::from(vec![0; 500]);
    let err = store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { what: "snapshot", .. }), "{err}");
    assert!(files_in(&root.path().join("store/snap"), "").is_empty(), "nothing was written");
}

#[test]
fn invalid_options_are_refused_before_touching_the_disk() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let options = FileStoreOptions { segment_size_bytes: 1, ..FileStoreOptions::default() };
    let err = FileStore::open(&dir, options).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidOptions { option: "segment_size_bytes", .. }),
        "{err}"
    );
    assert!(!dir.exists());
}

#[test]
fn a_store_with_snapshots_but_no_log_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=3);
    let snap = snapshot(2, 1);
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    std::fs::remove_dir_all(dir.join("wal")).unwrap();
    assert!(matches!(
        FileStore::open(&dir, FileStoreOptions::default()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn rewriting_the_current_snapshot_keeps_it_consistent() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (mut store, _) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    append_synced(&mut store, 1..=5);
    let snap = snapshot(5, 1);
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    store.sync().unwrap();
    // The same snapshot again is a no-op on disk; one with other bytes replaces it.
    store.write(&WriteBatch { snapshot: Some(&snap), ..Default::default() }).unwrap();
    let mut other = snap.clone();
    other.data = Bytes::from_static(b"re-encoded state");
    store.write(&WriteBatch { snapshot: Some(&other), ..Default::default() }).unwrap();
    store.sync().unwrap();
    drop(store);
    let (_, recovered) = FileStore::open(&dir, FileStoreOptions::default()).unwrap();
    assert_eq!(recovered.snapshot, Some(other));
}

/// Segments are preallocated to their full size and written in place; the store only ever reads
/// its zeros as the end of the log.
#[test]
fn segments_are_preallocated_and_reopen_where_they_ended() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let options = FileStoreOptions { segment_size_bytes: 64 * 1024, ..small_options() };
    let (mut store, _) = FileStore::open(&dir, options.clone()).unwrap();
    append_synced(&mut store, 1..=10);
    drop(store);
    let (path, written) = wal_lengths(&dir).pop_last().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64 * 1024, "the segment is preallocated");
    let (mut store, recovered) = FileStore::open(&dir, options.clone()).unwrap();
    assert_eq!(recovered.entries, entries(1..=10, 1));
    assert_eq!(wal_lengths(&dir)[&path], written, "reopening drops nothing and adds nothing");
    append_synced(&mut store, 11..=20);
    drop(store);
    let (_, recovered) = FileStore::open(&dir, options).unwrap();
    assert_eq!(
        recovered.entries,
        entries(1..=20, 1),
        "appends after a reopen go where the log ended"
    );
}

/// A segment preallocated under a larger `segment_size_bytes` is sealed early when the size is
/// lowered, and loses its zeros when sealed: a sealed segment ends with its last commit record.
#[test]
fn a_segment_sealed_before_its_preallocated_size_loses_its_zeros() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let large = FileStoreOptions { segment_size_bytes: 64 * 1024, ..small_options() };
    let (mut store, _) = FileStore::open(&dir, large).unwrap();
    append_synced(&mut store, 1..=5);
    drop(store);
    let (mut store, _) = FileStore::open(&dir, small_options()).unwrap();
    append_synced(&mut store, 6..=200);
    drop(store);
    let segments = files_in(&dir.join("wal"), ".log");
    assert!(segments.len() >= 3, "small segments roll: {segments:?}");
    let (first, len) = segments.first_key_value().unwrap();
    assert_eq!(*len, wal_lengths(&dir)[first], "no zeros after the first segment's last record");
    let (_, recovered) = FileStore::open(&dir, small_options()).unwrap();
    assert_eq!(recovered.entries, entries(1..=200, 1));
}
