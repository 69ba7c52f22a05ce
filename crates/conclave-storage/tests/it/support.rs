//! Harnesses and file helpers shared by the test modules.

use conclave_core::Recovered;
use conclave_storage::conformance::Harness;
use conclave_storage::{FileStore, FileStoreOptions, MemStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Options that make segments roll and records split after a few writes.
pub fn small_options() -> FileStoreOptions {
    FileStoreOptions {
        segment_size_bytes: 2048,
        max_record_bytes: 1024,
        ..FileStoreOptions::default()
    }
}

/// File stores in fresh directories under one temporary root.
#[derive(Debug)]
pub struct FileHarness {
    root: TempDir,
    options: FileStoreOptions,
    stores: u32,
    dir: PathBuf,
}

impl FileHarness {
    pub fn new(options: FileStoreOptions) -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let dir = root.path().join("unused");
        Self { root, options, stores: 0, dir }
    }
}

impl Harness for FileHarness {
    type Store = FileStore;

    fn create(&mut self) -> (FileStore, Recovered) {
        self.stores += 1;
        self.dir = self.root.path().join(format!("store-{}", self.stores));
        FileStore::open(&self.dir, self.options.clone()).expect("open a new store")
    }

    fn restart(&mut self, store: FileStore) -> (FileStore, Recovered) {
        drop(store);
        FileStore::open(&self.dir, self.options.clone()).expect("reopen the store")
    }
}

/// Memory stores; a restart is a power loss.
#[derive(Debug, Default)]
pub struct MemHarness;

impl Harness for MemHarness {
    type Store = MemStore;

    fn create(&mut self) -> (MemStore, Recovered) {
        let store = MemStore::new();
        let recovered = store.recover();
        (store, recovered)
    }

    fn restart(&mut self, mut store: MemStore) -> (MemStore, Recovered) {
        store.crash();
        let recovered = store.recover();
        (store, recovered)
    }
}

/// The write-ahead log's segments under a store directory, with how many bytes of each were
/// written: the zeros of a segment's preallocated rest do not count.
pub fn wal_lengths(dir: &Path) -> BTreeMap<PathBuf, u64> {
    files_in(&dir.join("wal"), ".log")
        .into_keys()
        .map(|path| {
            let len = written(&path).len() as u64;
            (path, len)
        })
        .collect()
}

/// A segment's bytes without its preallocated rest (the zeros that end it).
pub fn written(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read a segment");
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    bytes.truncate(end);
    bytes
}

/// Files in `dir` whose names end in `suffix`, with their lengths.
pub fn files_in(dir: &Path, suffix: &str) -> BTreeMap<PathBuf, u64> {
    std::fs::read_dir(dir)
        .expect("list directory")
        .map(|item| item.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .map(|path| {
            let len = std::fs::metadata(&path).expect("stat").len();
            (path, len)
        })
        .collect()
}
