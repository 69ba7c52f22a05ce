//! What travels through the log ([`Command`]) and what comes back to the proposer ([`Output`]).
//!
//! Both are postcard-encoded. Decoding never panics: bytes that are not a command become a
//! [`KvError::Decode`], so a corrupt or foreign entry turns into an error output on every replica
//! alike instead of stopping the apply loop.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{DeleteRangeRequest, DeleteRangeResponse, KvError, PutRequest, PutResponse};
use crate::{TxnRequest, TxnResponse};

/// A write to the replicated store. Reads are not commands: they are served by
/// [`crate::KvStore::range`] once the protocol's read barrier allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    /// Drops the history below `revision` (etcd's `Compaction`).
    Compact {
        revision: i64,
    },
    /// Creates a lease of `ttl` seconds; `id` 0 lets the store choose one deterministically.
    /// `ttl` is kept as given: raising it to a minimum (etcd uses a multiple of the election
    /// timeout) is the server's choice before it proposes.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Ends a lease and deletes every key attached to it, in one revision.
    LeaseRevoke {
        id: i64,
    },
    /// Records how many seconds a lease had left when the leader last looked (etcd's
    /// `LeaseCheckpoint`), so a new leader resumes the countdown instead of restarting it.
    /// Expiry itself is the server's business: it proposes a revoke when a lease runs out.
    LeaseCheckpoint {
        id: i64,
        remaining_ttl: i64,
    },
}

/// The result of applying a [`Command`]. Every variant but `Error` carries `revision`, the
/// store's revision after the command (etcd's `ResponseHeader.revision`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact {
        revision: i64,
    },
    LeaseGrant {
        id: i64,
        ttl: i64,
        revision: i64,
    },
    LeaseRevoke {
        revision: i64,
    },
    LeaseCheckpoint {
        revision: i64,
    },
    /// The command was refused and changed nothing.
    Error(KvError),
}

impl Command {
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        decode(bytes)
    }

    /// Whether the command can change the store's keys (and so create a revision).
    pub fn is_key_write(&self) -> bool {
        match self {
            Self::Put(_) | Self::DeleteRange(_) | Self::LeaseRevoke { .. } => true,
            Self::Txn(txn) => !txn.is_read_only(),
            Self::Compact { .. } | Self::LeaseGrant { .. } | Self::LeaseCheckpoint { .. } => false,
        }
    }
}

impl Output {
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        decode(bytes)
    }

    /// The store revision after the command, unless it failed.
    pub fn revision(&self) -> Option<i64> {
        match self {
            Self::Put(r) => Some(r.revision),
            Self::DeleteRange(r) => Some(r.revision),
            Self::Txn(r) => Some(r.revision),
            Self::Compact { revision }
            | Self::LeaseGrant { revision, .. }
            | Self::LeaseRevoke { revision }
            | Self::LeaseCheckpoint { revision } => Some(*revision),
            Self::Error(_) => None,
        }
    }

    /// Turns `Error` into `Err`, for callers that want `?`.
    pub fn into_result(self) -> Result<Self, KvError> {
        match self {
            Self::Error(error) => Err(error),
            other => Ok(other),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serializing plain data into a growable buffer cannot fail.
    Bytes::from(postcard::to_stdvec(value).expect("postcard encoding into a Vec is infallible"))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, KvError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| KvError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(KvError::Decode(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}
