//! Responses, shaped after etcd's `etcdserverpb` messages of the same names.
//!
//! Each carries `revision`, the store revision for etcd's `ResponseHeader.revision`: the
//! revision current after the request (for a read, the store's current revision at the time of
//! the read, even when it read an older one, as etcd does).

use serde::{Deserialize, Serialize};

use crate::KeyValue;

/// The answer to a [`crate::RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `limit` let through.
    pub more: bool,
    /// How many keys are in the range at the read revision (before `limit` and the revision
    /// filters).
    pub count: i64,
}

/// The answer to a [`crate::PutRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub revision: i64,
    /// The key's value before the put, when asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// The answer to a [`crate::DeleteRangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    pub revision: i64,
    pub deleted: i64,
    /// The deleted keys' last values in key order, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// One operation's answer inside a [`TxnResponse`] (`ResponseOp`'s `response` oneof).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

/// The answer to a [`crate::TxnRequest`]; nested as deep as the txn, and bounded by decoding
/// the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct TxnResponse {
    pub revision: i64,
    /// Whether the compares held (so `success` ran).
    pub succeeded: bool,
    /// One response per operation of the branch that ran, in order.
    pub responses: Vec<ResponseOp>,
}

crate::nesting::nesting_serde!(TxnResponse);
