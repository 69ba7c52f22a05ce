//! The revision rules: one global revision, one new revision per write request that changes
//! something, and per-key create/mod revision and version.

use conclave_kv::{
    Command, DeleteRangeRequest, KvError, KvStore, Output, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

use crate::support::{b, delete, get, put, put_req, txn};

// Reference: etcd3 API, "Revisions": a new store starts at revision 1 and the first write
// creates revision 2.
#[test]
fn empty_store_is_at_revision_one() {
    let store = KvStore::new();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.compact_revision(), 0);
    let resp = store.range(&RangeRequest::key(b("a"))).unwrap();
    assert_eq!(resp.revision, 1);
    assert_eq!(resp.count, 0);
    assert!(resp.kvs.is_empty());
}

// Reference: etcd3 API, "Key-Value pair": create_revision, mod_revision, version.
#[test]
fn each_put_creates_one_revision_and_bumps_the_version() {
    let mut store = KvStore::new();
    assert_eq!(put(&mut store, "a", "1").revision, 2);
    assert_eq!(put(&mut store, "b", "1").revision, 3);
    assert_eq!(put(&mut store, "a", "2").revision, 4);
    let a = get(&store, "a").unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
    assert_eq!(&a.value[..], b"2");
    let b_kv = get(&store, "b").unwrap();
    assert_eq!((b_kv.create_revision, b_kv.mod_revision, b_kv.version), (3, 3, 1));
    assert_eq!(store.current_revision(), 4);
}

// Reference: etcd3 API, "Key-Value pair": a deletion resets the version; a put after it starts a
// new generation with a new create_revision.
#[test]
fn delete_and_recreate_starts_a_new_generation() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1");
    put(&mut store, "k", "v2");
    let del = delete(&mut store, DeleteRangeRequest::key(b("k")));
    assert_eq!((del.deleted, del.revision), (1, 4));
    assert_eq!(get(&store, "k"), None);
    assert_eq!(put(&mut store, "k", "v3").revision, 5);
    let k = get(&store, "k").unwrap();
    assert_eq!((k.create_revision, k.mod_revision, k.version), (5, 5, 1));
}

// Reference: etcd3 API, "DeleteRange": deleting nothing is not a change and makes no revision.
#[test]
fn delete_of_nothing_creates_no_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let del = delete(&mut store, DeleteRangeRequest::key(b("missing")));
    assert_eq!((del.deleted, del.revision), (0, 2));
    assert_eq!(store.current_revision(), 2);
}

// Reference: etcd3 API, "Revisions": one request, one revision, however many keys it touches.
#[test]
fn deleting_many_keys_is_one_revision() {
    let mut store = KvStore::new();
    for key in ["p/1", "p/2", "p/3", "q"] {
        put(&mut store, key, "x");
    }
    let del = delete(&mut store, DeleteRangeRequest::prefix(b("p/")).with_prev_kv());
    assert_eq!((del.deleted, del.revision), (3, 6));
    assert_eq!(crate::support::keys(&del.prev_kvs), ["p/1", "p/2", "p/3"]);
    assert!(get(&store, "q").is_some());
}

// Reference: etcd3 API, "Transaction": all writes of a txn share one revision.
#[test]
fn a_txn_is_one_revision() {
    let mut store = KvStore::new();
    put(&mut store, "gone", "x");
    let resp = txn(
        &mut store,
        TxnRequest {
            success: vec![
                RequestOp::Put(PutRequest::new(b("a"), b("1"))),
                RequestOp::Put(PutRequest::new(b("b"), b("1"))),
                RequestOp::DeleteRange(DeleteRangeRequest::key(b("gone"))),
            ],
            ..TxnRequest::default()
        },
    )
    .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 3);
    assert_eq!(get(&store, "a").unwrap().mod_revision, 3);
    assert_eq!(get(&store, "b").unwrap().mod_revision, 3);
    assert_eq!(store.current_revision(), 3);
}

#[test]
fn read_only_and_empty_txns_create_no_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let read = TxnRequest {
        success: vec![RequestOp::Range(RangeRequest::key(b("a")))],
        ..TxnRequest::default()
    };
    assert_eq!(txn(&mut store, read).unwrap().revision, 2);
    assert_eq!(txn(&mut store, TxnRequest::default()).unwrap().revision, 2);
    // A txn whose only write deletes nothing changes nothing either.
    let noop = TxnRequest {
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest::key(b("missing")))],
        ..TxnRequest::default()
    };
    assert_eq!(txn(&mut store, noop).unwrap().revision, 2);
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn refused_writes_change_nothing() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let before = conclave_core::StateMachine::snapshot(&store);
    assert_eq!(
        put_req(&mut store, PutRequest::new(b("a"), b("2")).with_lease(42)),
        Err(KvError::LeaseNotFound)
    );
    assert_eq!(put_req(&mut store, PutRequest::new(b(""), b("2"))), Err(KvError::EmptyKey));
    let out = store.apply_command(&Command::DeleteRange(DeleteRangeRequest::key(b(""))));
    assert_eq!(out, Output::Error(KvError::EmptyKey));
    assert_eq!(conclave_core::StateMachine::snapshot(&store), before);
}

// Reference: rpc.proto, PutRequest: ignore_value and ignore_lease keep the key's current value
// or lease, need the key to exist, and must not come with a value or lease of their own.
#[test]
fn put_flags_follow_etcd() {
    let mut store = KvStore::new();
    let missing = PutRequest { key: b("k"), ignore_value: true, ..PutRequest::default() };
    assert_eq!(put_req(&mut store, missing.clone()), Err(KvError::KeyNotFound));
    put(&mut store, "k", "v");
    let resp = put_req(&mut store, PutRequest { prev_kv: true, ..missing }).unwrap();
    assert_eq!(&resp.prev_kv.unwrap().value[..], b"v");
    let k = get(&store, "k").unwrap();
    assert_eq!((&k.value[..], k.version), (&b"v"[..], 2));
    let both =
        PutRequest { key: b("k"), value: b("x"), ignore_value: true, ..PutRequest::default() };
    assert_eq!(put_req(&mut store, both), Err(KvError::ValueProvided));
    let both = PutRequest { key: b("k"), lease: 5, ignore_lease: true, ..PutRequest::default() };
    assert_eq!(put_req(&mut store, both), Err(KvError::LeaseProvided));
    // prev_kv is absent when the key did not exist, and only present when asked for.
    assert_eq!(
        put_req(&mut store, PutRequest::new(b("new"), b("1")).with_prev_kv()).unwrap().prev_kv,
        None
    );
    assert_eq!(put(&mut store, "new", "2").prev_kv, None);
}
