//! KV: put, range, delete, txn and compact, their headers, and etcd's error codes.

use bytes::Bytes;
use conclave_core::ConsensusError;
use conclave_etcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use conclave_etcd::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use conclave_etcd::pb::etcdserverpb::request_op::Request as Op;
use conclave_etcd::pb::etcdserverpb::response_op::Response as OpResponse;
use conclave_etcd::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tonic::Code;

use crate::support::{CLUSTER_ID, TERM, TestServer};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: b(key), value: b(value), ..Default::default() }
}

pub fn get(key: &str) -> RangeRequest {
    RangeRequest { key: b(key), ..Default::default() }
}

pub fn prefix(key: &str) -> RangeRequest {
    RangeRequest {
        key: b(key),
        range_end: conclave_kv::prefix_range_end(key.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test]
async fn put_then_get_carries_revisions_and_header() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;

    let first = kv.put(put("foo", "bar")).await.unwrap().into_inner();
    let header = first.header.unwrap();
    assert_eq!((header.cluster_id, header.member_id, header.raft_term), (CLUSTER_ID, 1, TERM));
    // An empty store is at revision 1; the first write makes 2, as in etcd.
    assert_eq!(header.revision, 2);

    let second =
        kv.put(PutRequest { prev_kv: true, ..put("foo", "baz") }).await.unwrap().into_inner();
    assert_eq!(second.header.unwrap().revision, 3);
    assert_eq!(second.prev_kv.unwrap().value, b("bar"));

    let got = kv.range(get("foo")).await.unwrap().into_inner();
    assert_eq!(got.count, 1);
    let kv0 = &got.kvs[0];
    assert_eq!((kv0.create_revision, kv0.mod_revision, kv0.version), (2, 3, 2));
    assert_eq!(kv0.value, b("baz"));
    assert_eq!(got.header.unwrap().revision, 3);

    // A read at an older revision sees the older value.
    let old = kv.range(RangeRequest { revision: 2, ..get("foo") }).await.unwrap().into_inner();
    assert_eq!(old.kvs[0].value, b("bar"));
}

#[tokio::test]
async fn prefix_limit_sort_keys_only_and_count_only() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    for (k, v) in [("p/a", "1"), ("p/b", "2"), ("p/c", "3"), ("q", "4")] {
        kv.put(put(k, v)).await.unwrap();
    }
    let all = kv.range(prefix("p/")).await.unwrap().into_inner();
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b("p/a"), b("p/b"), b("p/c")]
    );

    let limited = kv.range(RangeRequest { limit: 2, ..prefix("p/") }).await.unwrap().into_inner();
    assert_eq!((limited.kvs.len(), limited.more, limited.count), (2, true, 3));

    let sorted = kv
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Key as i32,
            ..prefix("p/")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sorted.kvs[0].key, b("p/c"));

    let keys =
        kv.range(RangeRequest { keys_only: true, ..prefix("p/") }).await.unwrap().into_inner();
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()));

    let count =
        kv.range(RangeRequest { count_only: true, ..prefix("p/") }).await.unwrap().into_inner();
    assert_eq!((count.kvs.len(), count.count), (0, 3));

    let serializable =
        kv.range(RangeRequest { serializable: true, ..get("q") }).await.unwrap().into_inner();
    assert_eq!(serializable.kvs[0].value, b("4"));
}

#[tokio::test]
async fn delete_range_returns_prev_kvs() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    for k in ["d/1", "d/2", "e"] {
        kv.put(put(k, "v")).await.unwrap();
    }
    let range_end = conclave_kv::prefix_range_end(b"d/");
    let deleted = kv
        .delete_range(DeleteRangeRequest { key: b("d/"), range_end, prev_kv: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 2);
    assert_eq!(deleted.prev_kvs.len(), 2);
    assert_eq!(deleted.header.unwrap().revision, 5);
    assert_eq!(kv.range(prefix("d/")).await.unwrap().into_inner().count, 0);

    // Deleting nothing creates no revision.
    let none =
        kv.delete_range(DeleteRangeRequest { key: b("zz"), ..Default::default() }).await.unwrap();
    assert_eq!(none.into_inner().header.unwrap().revision, 5);
}

