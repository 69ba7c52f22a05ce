//! The errors a [`crate::LogStore`] can return.
//!
//! Two families. A refused request ([`StorageError::InvalidBatch`],
//! [`StorageError::RecordTooLarge`]) changed nothing: the store is as it was and the caller may
//! go on. Everything else is fatal for the running store: after a failed write or `fdatasync`
//! nobody can say what reached the disk, so the store refuses further work
//! ([`StorageError::Failed`]) and the node must restart and recover from what is durable.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The operating system refused an operation on `path`.
    #[error("io error ({op}) on {}: {source}", path.display())]
    Io {
        /// What the store was doing: "open", "write", "fdatasync", "rename", ...
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Durable data failed its checks. Recovery never serves anything from it.
    #[error("corrupt data in {} at offset {offset}: {reason}", file.display())]
    Corrupt { file: PathBuf, offset: u64, reason: String },
    /// One record (a hard state, an entry, a snapshot) is bigger than the configured limit.
    /// Nothing was written.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { what: &'static str, size: u64, limit: u64 },
    /// The batch breaks the log's rules (a gap, an older snapshot, index 0). Nothing was
    /// written; this is a bug in the caller.
    #[error("invalid write batch: {0}")]
    InvalidBatch(String),
    /// A configuration value is out of range.
    #[error("invalid storage option {option} = {value}: {expected}")]
    InvalidOptions { option: &'static str, value: String, expected: &'static str },
    /// An earlier failure left the store in an unknown state; restart and recover.
    #[error("store failed earlier and must be reopened: {0}")]
    Failed(String),
}

impl StorageError {
    /// Whether the store may still be used after this error. Only refused requests leave it
    /// usable; after any other error the caller must stop and recover by reopening.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::InvalidBatch(_) | Self::RecordTooLarge { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Self::Corrupt { file: file.into(), offset, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_names_file_and_offset() {
        let e = StorageError::corrupt("wal/0000000000000002.log", 4096, "crc mismatch");
        let msg = e.to_string();
        assert!(msg.contains("wal/0000000000000002.log"), "{msg}");
        assert!(msg.contains("offset 4096"), "{msg}");
        assert!(e.is_fatal());
    }

    #[test]
    fn refused_requests_are_not_fatal() {
        assert!(!StorageError::InvalidBatch("gap".into()).is_fatal());
        let e = StorageError::RecordTooLarge { what: "entry", size: 10, limit: 5 };
        assert!(!e.is_fatal());
        assert_eq!(e.to_string(), "entry of 10 bytes exceeds the limit of 5 bytes");
    }
}
