//! From a client's key-value command to the per-key writes gossip replicates, and back.
//!
//! Gossip replicates `(key, value or tombstone, stamp)`, not commands: each replica's store
//! applies the client's original command locally, and peers apply an equivalent plain put or
//! single-key delete. So a command is turned into writes against the replica's own map — a
//! range delete becomes a tombstone per key it deletes here, a put that keeps its value writes
//! the value held here. A command the store will refuse (an empty key, a txn whose branch writes
//! a key twice) is passed through untouched as [`Plan::LocalOnly`], so the client gets the
//! store's own error and nothing is replicated. What gossip cannot honour is refused as
//! [`Plan::Unsupported`]: compares (no cluster-wide atomicity), leases (node-local), nested
//! txns, and txn reads at an old revision (they could fail on one replica only).

use crate::store::LwwStore;
use bytes::Bytes;
use conclave_kv::{Command, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest};
use std::collections::BTreeSet;

/// One replicated write: `None` deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// What to do with a client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Apply locally and replicate these writes, in order.
    Writes(Vec<Write>),
    /// Apply locally only: node-local commands (compaction, lease bookkeeping, read-only
    /// txns) and commands the store will refuse.
    LocalOnly,
    /// Refuse with `ConsensusError::Unsupported`.
    Unsupported(String),
}

/// Plans `command` (a postcard-encoded [`Command`]) against the map as it is now.
pub fn plan(command: &[u8], store: &LwwStore) -> Plan {
    let Ok(command) = Command::decode(command) else {
        // Not a command: the store answers with its decode error.
        return Plan::LocalOnly;
    };
    match &command {
        Command::Put(put) => match check_put(put, store) {
            Check::Ok => Plan::Writes(vec![put_write(put, store)]),
            Check::StoreRefuses => Plan::LocalOnly,
            Check::Unsupported(why) => Plan::Unsupported(why),
        },
        Command::DeleteRange(delete) if delete.key.is_empty() => Plan::LocalOnly,
        Command::DeleteRange(delete) => {
            Plan::Writes(tombstones(delete, store, &mut BTreeSet::new()))
        }
        Command::Txn(txn) => plan_txn(txn, store),
        Command::Compact { .. }
        | Command::LeaseGrant { .. }
        | Command::LeaseRevoke { .. }
        | Command::LeaseCheckpoint { .. } => Plan::LocalOnly,
        // Users and roles would be node-local, and a member could grant itself anything.
        Command::Auth(_) | Command::Guarded { .. } => Plan::Unsupported(AUTH_UNSUPPORTED.into()),
    }
}

/// The command a peer applies for a replicated write: a plain put, or a single-key delete.
pub fn encode_write(key: &Bytes, value: Option<&Bytes>) -> Bytes {
    match value {
        Some(value) => Command::Put(PutRequest::new(key.clone(), value.clone())).encode(),
        None => Command::DeleteRange(DeleteRangeRequest::key(key.clone())).encode(),
    }
}

/// Decodes a write encoded by [`encode_write`]; `None` for any other command.
pub fn decode_write(command: &[u8]) -> Option<Write> {
    match Command::decode(command).ok()? {
        Command::Put(put) => Some(Write { key: put.key, value: Some(put.value) }),
        Command::DeleteRange(delete) if delete.range_end.is_empty() => {
            Some(Write { key: delete.key, value: None })
        }
        _ => None,
    }
}

enum Check {
    Ok,
    StoreRefuses,
    Unsupported(String),
}

const AUTH_UNSUPPORTED: &str = "authentication (users and roles would be node-local)";

const LEASES_UNSUPPORTED: &str = "leases are node-local under gossip; write without a lease";

/// The store's own checks on a put (etcd's `checkPutRequest` and the key-must-exist rule of
/// `ignore_value` / `ignore_lease`), plus gossip's refusal of leases.
fn check_put(put: &PutRequest, store: &LwwStore) -> Check {
    if put.lease != 0 {
        return Check::Unsupported(LEASES_UNSUPPORTED.into());
    }
    if put.key.is_empty() || (put.ignore_value && !put.value.is_empty()) {
        return Check::StoreRefuses;
    }
    let live = store.get(&put.key).is_some_and(|v| !v.is_tombstone());
    if (put.ignore_value || put.ignore_lease) && !live {
        return Check::StoreRefuses;
    }
    Check::Ok
}

fn put_write(put: &PutRequest, store: &LwwStore) -> Write {
    let value = if put.ignore_value {
        store.get(&put.key).and_then(|v| v.value.clone()).unwrap_or_default()
    } else {
        put.value.clone()
    };
    Write { key: put.key.clone(), value: Some(value) }
}

/// A tombstone for every key the delete removes here that an earlier delete of the same
/// command has not already removed.
fn tombstones(
    delete: &DeleteRangeRequest,
    store: &LwwStore,
    gone: &mut BTreeSet<Bytes>,
) -> Vec<Write> {
    store
        .live_keys_in(&delete.key, &delete.range_end)
        .into_iter()
        .filter(|k| gone.insert(k.clone()))
        .map(|key| Write { key, value: None })
        .collect()
}

