//! What travels through the log ([`Command`]) and what comes back to the proposer ([`Output`]).
//!
//! Both are postcard-encoded. Decoding never panics: bytes that are not a command become a
//! [`KvError::Decode`], so a corrupt or foreign entry turns into an error output on every replica
//! alike instead of stopping the apply loop.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{AuthCommand, DeleteRangeRequest, DeleteRangeResponse, KvError, PutRequest};
use crate::{PutResponse, TxnRequest, TxnResponse};

/// The most bytes [`Command::guarded`] adds to a command's encoding (a variant tag, the
/// revision and the length, as varints), rounded up.
pub const GUARD_OVERHEAD_BYTES: usize = 32;

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
    /// A change to users, roles or whether auth is on (see `auth.rs`).
    Auth(AuthCommand),
    /// `command` (an encoded [`Command`], not itself guarded) applied only if the auth
    /// revision is still `auth_revision`, the one its permissions were checked against;
    /// otherwise refused with `AuthError::OldRevision`. Carried encoded so that decoding a
    /// guard never recurses.
    Guarded {
        auth_revision: u64,
        command: Bytes,
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
    /// An auth command was applied; `auth_revision` is the auth revision after it.
    Auth {
        revision: i64,
        auth_revision: u64,
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
            // A guard inside a guard is refused when applied, so it writes nothing.
            Self::Guarded { command, .. } => match Self::decode(command) {
                Ok(Self::Guarded { .. }) | Err(_) => false,
                Ok(inner) => inner.is_key_write(),
            },
            Self::Compact { .. }
            | Self::LeaseGrant { .. }
            | Self::LeaseCheckpoint { .. }
            | Self::Auth(_) => false,
        }
    }

    /// `self` wrapped in a [`Command::Guarded`] for `auth_revision`.
    pub fn guarded(&self, auth_revision: u64) -> Self {
        Self::Guarded { auth_revision, command: self.encode() }
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
            | Self::LeaseCheckpoint { revision }
            | Self::Auth { revision, .. } => Some(*revision),
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
    crate::nesting::take_exceeded();
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| {
        if crate::nesting::take_exceeded() {
            KvError::Decode(format!(
                "txn nested deeper than {} levels",
                crate::nesting::MAX_TXN_NESTING
            ))
        } else {
            KvError::Decode(e.to_string())
        }
    })?;
    if !rest.is_empty() {
        return Err(KvError::Decode(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}
