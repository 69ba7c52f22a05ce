//! The errors a key-value request can end with.
//!
//! Messages are etcd's own texts, so the API layer can hand them to clients unchanged and
//! `etcdctl` prints what it would print against etcd. The variants are data (serde), because a
//! failed write travels back to its proposer inside an [`crate::Output`].

use serde::{Deserialize, Serialize};

use crate::AuthError;

/// Why a request was refused. None of these change the store: a refused write bumps no revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// The requested revision is older than the compaction point (etcd's `ErrCompacted`).
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision has not happened yet (etcd's `ErrFutureRev`).
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// A put, revoke or checkpoint named a lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A grant named an id that is already in use.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A grant asked for more than [`crate::MAX_LEASE_TTL`] seconds.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A put with `ignore_value` or `ignore_lease` named a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A request, a txn operation or a compare had an empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// A put set both `ignore_value` and a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// A put set both `ignore_lease` and a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn had more than [`crate::MAX_TXN_OPS`] compares, or operations in one branch.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn wrote one key twice, or put a key that it also deletes.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// [`crate::KvStore::txn_read`] was given a txn that writes: writes go through the log.
    #[error("a txn that writes must be applied through the log")]
    NotReadOnly,
    /// An auth command was refused, or a guarded command's auth revision was stale.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Bytes that do not decode as a command or an output (never produced by this crate's
    /// own encoder).
    #[error("malformed request: {0}")]
    Decode(String),
}