fn plan_txn(txn: &TxnRequest, store: &LwwStore) -> Plan {
    if !txn.compare.is_empty() {
        return Plan::Unsupported(
            "txn compares need cluster-wide atomicity; gossip offers none".into(),
        );
    }
    if txn.is_read_only() {
        return Plan::LocalOnly;
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Txn(_) => return Plan::Unsupported("nested txns under gossip".into()),
            RequestOp::Put(put) if put.lease != 0 => {
                return Plan::Unsupported(LEASES_UNSUPPORTED.into());
            }
            RequestOp::Range(range) if range.revision > 0 => {
                return Plan::Unsupported("txn reads at a past revision under gossip".into());
            }
            _ => {}
        }
    }
    if !branch_is_valid(&txn.success) || !branch_is_valid(&txn.failure) {
        return Plan::LocalOnly;
    }
    // With no compares, the success branch runs.
    let mut writes = Vec::new();
    let mut gone = BTreeSet::new();
    for op in &txn.success {
        match op {
            RequestOp::Put(put) => match check_put(put, store) {
                Check::Ok => writes.push(put_write(put, store)),
                Check::StoreRefuses | Check::Unsupported(_) => return Plan::LocalOnly,
            },
            RequestOp::DeleteRange(delete) => writes.extend(tombstones(delete, store, &mut gone)),
            RequestOp::Range(_) | RequestOp::Txn(_) => {}
        }
    }
    Plan::Writes(writes)
}

/// The store's stateless checks on one branch of a flat txn: at most `MAX_TXN_OPS` operations,
/// no empty key, valid puts, and no key written twice (by two puts, or by a put that a delete
/// of the branch covers).
fn branch_is_valid(ops: &[RequestOp]) -> bool {
    if ops.len() > conclave_kv::MAX_TXN_OPS {
        return false;
    }
    let deletes: Vec<&DeleteRangeRequest> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut puts = BTreeSet::new();
    for op in ops {
        match op {
            RequestOp::Range(range) if range.key.is_empty() => return false,
            RequestOp::DeleteRange(delete) if delete.key.is_empty() => return false,
            RequestOp::Put(put) => {
                let invalid = put.key.is_empty()
                    || (put.ignore_value && !put.value.is_empty())
                    || (put.ignore_lease && put.lease != 0);
                let covered = deletes.iter().any(|d| covers(d, &put.key));
                if invalid || covered || !puts.insert(put.key.clone()) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Whether a delete's `key`/`range_end` (etcd's convention) covers `key`.
fn covers(delete: &DeleteRangeRequest, key: &[u8]) -> bool {
    match &delete.range_end[..] {
        [] => key == &delete.key[..],
        [0] => key >= &delete.key[..],
        end => key >= &delete.key[..] && key < end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::{Hlc, Stamp};
    use conclave_core::NodeId;
    use conclave_kv::{Compare, CompareResult, CompareTarget};

    fn store() -> LwwStore {
        let mut store = LwwStore::new(false);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            let stamp = Stamp::new(Hlc::new(i as u64 + 1, 0), NodeId(1));
            store.set(Bytes::from(k), Some(Bytes::from("v")), stamp, 0);
        }
        store
    }

    #[test]
    fn range_delete_becomes_a_tombstone_per_live_key() {
        let cmd = Command::DeleteRange(DeleteRangeRequest::range("a", "c")).encode();
        let expected = vec![
            Write { key: Bytes::from("a"), value: None },
            Write { key: Bytes::from("b"), value: None },
        ];
        assert_eq!(plan(&cmd, &store()), Plan::Writes(expected));
    }

    #[test]
    fn compares_and_leases_are_unsupported() {
        let txn = TxnRequest {
            compare: vec![Compare::new("a", CompareResult::Equal, CompareTarget::Version(1))],
            ..TxnRequest::default()
        };
        assert!(matches!(plan(&Command::Txn(txn).encode(), &store()), Plan::Unsupported(_)));
        let put = Command::Put(PutRequest::new("a", "1").with_lease(7)).encode();
        assert!(matches!(plan(&put, &store()), Plan::Unsupported(_)));
    }

    #[test]
    fn store_refusals_pass_through() {
        let put = Command::Put(PutRequest::new("", "1")).encode();
        assert_eq!(plan(&put, &store()), Plan::LocalOnly);
        let dup = TxnRequest {
            success: vec![
                RequestOp::Put(PutRequest::new("x", "1")),
                RequestOp::Put(PutRequest::new("x", "2")),
            ],
            ..TxnRequest::default()
        };
        assert_eq!(plan(&Command::Txn(dup).encode(), &store()), Plan::LocalOnly);
    }

    #[test]
    fn writes_round_trip() {
        let key = Bytes::from("k");
        let value = Bytes::from("v");
        let put = encode_write(&key, Some(&value));
        assert_eq!(decode_write(&put), Some(Write { key: key.clone(), value: Some(value) }));
        assert_eq!(decode_write(&encode_write(&key, None)), Some(Write { key, value: None }));
    }

    #[test]
    fn auth_commands_are_refused() {
        let enable = Command::Auth(conclave_kv::AuthCommand::Enable);
        assert!(matches!(plan(&enable.encode(), &store()), Plan::Unsupported(_)));
        let guarded = Command::Put(PutRequest::new("k", "v")).guarded(1);
        assert!(matches!(plan(&guarded.encode(), &store()), Plan::Unsupported(_)));
    }
}
