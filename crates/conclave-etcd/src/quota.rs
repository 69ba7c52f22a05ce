//! The space quota: etcd's `--quota-backend-bytes` and its NOSPACE alarm, over the history the
//! store holds in memory.
//!
//! A write that would add to the history ([`cost`] > 0: a put, a txn that puts, a lease grant)
//! is refused with etcd's "database space exceeded" while the store's
//! [`held_bytes`](conclave_kv::KvStore::held_bytes) plus its cost pass
//! [`Limits::quota_bytes`](crate::Limits::quota_bytes). Deletes and compactions always pass:
//! they are how an operator makes room. The check is made by the member the write arrives at,
//! against its own store, so writes in flight at the same moment may pass the quota by their
//! size, as in etcd.
//!
//! A refusal raises this member's NOSPACE alarm (`etcdctl alarm list`); unlike etcd's, the
//! alarm is not replicated and does not outlive the shortage: the next write that fits clears
//! it, and `alarm disarm` clears it at once.

use conclave_kv::{Command, PutRequest, RECORD_OVERHEAD_BYTES, RequestOp, TxnRequest, held_cost};
use std::sync::atomic::{AtomicBool, Ordering};

/// What `command` would add to the held history, in the store's own count; 0 for a command
/// that adds nothing the quota counts (deletes, compactions, reads, auth changes).
pub(crate) fn cost(command: &Command) -> u64 {
    match command {
        Command::Put(put) => put_cost(put),
        Command::Txn(txn) => txn_cost(txn),
        Command::LeaseGrant { .. } => RECORD_OVERHEAD_BYTES,
        _ => 0,
    }
}

fn put_cost(put: &PutRequest) -> u64 {
    held_cost(&put.key, &put.value)
}

/// A txn takes one branch: it costs the dearer one (etcd's `costTxn`).
fn txn_cost(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match op {
                RequestOp::Put(put) => put_cost(put),
                RequestOp::Txn(nested) => txn_cost(nested),
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

/// Whether a write of `cost` bytes fits under `quota` with `held` bytes held.
pub(crate) fn fits(held: u64, cost: u64, quota: u64) -> bool {
    cost == 0 || held.saturating_add(cost) <= quota
}

/// This member's NOSPACE alarm.
#[derive(Debug, Default)]
pub(crate) struct SpaceAlarm(AtomicBool);

impl SpaceAlarm {
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, raised: bool) {
        self.0.store(raised, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use conclave_kv::DeleteRangeRequest;

    fn put(key: &str, value: &str) -> PutRequest {
        PutRequest::new(Bytes::from(key.to_string()), Bytes::from(value.to_string()))
    }

    #[test]
    fn writes_cost_what_they_add_and_deletes_nothing() {
        let o = RECORD_OVERHEAD_BYTES;
        assert_eq!(cost(&Command::Put(put("key", "value"))), 8 + o);
        assert_eq!(cost(&Command::LeaseGrant { id: 1, ttl: 10 }), o);
        assert_eq!(cost(&Command::DeleteRange(DeleteRangeRequest::key(Bytes::from("k")))), 0);
        assert_eq!(cost(&Command::Compact { revision: 5 }), 0);
        let txn = TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp::Put(put("a", "1")), RequestOp::Put(put("b", "22"))],
            failure: vec![RequestOp::Txn(TxnRequest {
                compare: Vec::new(),
                success: vec![RequestOp::Put(put("c", "4444444444"))],
                failure: Vec::new(),
            })],
        };
        // Success: a=1 and b=22, two records (5 bytes); failure: one record of 11 bytes, nested.
        assert_eq!(cost(&Command::Txn(txn.clone())), 5 + 2 * o, "the dearer branch");
        let swapped = TxnRequest { success: txn.failure, failure: txn.success, ..txn };
        assert_eq!(cost(&Command::Txn(swapped)), 5 + 2 * o, "either way round");
    }

    #[test]
    fn a_write_fits_up_to_the_quota_and_free_ones_always() {
        assert!(fits(900, 100, 1000));
        assert!(!fits(901, 100, 1000));
        assert!(fits(5000, 0, 1000), "deletes make room even past the quota");
        assert!(!fits(u64::MAX - 1, 2, u64::MAX - 1), "no overflow at the top");
    }
}
