//! Txns: compares, branches, nested txns, and the checks that make them all-or-nothing.
//!
//! As in etcd, a txn is decided before it runs: every compare — the nested txns' too — is
//! evaluated against the store as it was when the txn began, which fixes the path through the
//! branches. Then every operation on that path is checked (leases exist, keys kept by
//! `ignore_*` exist, read revisions are held). Only then does the path run; operations see the
//! txn's own earlier writes, and all writes share one revision.

use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::key_range::KeyRange;
use crate::write::{Batch, check_put_request};
use crate::{Compare, CompareResult, CompareTarget, KeyValue, KvError, KvStore, RangeResponse};
use crate::{RangeRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse};

/// The most compares, or operations in one branch, a txn may have (etcd's `--max-txn-ops`
/// default).
pub const MAX_TXN_OPS: usize = 128;

/// The branches a txn takes: whether its compares held, and the same for each nested txn on the
/// taken branch, in order.
#[derive(Debug)]
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

impl KvStore {
    /// Applies a txn through the log.
    pub(crate) fn apply_txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        check_txn(req)?;
        let path = self.decide(req, self.state.revision);
        self.check_path(req, &path)?;
        let mut batch = self.begin();
        let mut resp = self.execute(&mut batch, req, &path);
        resp.revision = self.commit(batch);
        Ok(resp)
    }

    /// Answers a read-only txn (one for which [`TxnRequest::is_read_only`] holds) on the read
    /// path, as etcd serves them without the log. A txn that writes is refused with
    /// [`KvError::NotReadOnly`].
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        if !req.is_read_only() {
            return Err(KvError::NotReadOnly);
        }
        check_txn(req)?;
        let view = self.state.revision;
        let path = self.decide(req, view);
        self.check_path(req, &path)?;
        Ok(self.execute_read(req, &path, view))
    }

    fn decide(&self, req: &TxnRequest, view: i64) -> Path {
        let succeeded = req.compare.iter().all(|c| self.compare_holds(c, view));
        let nested = branch(req, succeeded)
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(txn) => Some(self.decide(txn, view)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    /// etcd's `applyCompare`: the compare must hold for every key in its range; an empty range
    /// compares a zero record, except that a value compare on missing keys always fails.
    fn compare_holds(&self, compare: &Compare, view: i64) -> bool {
        let range = KeyRange::new(&compare.key, &compare.range_end);
        let mut any = false;
        if let Some(bounds) = range.bounds() {
            for (_, history) in self.state.index.range::<_, [u8]>(bounds) {
                let Some(kv) = self.kv_at(history, view) else { continue };
                any = true;
                if !compare_kv(compare, kv) {
                    return false;
                }
            }
        }
        any || (!matches!(compare.target, CompareTarget::Value(_))
            && compare_kv(compare, &KeyValue::default()))
    }

    /// Checks every operation on the path against the state the txn begins from.
    fn check_path(&self, req: &TxnRequest, path: &Path) -> Result<(), KvError> {
        let mut nested = path.nested.iter();
        for op in branch(req, path.succeeded) {
            match op {
                RequestOp::Range(range) if range.revision > 0 => {
                    self.read_revision(range.revision, self.state.revision)?;
                }
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
                RequestOp::Put(put) => self.check_put_state(put)?,
                RequestOp::Txn(txn) => {
                    let path = nested.next().expect("invariant: a path per nested txn");
                    self.check_path(txn, path)?;
                }
            }
        }
        Ok(())
    }

    /// Runs a checked path; nothing here can fail.
    fn execute(&mut self, batch: &mut Batch, req: &TxnRequest, path: &Path) -> TxnResponse {
        let mut nested = path.nested.iter();
        let mut responses = Vec::new();
        for op in branch(req, path.succeeded) {
            let response = match op {
                RequestOp::Range(range) => {
                    ResponseOp::Range(self.range_in_txn(range, self.batch_view(batch)))
                }
                RequestOp::Put(put) => ResponseOp::Put(self.put_in(batch, put)),
                RequestOp::DeleteRange(delete) => {
                    ResponseOp::DeleteRange(self.delete_range_in(batch, delete))
                }
                RequestOp::Txn(txn) => {
                    let path = nested.next().expect("invariant: a path per nested txn");
                    ResponseOp::Txn(self.execute(batch, txn, path))
                }
            };
            responses.push(response);
        }
        TxnResponse { revision: self.batch_view(batch), succeeded: path.succeeded, responses }
    }

    fn execute_read(&self, req: &TxnRequest, path: &Path, view: i64) -> TxnResponse {
        let mut nested = path.nested.iter();
        let mut responses = Vec::new();
        for op in branch(req, path.succeeded) {
            match op {
                RequestOp::Range(range) => {
                    responses.push(ResponseOp::Range(self.range_in_txn(range, view)));
                }
                RequestOp::Txn(txn) => {
                    let path = nested.next().expect("invariant: a path per nested txn");
                    responses.push(ResponseOp::Txn(self.execute_read(txn, path, view)));
                }
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => {
                    unreachable!("invariant: a read-only txn has no writes")
                }
            }
        }
        TxnResponse { revision: view, succeeded: path.succeeded, responses }
    }

    /// A range inside a txn: at its own revision if it names one (checked before the txn ran),
    /// else at the txn's current view.
    fn range_in_txn(&self, req: &RangeRequest, view: i64) -> RangeResponse {
        let at = if req.revision > 0 { req.revision } else { view };
        self.range_view(req, at, view)
    }
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &req.success } else { &req.failure }
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Value(value) => kv.value[..].cmp(&value[..]),
        CompareTarget::Version(version) => kv.version.cmp(version),
        CompareTarget::Create(revision) => kv.create_revision.cmp(revision),
        CompareTarget::Mod(revision) => kv.mod_revision.cmp(revision),
        CompareTarget::Lease(lease) => kv.lease.cmp(lease),
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
    }
}

