//! Txns: compares, branches, reads inside a txn, nesting, and the checks that refuse a txn whole.

use conclave_kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KvError, KvStore, MAX_TXN_OPS,
    PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest,
};

use crate::support::{b, get, put, txn};

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare::new(b(key), result, target)
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(PutRequest::new(b(key), b(value)))
}

fn get_op(key: &str) -> RequestOp {
    RequestOp::Range(RangeRequest::key(b(key)))
}

/// Whether `compare` holds in `store`, observed through which branch a txn takes.
fn holds(store: &mut KvStore, compare: Compare) -> bool {
    txn(store, TxnRequest { compare: vec![compare], ..TxnRequest::default() }).unwrap().succeeded
}

// Reference: rpc.proto, Compare: targets VERSION, CREATE, MOD, VALUE, LEASE with EQUAL, GREATER,
// LESS, NOT_EQUAL.
#[test]
fn compares_on_every_target() {
    use CompareResult::*;
    use CompareTarget::*;
    let mut s = KvStore::new();
    put(&mut s, "k", "m"); // 2
    put(&mut s, "k", "m"); // 3: version 2, create 2, mod 3
    assert!(holds(&mut s, cmp("k", Equal, Version(2))));
    assert!(holds(&mut s, cmp("k", Greater, Version(1))));
    assert!(holds(&mut s, cmp("k", Less, Version(3))));
    assert!(!holds(&mut s, cmp("k", NotEqual, Version(2))));
    assert!(holds(&mut s, cmp("k", Equal, Create(2))));
    assert!(holds(&mut s, cmp("k", Equal, Mod(3))));
    assert!(holds(&mut s, cmp("k", Less, Mod(4))));
    assert!(holds(&mut s, cmp("k", Equal, Value(b("m")))));
    assert!(holds(&mut s, cmp("k", Greater, Value(b("a")))));
    assert!(holds(&mut s, cmp("k", Less, Value(b("z")))));
    assert!(holds(&mut s, cmp("k", NotEqual, Value(b("x")))));
    assert!(holds(&mut s, cmp("k", Equal, Lease(0))));
}

// Reference: etcd's applyCompare: a missing key compares as zeros, but a value compare on a
// missing key always fails.
#[test]
fn compares_on_missing_keys() {
    use CompareResult::*;
    use CompareTarget::*;
    let mut s = KvStore::new();
    assert!(holds(&mut s, cmp("none", Equal, Version(0))));
    assert!(holds(&mut s, cmp("none", Equal, Create(0))));
    assert!(!holds(&mut s, cmp("none", Equal, Value(b("")))));
    assert!(!holds(&mut s, cmp("none", NotEqual, Value(b("x")))));
}

// Reference: rpc.proto, Compare.range_end: the compare must hold for every key in the range.
#[test]
fn range_compares_need_every_key() {
    use CompareResult::*;
    use CompareTarget::*;
    let mut s = KvStore::new();
    put(&mut s, "p/a", "1");
    put(&mut s, "p/b", "1");
    put(&mut s, "p/b", "2");
    let prefix_end = conclave_kv::prefix_range_end(b"p/");
    assert!(holds(&mut s, cmp("p/", Greater, Version(0)).with_range_end(prefix_end.clone())));
    assert!(!holds(&mut s, cmp("p/", Equal, Version(1)).with_range_end(prefix_end.clone())));
    assert!(holds(&mut s, cmp("p/", Less, Mod(10)).with_range_end(prefix_end)));
}

