//! Tuning knobs of the [`crate::FileStore`], with their defaults and limits.

use crate::StorageError;

/// How a [`crate::FileStore`] lays out and limits its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// A segment that has grown to this size is sealed, and the next write after a sync starts a
    /// new one. Segments are the unit of compaction. Default 64 MiB.
    pub segment_size_bytes: u64,
    /// The largest record payload written or accepted on recovery: one entry, one hard state,
    /// or a group of entries. A length field above it is corruption and is never allocated.
    /// Default 16 MiB.
    pub max_record_bytes: u64,
    /// The largest snapshot file written or read. Default 1 GiB.
    pub max_snapshot_bytes: u64,
    /// How many snapshot files to keep: the current one and older ones for an operator's
    /// inspection. Default 2.
    pub snapshots_to_keep: usize,
    /// Reserve each new segment's `segment_size_bytes` on disk when it is created (`fallocate`),
    /// as etcd does. Appends then write into blocks the file already owns, within its size, so
    /// an `fdatasync` flushes the data alone instead of also committing the filesystem's journal
    /// for the grown file (on this project's ext4 test machine: 186 → 121 µs p50, 898 → 210 µs
    /// p99). The unwritten rest of a segment reads as zeros, which recovery takes for the end of
    /// the log. The store also writes zeros 1 MiB ahead of its data, which turns the reserved
    /// blocks into written ones a chunk at a time (`FileStore::zero_ahead` says why and what it
    /// measured). Default true; a filesystem that cannot preallocate just appends.
    pub preallocate: bool,
    /// How fast a snapshot this node took is written to its file, on the snapshot's own
    /// thread: in pieces of [`FileStoreOptions::SNAPSHOT_WRITE_CHUNK_BYTES`], each made durable
    /// before the next, no faster than this. Written at once, a snapshot of tens of megabytes
    /// sits in the disk's queue in front of every log `fdatasync` of this node and of the other
    /// members on the same disk until it is flushed: a stall of about 100 ms on this project's
    /// test machine, measured as the p99.9 of Raft's put at 256 clients (75–116 ms with
    /// snapshots, 24–35 ms without). In pieces, a log sync waits behind one piece at most:
    /// 29–72 ms against 70–138 ms, in two alternating runs of four rounds each. 0 writes at once. Default 64 MiB/s (a 32 MiB snapshot in half a second). A snapshot
    /// received from a peer is installed at once, whatever this says.
    pub snapshot_write_bytes_per_sec: u64,
    /// Skip every `fdatasync`/`fsync`. A crash of the machine then loses or tears acknowledged
    /// writes. For throwaway tests and benchmarks only, like etcd's `--unsafe-no-fsync`.
    /// Default false.
    pub unsafe_no_fsync: bool,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: 64 * 1024 * 1024,
            max_record_bytes: 16 * 1024 * 1024,
            max_snapshot_bytes: 1024 * 1024 * 1024,
            snapshots_to_keep: 2,
            preallocate: true,
            snapshot_write_bytes_per_sec: 64 * 1024 * 1024,
            unsafe_no_fsync: false,
        }
    }
}

impl FileStoreOptions {
    /// The smallest segment size accepted; tests use small segments to exercise compaction.
    pub const MIN_SEGMENT_SIZE_BYTES: u64 = 1024;
    /// The smallest record limit accepted: it must fit a hard state and a segment header.
    pub const MIN_RECORD_BYTES: u64 = 256;
    /// The piece a paced snapshot file is written and synced in (see
    /// [`FileStoreOptions::snapshot_write_bytes_per_sec`]).
    pub const SNAPSHOT_WRITE_CHUNK_BYTES: usize = 512 * 1024;

    /// Checks every value; the error names the option, the value and what is accepted.
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.segment_size_bytes < Self::MIN_SEGMENT_SIZE_BYTES {
            return Err(invalid("segment_size_bytes", self.segment_size_bytes, "at least 1024"));
        }
        // The record header stores the payload length in 32 bits.
        if !(Self::MIN_RECORD_BYTES..=u64::from(u32::MAX)).contains(&self.max_record_bytes) {
            return Err(invalid(
                "max_record_bytes",
                self.max_record_bytes,
                "between 256 and 4294967295",
            ));
        }
        if self.max_record_bytes > self.segment_size_bytes {
            return Err(invalid(
                "max_record_bytes",
                self.max_record_bytes,
                "at most segment_size_bytes",
            ));
        }
        if self.max_snapshot_bytes == 0 {
            return Err(invalid("max_snapshot_bytes", self.max_snapshot_bytes, "at least 1"));
        }
        if self.snapshots_to_keep == 0 {
            return Err(invalid("snapshots_to_keep", self.snapshots_to_keep, "at least 1"));
        }
        Ok(())
    }
}

fn invalid(option: &'static str, value: impl ToString, expected: &'static str) -> StorageError {
    StorageError::InvalidOptions { option, value: value.to_string(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        FileStoreOptions::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_option() {
        let bad = FileStoreOptions { segment_size_bytes: 10, ..Default::default() };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("segment_size_bytes = 10"), "{msg}");

        let bad = FileStoreOptions { max_record_bytes: u64::MAX, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("max_record_bytes"));

        let bad = FileStoreOptions {
            segment_size_bytes: 4096,
            max_record_bytes: 8192,
            ..Default::default()
        };
        assert!(bad.validate().is_err());

        let bad = FileStoreOptions { snapshots_to_keep: 0, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("snapshots_to_keep"));
    }
}
