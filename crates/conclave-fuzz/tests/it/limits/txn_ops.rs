//! `max_txn_ops` (etcd's `--max-txn-ops`, 128): more compares, or more operations in either
//! branch, at any depth, is refused with INVALID_ARGUMENT "etcdserver: too many operations in
//! txn request" before anything is proposed.

use crate::support::{TestServer, b, get, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::config::MAX_TXN_NESTING;
use conclave_etcd::error::{TOO_MANY_OPS, TXN_TOO_DEEP};
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};
use tonic::Code;
use tonic::transport::Channel;

fn put_op(i: usize) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b(&format!("k{i:03}")),
            value: b("v"),
            ..Default::default()
        })),
    }
}

fn compare(i: usize) -> Compare {
    // Version of a missing key is 0, and EQUAL is the default result: every compare holds.
    Compare { key: b(&format!("c{i}")), ..Default::default() }
}

fn puts(n: usize) -> Vec<RequestOp> {
    (0..n).map(put_op).collect()
}

fn nested(inner: TxnRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestTxn(inner)) }
}

#[tokio::test]
async fn at_the_default_limit_and_one_past() {
    let limit = Limits::default().max_txn_ops;
    assert_eq!(limit, 128);
    let server = TestServer::start(Limits::default()).await;
    let mut kv = server.kv().await;

    let answer = kv
        .txn(TxnRequest {
            compare: (0..limit).map(compare).collect(),
            success: puts(limit),
            failure: puts(limit),
        })
        .await
        .expect("128 compares and 128 operations per branch are accepted")
        .into_inner();
    assert!(answer.succeeded);
    assert_eq!(answer.responses.len(), limit);
    // One txn, one revision, however many keys it wrote.
    assert_eq!(answer.header.unwrap().revision, 2);

    let past = [
        TxnRequest { compare: (0..=limit).map(compare).collect(), ..Default::default() },
        TxnRequest { success: puts(limit + 1), ..Default::default() },
        TxnRequest { failure: puts(limit + 1), ..Default::default() },
        TxnRequest {
            success: vec![nested(TxnRequest { success: puts(limit + 1), ..Default::default() })],
            ..Default::default()
        },
    ];
    for txn in past {
        let err = kv.txn(txn).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::InvalidArgument, TOO_MANY_OPS));
    }
    still_serving(&mut kv).await;
    let missing = kv.range(get("k128")).await.unwrap().into_inner();
    assert!(missing.kvs.is_empty(), "no refused txn wrote anything");
    server.stop().await;
}

#[tokio::test]
async fn a_lower_configured_limit_holds() {
    let server = TestServer::start(Limits { max_txn_ops: 4, ..Limits::default() }).await;
    let mut kv = server.kv().await;
    kv.txn(TxnRequest { success: puts(4), ..Default::default() }).await.unwrap();
    let err = kv.txn(TxnRequest { success: puts(5), ..Default::default() }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, TOO_MANY_OPS));
    still_serving(&mut kv).await;
    server.stop().await;
}

/// conclave-kv enforces etcd's 128 on its own, so a higher API limit does not lift it: the
/// store refuses with the same code and text.
#[tokio::test]
async fn the_store_caps_a_higher_configured_limit_at_128() {
    let server = TestServer::start(Limits { max_txn_ops: 200, ..Limits::default() }).await;
    let mut kv = server.kv().await;
    let err = kv.txn(TxnRequest { success: puts(129), ..Default::default() }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, TOO_MANY_OPS));
    still_serving(&mut kv).await;
    server.stop().await;
}

/// A txn `depth` levels deep: each level's success branch holds the next level.
fn nested_to(depth: usize) -> TxnRequest {
    let mut txn = TxnRequest { success: puts(1), ..Default::default() };
    for _ in 1..depth {
        txn = TxnRequest { success: vec![nested(txn)], ..Default::default() };
    }
    txn
}

/// The store's current revision.
async fn revision(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(get("any")).await.unwrap().into_inner().header.unwrap().revision
}

/// Nesting: 49 levels are accepted, 50 are refused with INVALID_ARGUMENT "etcdserver: too many
/// nested txns in txn request" before anything is proposed — a 50-level txn still decodes on
/// the server (prost stops at 100 message levels, and a txn level is two: `TxnRequest`, then
/// `RequestOp`), but its answer is one message level deeper (each response op has a header),
/// past what a prost client decodes, so applying it would give such a client INTERNAL for a
/// write that happened. A 51st level is refused by the server's own protobuf decoder, with
/// INTERNAL "failed to decode Protobuf message", as grpc-go's codec refuses what it cannot
/// unmarshal. Nothing refused changes the store.
#[tokio::test]
async fn nesting_stops_where_every_client_can_decode_the_answer() {
    assert_eq!(MAX_TXN_NESTING, 49);
    let server = TestServer::start(Limits::default()).await;
    let mut kv = server.kv().await;

    let before = revision(&mut kv).await;
    let answer = kv.txn(nested_to(MAX_TXN_NESTING)).await.expect("49 levels, both ways");
    assert_eq!(answer.into_inner().header.unwrap().revision, before + 1);
    assert_eq!(revision(&mut kv).await, before + 1);

    let before = revision(&mut kv).await;
    let err = kv.txn(nested_to(MAX_TXN_NESTING + 1)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, TXN_TOO_DEEP));
    assert_eq!(revision(&mut kv).await, before, "a refused txn changes nothing");

    let err = kv.txn(nested_to(MAX_TXN_NESTING + 2)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.message().starts_with("failed to decode Protobuf message: TxnRequest"),
        "{}",
        err.message()
    );
    assert_eq!(revision(&mut kv).await, before, "a refused txn changes nothing");

    // A read-only txn is refused at the same depth: its answer is just as deep.
    let mut read = RangeRequest { key: b("k"), ..Default::default() };
    read.limit = 1;
    let mut deep = TxnRequest {
        success: vec![RequestOp { request: Some(request_op::Request::RequestRange(read)) }],
        ..Default::default()
    };
    for _ in 1..=MAX_TXN_NESTING {
        deep = TxnRequest { success: vec![nested(deep)], ..Default::default() };
    }
    let err = kv.txn(deep).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, TXN_TOO_DEEP));

    still_serving(&mut kv).await;
    server.stop().await;
}