// Reference: etcd3 API, "Transaction": success runs when all compares hold, failure otherwise;
// responses come one per operation.
#[test]
fn branches_and_responses() {
    let mut s = KvStore::new();
    put(&mut s, "lock", "free");
    let req = |owner: &str| TxnRequest {
        compare: vec![cmp("lock", CompareResult::Equal, CompareTarget::Value(b("free")))],
        success: vec![put_op("lock", owner), get_op("lock")],
        failure: vec![get_op("lock")],
    };
    let first = txn(&mut s, req("alice")).unwrap();
    assert!(first.succeeded);
    assert_eq!(first.revision, 3);
    let [ResponseOp::Put(p), ResponseOp::Range(r)] = &first.responses[..] else { panic!() };
    assert_eq!(p.revision, 3);
    // A range inside the txn sees the txn's own earlier write.
    assert_eq!(&r.kvs[0].value[..], b"alice");
    assert_eq!(r.revision, 3);

    let second = txn(&mut s, req("bob")).unwrap();
    assert!(!second.succeeded);
    let [ResponseOp::Range(r)] = &second.responses[..] else { panic!() };
    assert_eq!(&r.kvs[0].value[..], b"alice");
    assert_eq!(second.revision, 3);
}

// Reference: etcd's compareToPath: nested compares are evaluated at the txn's start, before any
// of its writes.
#[test]
fn nested_txns() {
    use CompareResult::*;
    use CompareTarget::*;
    let mut s = KvStore::new();
    let nested = TxnRequest {
        compare: vec![cmp("a", Equal, Version(0))],
        success: vec![put_op("seen-before", "yes"), get_op("a")],
        failure: vec![put_op("seen-after", "yes")],
    };
    let outer = TxnRequest {
        compare: vec![],
        success: vec![put_op("a", "1"), RequestOp::Txn(nested)],
        failure: vec![],
    };
    let resp = txn(&mut s, outer).unwrap();
    let [ResponseOp::Put(_), ResponseOp::Txn(inner)] = &resp.responses[..] else { panic!() };
    assert!(inner.succeeded, "the nested compare saw the store before the outer put");
    let [ResponseOp::Put(_), ResponseOp::Range(r)] = &inner.responses[..] else { panic!() };
    assert_eq!(&r.kvs[0].value[..], b"1");
    assert!(get(&s, "seen-before").is_some());
    assert!(get(&s, "seen-after").is_none());
    assert_eq!(get(&s, "a").unwrap().mod_revision, get(&s, "seen-before").unwrap().mod_revision);
}

// Reference: etcd's checkTxnReq: at most 128 compares, or operations per branch.
#[test]
fn too_many_ops() {
    let mut s = KvStore::new();
    let ops = |n: usize| (0..n).map(|i| put_op(&format!("k{i}"), "v")).collect::<Vec<_>>();
    let ok = TxnRequest { success: ops(MAX_TXN_OPS), ..TxnRequest::default() };
    assert!(txn(&mut s, ok).is_ok());
    let too_many = TxnRequest { failure: ops(MAX_TXN_OPS + 1), ..TxnRequest::default() };
    let err = txn(&mut s, too_many).unwrap_err();
    assert_eq!(err, KvError::TooManyOps);
    assert_eq!(err.to_string(), "etcdserver: too many operations in txn request");
    let nested = TxnRequest {
        success: vec![RequestOp::Txn(TxnRequest {
            success: ops(MAX_TXN_OPS + 1),
            ..TxnRequest::default()
        })],
        ..TxnRequest::default()
    };
    assert_eq!(txn(&mut s, nested), Err(KvError::TooManyOps));
}

