//! The storage seam: [`LogStore`] and the [`WriteBatch`] one `Ready` asks it to persist.
//!
//! # The log a store keeps
//!
//! A store holds three things: the latest [`Snapshot`], the last hard state (opaque protocol
//! bytes), and the log entries after the snapshot — contiguous, starting at
//! `snapshot.meta.index + 1` (or at 1 without a snapshot). [`LogStore::last_index`] is the index
//! of the last entry, or the snapshot's index when no entry follows it.
//!
//! A [`WriteBatch`] is applied in field order:
//!
//! 1. `snapshot` replaces the stored one and drops every entry with index `<= meta.index`;
//!    entries after it stay. A snapshot older than the stored one is refused.
//! 2. `hard_state` replaces the stored hard state.
//! 3. `entries` must be contiguous and start at most one past the last index. When they start at
//!    or below it, every stored entry from `entries[0].index` on is dropped first (a conflicting
//!    suffix). Entries a snapshot already covers are skipped.
//! 4. `compact_to` lets the store discard entries up to `min(compact_to, snapshot index)`.
//!    Since the snapshot already dropped them from the log, this only frees space (the file store
//!    deletes segments); it never removes an entry that no snapshot covers, so what is recovered
//!    stays contiguous.
//!
//! A batch that breaks these rules is refused with [`StorageError::InvalidBatch`] and changes
//! nothing.
//!
//! # Durability: to ensure correctness
//!
//! - Nothing written is durable until [`LogStore::sync`] returns `Ok`. The caller must not send
//!   a message, acknowledge a client or apply an entry that depends on a write before that.
//! - After `sync` returns `Ok`, every write staged before it survives any crash: a restart
//!   recovers exactly that state, or a later one.
//! - **A write is all-or-nothing on recovery.** A crash keeps the synced state followed by some
//!   prefix of the later writes, in order, each one whole: never part of a batch. So a batch
//!   that replaces a conflicting suffix can never come back as the suffix's removal without
//!   the entries that replace it — entries an earlier, synced batch made durable are not lost
//!   by a later batch that a crash cut short. Nothing else appears.
//! - After any fatal error ([`StorageError::is_fatal`]) the store refuses further work; the
//!   caller must stop and reopen it. A failed `fdatasync` cannot be retried safely, because the
//!   kernel may already have dropped the dirty pages it could not write.
//! - Recovery truncates a torn tail (what a crash during an unsynced write leaves behind) and
//!   refuses, with [`StorageError::Corrupt`], to serve a log that is damaged anywhere else.

use crate::StorageError;
use conclave_core::{Entry, Ready, Snapshot};

/// What one `Ready` asks to persist. Applied in field order: snapshot, hard_state, entries,
/// compact_to.
///
/// A batch is the unit of atomicity: a write is all-or-nothing on recovery. A crash before the
/// next [`LogStore::sync`] may lose the whole batch, but never keeps part of it.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteBatch<'a> {
    /// Replaces the older snapshot; drops log entries with index `<= snapshot.meta.index`.
    pub snapshot: Option<&'a Snapshot>,
    /// With `snapshot`: the snapshot came from a peer and replaces the whole log, so entries
    /// after its index are dropped too (they may belong to a history that lost; Raft §7).
    /// A snapshot this node took of its own state leaves them (false).
    pub discard_log: bool,
    /// Opaque protocol bytes; replaces the previous hard state.
    pub hard_state: Option<&'a [u8]>,
    /// Appended; if `entries[0].index <= last index`, the suffix from `entries[0].index` is
    /// dropped first.
    pub entries: &'a [Entry],
    /// Entries with index `<= compact_to` may be discarded (a snapshot covers them).
    pub compact_to: Option<u64>,
}

impl<'a> WriteBatch<'a> {
    /// The persistence part of a protocol's `Ready`.
    pub fn from_ready<M>(ready: &'a Ready<M>) -> Self {
        Self {
            snapshot: ready.snapshot.as_ref(),
            discard_log: ready.snapshot.is_some(),
            hard_state: ready.hard_state.as_deref(),
            entries: &ready.entries,
            compact_to: ready.compact_to,
        }
    }

    /// Whether the batch asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.compact_to.is_none()
    }
}

/// A durable home for a protocol's log, hard state and snapshot.
///
/// See the [module documentation](self) for the rules a batch follows and the durability
/// contract every implementation must keep; [`crate::conformance`] checks both.
///
/// # To ensure correctness
///
/// Callers: carry out a `Ready` as `write`, then `sync`, then send its messages — never send
/// first. On any error for which [`StorageError::is_fatal`] holds, stop the node and reopen the
/// store; do not retry.
///
/// Implementations: apply a batch wholly or (when refusing it) not at all; make `sync` cover
/// every earlier `write`; and recover only states the contract allows — the synced state plus a
/// prefix of later writes, each whole (a write is all-or-nothing on recovery), never a damaged
/// record.
pub trait LogStore: Send + 'static {
    /// Stages the batch. Not durable until `sync` returns Ok.
    ///
    /// # To ensure correctness
    ///
    /// The batch is visible at once to [`LogStore::last_index`] and to the next `write`'s
    /// checks, but a crash may lose it — all of it, never only part: a write is all-or-nothing
    /// on recovery. A refused batch (`InvalidBatch`, `RecordTooLarge`) changed nothing and the
    /// store stays usable.
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError>;

    /// Makes every staged write durable (fdatasync for files). One sync for many writes = group
    /// commit.
    ///
    /// # To ensure correctness
    ///
    /// Only after `Ok` may the caller act on the writes (send messages, acknowledge). An `Err`
    /// is fatal: whether any staged write reached the disk is unknown.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Index of the last entry stored (staged or synced), or the snapshot index if the log is
    /// empty.
    fn last_index(&self) -> u64;

    /// Something that writes snapshot files on another thread, ahead of the [`LogStore::write`]
    /// that installs them; `None` if this store keeps snapshots some other way (then `write`
    /// stores the snapshot itself, as always).
    fn snapshot_writer(&self) -> Option<crate::SnapshotWriter> {
        None
    }

    /// The latest snapshot stored (staged or synced), read back whole: what a protocol that
    /// let go of its snapshot's data asks for to send it to a peer
    /// ([`conclave_core::Ready::snapshot_wanted`]).
    fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError>;
}

impl<S: LogStore + ?Sized> LogStore for Box<S> {
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        (**self).write(batch)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        (**self).sync()
    }

    fn last_index(&self) -> u64 {
        (**self).last_index()
    }

    fn snapshot_writer(&self) -> Option<crate::SnapshotWriter> {
        (**self).snapshot_writer()
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        (**self).load_snapshot()
    }
}
