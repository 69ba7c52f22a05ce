//! The replicated state machine: an MVCC key-value store with etcd v3's semantics.
//!
//! Every replica applies the same [`Command`]s in log order to its own [`KvStore`] and ends in
//! the same state, so nothing here reads a clock, draws randomness or iterates a hash map. The
//! store follows etcd's rules:
//!
//! - one global revision (1 when empty); each write request that changes at least one key —
//!   a put, a delete range that deletes something, a txn that writes, a lease revoke that
//!   deletes keys — creates exactly one new revision, shared by all its changes;
//! - per key: `create_revision`, `mod_revision`, `version` (1 on create, +1 per put, gone with a
//!   delete) and `lease`;
//! - reads at any revision from the compaction point up to the current one;
//! - txns that are checked whole before anything changes, so a refused request leaves no trace;
//! - leases that attach keys and delete them on revoke; expiry is decided by the server's
//!   leader, which proposes the revoke, because time must not enter the state machine.
//!
//! Errors carry etcd's messages ([`KvError`]). Requests and responses mirror `etcdserverpb` so
//! the API layer can translate them field by field.

mod auth;
mod auth_perm;
mod command;
mod compact;
mod error;
mod key_index;
mod key_range;
mod kv;
mod lease;
mod nesting;
mod range;
mod request;
mod response;
mod snapshot;
mod snapshot_v1;
mod store;
mod txn;
mod validate;
mod write;

pub use auth::{AuthCommand, AuthError, AuthState, Credential, ROOT_ROLE, ROOT_USER, UserInfo};
pub use auth_perm::{Access, PermType, Permission, permits};
pub use command::{Command, GUARD_OVERHEAD_BYTES, Output};
pub use error::KvError;
pub use key_range::prefix_range_end;
pub use kv::{Event, EventKind, KeyValue};
pub use lease::{LeaseInfo, MAX_LEASE_TTL};
pub use nesting::MAX_TXN_NESTING;
pub use request::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    SortOrder, SortTarget, TxnRequest,
};
pub use response::{DeleteRangeResponse, PutResponse, RangeResponse, ResponseOp, TxnResponse};
pub use store::{EventListener, KvStore, RECORD_OVERHEAD_BYTES, held_cost};
pub use txn::MAX_TXN_OPS;