// Reference: etcd's checkIntervals: a branch may not put a key twice or put a key it deletes;
// the two branches of a nested txn exclude each other.
#[test]
fn duplicate_keys() {
    let mut s = KvStore::new();
    let dup = |ops: Vec<RequestOp>| {
        txn(&mut KvStore::new(), TxnRequest { success: ops, ..TxnRequest::default() })
    };
    let err = dup(vec![put_op("a", "1"), put_op("a", "2")]).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: duplicate key given in txn request");
    let del_prefix = RequestOp::DeleteRange(DeleteRangeRequest::prefix(b("a")));
    assert_eq!(dup(vec![del_prefix.clone(), put_op("ab", "1")]), Err(KvError::DuplicateKey));
    let del_from = RequestOp::DeleteRange(DeleteRangeRequest::range(b("m"), b("\0")));
    assert_eq!(dup(vec![put_op("z", "1"), del_from]), Err(KvError::DuplicateKey));
    let nested_put =
        RequestOp::Txn(TxnRequest { success: vec![put_op("ab", "1")], ..TxnRequest::default() });
    assert_eq!(dup(vec![del_prefix.clone(), nested_put]), Err(KvError::DuplicateKey));
    // Overlapping deletes are fine; so is a key put in both branches of a nested txn.
    let del_a = RequestOp::DeleteRange(DeleteRangeRequest::key(b("a")));
    assert!(dup(vec![del_prefix, del_a, put_op("b", "1")]).is_ok());
    let both = RequestOp::Txn(TxnRequest {
        success: vec![put_op("x", "1")],
        failure: vec![put_op("x", "2")],
        ..TxnRequest::default()
    });
    assert!(dup(vec![both.clone(), put_op("y", "1")]).is_ok());
    assert_eq!(dup(vec![both, put_op("x", "3")]), Err(KvError::DuplicateKey));
    // The outer branches are checked separately.
    let split = TxnRequest {
        success: vec![put_op("a", "1")],
        failure: vec![put_op("a", "2")],
        ..TxnRequest::default()
    };
    assert!(txn(&mut s, split).is_ok());
}

// Reference: etcd's Txn: operations on the taken path are checked before anything runs, so a
// refused txn has no effect; the path not taken is not checked.
#[test]
fn a_refused_txn_changes_nothing() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1");
    let bad_lease = RequestOp::Put(PutRequest::new(b("b"), b("1")).with_lease(77));
    let refused =
        TxnRequest { success: vec![put_op("c", "1"), bad_lease.clone()], ..TxnRequest::default() };
    assert_eq!(txn(&mut s, refused), Err(KvError::LeaseNotFound));
    assert_eq!(get(&s, "c"), None);
    assert_eq!(s.current_revision(), 2);
    let untaken = TxnRequest {
        success: vec![put_op("c", "1")],
        failure: vec![bad_lease],
        ..TxnRequest::default()
    };
    assert!(txn(&mut s, untaken).unwrap().succeeded);
    let future = RequestOp::Range(RangeRequest::key(b("a")).with_revision(100));
    let refused = TxnRequest { success: vec![put_op("d", "1"), future], ..TxnRequest::default() };
    assert_eq!(txn(&mut s, refused), Err(KvError::FutureRevision));
    assert_eq!(get(&s, "d"), None);
    let empty = TxnRequest {
        compare: vec![cmp("", CompareResult::Equal, CompareTarget::Version(0))],
        ..TxnRequest::default()
    };
    assert_eq!(txn(&mut s, empty), Err(KvError::EmptyKey));
}

#[test]
fn ranges_inside_a_txn_may_read_history() {
    let mut s = KvStore::new();
    put(&mut s, "a", "old"); // 2
    put(&mut s, "a", "new"); // 3
    let req = TxnRequest {
        success: vec![
            RequestOp::Range(RangeRequest::key(b("a")).with_revision(2)),
            put_op("b", "1"),
        ],
        ..TxnRequest::default()
    };
    let resp = txn(&mut s, req).unwrap();
    let ResponseOp::Range(r) = &resp.responses[0] else { panic!() };
    assert_eq!(&r.kvs[0].value[..], b"old");
}

// Reference: etcd serves read-only txns without the log.
#[test]
fn read_only_txns_on_the_read_path() {
    let mut s = KvStore::new();
    put(&mut s, "a", "1");
    let read = TxnRequest {
        compare: vec![cmp("a", CompareResult::Equal, CompareTarget::Version(1))],
        success: vec![get_op("a")],
        failure: vec![],
    };
    let resp = s.txn_read(&read).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 2);
    let ResponseOp::Range(r) = &resp.responses[0] else { panic!() };
    assert_eq!(&r.kvs[0].value[..], b"1");
    assert_eq!(resp, txn(&mut s, read).unwrap());
    let write = TxnRequest { failure: vec![put_op("b", "1")], ..TxnRequest::default() };
    assert_eq!(s.txn_read(&write), Err(KvError::NotReadOnly));
}
