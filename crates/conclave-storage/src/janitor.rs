//! Deleting files the store no longer needs, off the thread that owns it.
//!
//! Unlinking a WAL segment or a snapshot file of tens of megabytes makes the filesystem free
//! every block of it, which took 10–17 ms on this project's ext4 test machine (`perf trace
//! --duration 8` on a Raft leader under load): time the node thread, which also answers
//! clients and peers, spent in `unlink`. The store now renames a doomed file to
//! `<name>.trash` — a directory entry changes, nothing is freed — and a `conclave-janitor`
//! thread unlinks it. Renamed files are what a crash may leave behind; every open deletes
//! them before reading anything, and nothing ever reads a name ending in `.trash`.

use crate::{StorageError, fsutil};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

/// What a doomed file is renamed to end with.
const TRASH_SUFFIX: &str = ".trash";

/// The thread that unlinks trash, in the order it was handed over.
#[derive(Debug)]
pub(crate) struct Janitor {
    to_delete: Option<Sender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Janitor {
    /// Starts the thread. If it cannot start, files are deleted on the calling thread instead.
    pub fn start() -> Self {
        let (tx, rx) = channel::<PathBuf>();
        let spawned =
            std::thread::Builder::new().name("conclave-janitor".into()).spawn(move || {
                for path in rx {
                    if let Err(error) = fsutil::remove_file(&path) {
                        // The file stays; the next open deletes it.
                        tracing::warn!(%error, "cannot delete a discarded file");
                    }
                }
            });
        match spawned {
            Ok(thread) => Self { to_delete: Some(tx), thread: Some(thread) },
            Err(error) => {
                tracing::warn!(%error, "cannot start the janitor thread; deleting in place");
                Self { to_delete: None, thread: None }
            }
        }
    }

    /// Renames `path` to trash (at once: no later read or listing sees it under its name) and
    /// has it unlinked on the janitor's thread. A file already gone is done.
    pub fn discard(&self, path: &Path) -> Result<(), StorageError> {
        let mut name = path.as_os_str().to_owned();
        name.push(TRASH_SUFFIX);
        let trash = PathBuf::from(name);
        match std::fs::rename(path, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io("rename", path, e)),
        }
        match &self.to_delete {
            Some(tx) => match tx.send(trash) {
                Ok(()) => Ok(()),
                Err(unsent) => fsutil::remove_file(&unsent.0),
            },
            None => fsutil::remove_file(&trash),
        }
    }

    /// Deletes trash a crash left in `dir` (at open, before anything is read).
    pub fn sweep(dir: &Path) -> Result<(), StorageError> {
        for (name, path) in fsutil::file_names(dir)? {
            if name.ends_with(TRASH_SUFFIX) {
                fsutil::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

impl Drop for Janitor {
    /// Waits for every handed-over file to be gone, so a store reopened after this one is
    /// dropped finds none of them.
    fn drop(&mut self) {
        drop(self.to_delete.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
