//! Requests, shaped after etcd's `etcdserverpb` messages of the same names.
//!
//! Field names and meanings follow `rpc.proto`, so the API layer maps them one to one; the few
//! places where a protobuf `oneof` became a Rust enum ([`RequestOp`], [`CompareTarget`]) say so.
//! The constructors and `with_*` methods are conveniences for callers and tests.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::key_range::prefix_range_end;

/// How range results are ordered (`RangeRequest.SortOrder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortOrder {
    /// Key order, unless a sort target other than the key is given (then ascending by it).
    #[default]
    None,
    Ascend,
    Descend,
}

/// What range results are ordered by (`RangeRequest.SortTarget`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// Reads keys at a revision (`RangeRequest`). `range_end` empty reads the single `key`, `"\0"`
/// every key `>= key`, anything else the keys in `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: Bytes,
    pub range_end: Bytes,
    /// At most this many keys are returned (`more` says whether some were left out); <= 0 for
    /// no limit.
    pub limit: i64,
    /// The revision to read at; <= 0 for the current one.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count of keys in the range.
    pub count_only: bool,
    /// Filters on the returned keys (not on `count`); 0 disables each.
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// Reads the single key `key`.
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self { key: key.into(), ..Self::default() }
    }

    /// Reads the keys in `[key, range_end)` (or per etcd's `"\0"` convention).
    pub fn range(key: impl Into<Bytes>, range_end: impl Into<Bytes>) -> Self {
        Self { key: key.into(), range_end: range_end.into(), ..Self::default() }
    }

    /// Reads every key that starts with `prefix`, as `etcdctl get --prefix` does (an empty
    /// prefix reads every key).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let (key, range_end) = prefix_range(prefix.into());
        Self { key, range_end, ..Self::default() }
    }

    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }
}

/// Writes one key (`PutRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Bytes,
    pub value: Bytes,
    /// The lease to attach the key to; 0 detaches it from any lease.
    pub lease: i64,
    /// Return the key's previous value.
    pub prev_kv: bool,
    /// Keep the key's current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the key's current lease (the key must exist).
    pub ignore_lease: bool,
}

impl PutRequest {
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { key: key.into(), value: value.into(), ..Self::default() }
    }

    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// Deletes a key or a range of keys (`DeleteRangeRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Bytes,
    pub range_end: Bytes,
    /// Return the deleted keys' last values.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self { key: key.into(), ..Self::default() }
    }

    pub fn range(key: impl Into<Bytes>, range_end: impl Into<Bytes>) -> Self {
        Self { key: key.into(), range_end: range_end.into(), ..Self::default() }
    }

    /// Deletes every key that starts with `prefix` (an empty prefix deletes every key).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let (key, range_end) = prefix_range(prefix.into());
        Self { key, range_end, ..Self::default() }
    }

    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// `key` and `range_end` for a prefix, as etcd's client builds them: an empty prefix becomes
/// `"\0"`..`"\0"` (every key), since an empty key is refused.
fn prefix_range(prefix: Bytes) -> (Bytes, Bytes) {
    if prefix.is_empty() {
        return (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
    }
    let range_end = prefix_range_end(&prefix);
    (prefix, range_end)
}

/// How a compare's target relates to the given operand (`Compare.CompareResult`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareResult {
    #[default]
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// What a compare looks at, with its operand (`Compare.target` and the `target_union` oneof).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Bytes),
    Lease(i64),
}

/// One condition of a txn (`Compare`): holds when it holds for every key in the range. A missing
/// key compares as all zeros, except on `Value`, where a missing key always fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Bytes,
    pub range_end: Bytes,
    pub result: CompareResult,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Bytes>, result: CompareResult, target: CompareTarget) -> Self {
        Self { key: key.into(), range_end: Bytes::new(), result, target }
    }

    /// Applies the compare to every key in `[key, range_end)` instead of one key.
    pub fn with_range_end(mut self, range_end: impl Into<Bytes>) -> Self {
        self.range_end = range_end.into();
        self
    }
}

/// One operation of a txn branch (`RequestOp`'s `request` oneof).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

impl RequestOp {
    /// Whether this operation (or any nested in it) writes.
    pub fn is_write(&self) -> bool {
        match self {
            Self::Range(_) => false,
            Self::Put(_) | Self::DeleteRange(_) => true,
            Self::Txn(txn) => !txn.is_read_only(),
        }
    }
}

/// An atomic if/then/else (`TxnRequest`): if every compare holds, `success` runs, else `failure`.
///
/// Decoding refuses txns nested deeper than [`crate::MAX_TXN_NESTING`] levels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

crate::nesting::nesting_serde!(TxnRequest);

impl TxnRequest {
    /// Whether neither branch writes, at any depth: such a txn creates no revision.
    pub fn is_read_only(&self) -> bool {
        !self.success.iter().chain(&self.failure).any(RequestOp::is_write)
    }
}
