//! Small filesystem helpers shared by the segment and snapshot code.

use crate::StorageError;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Makes the creation, rename or deletion of files in `dir` durable. On Linux a new file's
/// data can be on disk while its directory entry is not; only an fsync of the directory fixes
/// that.
pub(crate) fn sync_dir(dir: &Path, no_fsync: bool) -> Result<(), StorageError> {
    if no_fsync {
        return Ok(());
    }
    let handle = File::open(dir).map_err(|e| StorageError::io("open directory", dir, e))?;
    handle.sync_all().map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// Creates `dir` if it is missing, and makes its creation durable in its parent.
pub(crate) fn ensure_dir(dir: &Path, no_fsync: bool) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StorageError::io("create directory", dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent, no_fsync),
        _ => Ok(()),
    }
}

/// The regular files in `dir`, by name.
pub(crate) fn file_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, StorageError> {
    let mut names = Vec::new();
    let listing = fs::read_dir(dir).map_err(|e| StorageError::io("list directory", dir, e))?;
    for item in listing {
        let item = item.map_err(|e| StorageError::io("list directory", dir, e))?;
        let kind = item.file_type().map_err(|e| StorageError::io("stat", item.path(), e))?;
        if !kind.is_file() {
            continue;
        }
        if let Some(name) = item.file_name().to_str() {
            names.push((name.to_owned(), item.path()));
        }
    }
    names.sort();
    Ok(names)
}

/// Removes a file, treating "already gone" as done.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("delete", path, e)),
    }
}