/// The checks that need no state (etcd's `checkTxnReq` and `checkIntervals`).
fn check_txn(req: &TxnRequest) -> Result<(), KvError> {
    check_shape(req)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

/// Sizes and keys, at every depth.
fn check_shape(req: &TxnRequest) -> Result<(), KvError> {
    if req.compare.len() > MAX_TXN_OPS
        || req.success.len() > MAX_TXN_OPS
        || req.failure.len() > MAX_TXN_OPS
    {
        return Err(KvError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        match op {
            RequestOp::Range(range) if range.key.is_empty() => return Err(KvError::EmptyKey),
            RequestOp::DeleteRange(delete) if delete.key.is_empty() => {
                return Err(KvError::EmptyKey);
            }
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
            RequestOp::Put(put) => check_put_request(put)?,
            RequestOp::Txn(txn) => check_shape(txn)?,
        }
    }
    Ok(())
}

/// Refuses a branch that could write one key twice: two puts of a key, or a put of a key that a
/// delete in the same branch (at any depth) covers. The two branches of a nested txn exclude
/// each other, so a key put in both is fine. Returns the keys put and the ranges deleted.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Bytes>, Vec<KeyRange>), KvError> {
    let mut deletes: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(KeyRange::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let deleted = |deletes: &[KeyRange], key: &Bytes| deletes.iter().any(|d| d.contains(key));
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(txn) = op else { continue };
        let (then_puts, then_deletes) = check_intervals(&txn.success)?;
        let (else_puts, else_deletes) = check_intervals(&txn.failure)?;
        for key in &then_puts {
            if puts.contains(key) || deleted(&deletes, key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in else_puts {
            let clash = puts.contains(&key) && !then_puts.contains(&key);
            if clash || deleted(&deletes, &key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(key);
        }
        deletes.extend(then_deletes);
        deletes.extend(else_deletes);
    }
    for op in ops {
        let RequestOp::Put(put) = op else { continue };
        if puts.contains(&put.key) || deleted(&deletes, &put.key) {
            return Err(KvError::DuplicateKey);
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, deletes))
}