fn value_equals(key: &str, value: &str) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Value as i32,
        key: b(key),
        target_union: Some(TargetUnion::Value(b(value))),
        range_end: Bytes::new(),
    }
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp { request: Some(Op::RequestPut(put(key, value))) }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp { request: Some(Op::RequestRange(get(key))) }
}

#[tokio::test]
async fn txn_takes_the_branch_its_compares_choose() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    kv.put(put("t", "1")).await.unwrap();

    let txn = TxnRequest {
        compare: vec![value_equals("t", "1")],
        success: vec![op_put("t", "2"), op_get("t")],
        failure: vec![op_put("t", "failed")],
    };
    let answer = kv.txn(txn.clone()).await.unwrap().into_inner();
    assert!(answer.succeeded);
    assert_eq!(answer.header.unwrap().revision, 3);
    match &answer.responses[1].response {
        Some(OpResponse::ResponseRange(r)) => assert_eq!(r.kvs[0].value, b("2")),
        other => panic!("expected a range response, got {other:?}"),
    }

    // The same txn again fails its compare and runs the failure branch.
    let again = kv.txn(txn).await.unwrap().into_inner();
    assert!(!again.succeeded);
    assert_eq!(kv.range(get("t")).await.unwrap().into_inner().kvs[0].value, b("failed"));

    // A read-only txn is served without a proposal.
    let before = *server.consensus.proposals.lock().unwrap();
    let read = TxnRequest {
        compare: vec![value_equals("t", "failed")],
        success: vec![op_get("t")],
        failure: vec![],
    };
    assert!(kv.txn(read).await.unwrap().into_inner().succeeded);
    assert_eq!(*server.consensus.proposals.lock().unwrap(), before);
}

#[tokio::test]
async fn txn_limits_and_duplicate_keys_follow_etcd() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    let too_many = TxnRequest {
        success: (0..129).map(|i| op_put(&format!("k{i}"), "v")).collect(),
        ..Default::default()
    };
    let err = kv.txn(too_many).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "etcdserver: too many operations in txn request")
    );

    let duplicate =
        TxnRequest { success: vec![op_put("k", "1"), op_put("k", "2")], ..Default::default() };
    let err = kv.txn(duplicate).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "etcdserver: duplicate key given in txn request")
    );
}

#[tokio::test]
async fn compaction_makes_old_revisions_unreadable() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    for v in ["1", "2", "3"] {
        kv.put(put("c", v)).await.unwrap();
    }
    let compacted =
        kv.compact(CompactionRequest { revision: 3, physical: true }).await.unwrap().into_inner();
    assert_eq!(compacted.header.unwrap().revision, 4);

    let err = kv.range(RangeRequest { revision: 2, ..get("c") }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
    );
    let err = kv.range(RangeRequest { revision: 99, ..get("c") }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision")
    );
    let err = kv.compact(CompactionRequest { revision: 2, physical: false }).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
}

#[tokio::test]
async fn errors_carry_etcd_codes_and_texts() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;

    let err = kv.put(put("", "v")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let err = kv.range(get("")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = kv.put(PutRequest { lease: 12345, ..put("k", "v") }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );

    let err = kv.put(PutRequest { ignore_value: true, ..put("missing", "") }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, "etcdserver: key not found"));

    *server.consensus.fail_next.lock().unwrap() = Some(ConsensusError::NotLeader { leader: None });
    let err = kv.put(put("k", "v")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "etcdserver: no leader"));

    *server.consensus.fail_next.lock().unwrap() = Some(ConsensusError::Timeout(5000));
    let err = kv.put(put("k", "v")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "etcdserver: request timed out"));

    *server.consensus.fail_next.lock().unwrap() = Some(ConsensusError::Fatal("disk gone".into()));
    assert_eq!(kv.put(put("k", "v")).await.unwrap_err().code(), Code::Internal);

    // A refused request changed nothing; the next one works.
    kv.put(put("k", "v")).await.unwrap();
    assert_eq!(kv.range(get("k")).await.unwrap().into_inner().kvs[0].version, 1);
}
