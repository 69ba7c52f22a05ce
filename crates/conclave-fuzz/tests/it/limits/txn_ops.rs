//! `max_txn_ops` (etcd's `--max-txn-ops`, 128): more compares, or more operations in either
//! branch, at any depth, is refused with INVALID_ARGUMENT "etcdserver: too many operations in
//! txn request" before anything is proposed.

use crate::support::{TestServer, b, get, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::error::TOO_MANY_OPS;
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::{Compare, PutRequest, RequestOp, TxnRequest, request_op};
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

/// Nesting is bounded by protobuf decoding: prost stops at 100 message levels, and each txn
/// level is two (`TxnRequest`, then `RequestOp`), so the server decodes at most 50 levels and
/// refuses a 51st with INTERNAL "failed to decode Protobuf message", as grpc-go's codec
/// refuses what it cannot unmarshal. At exactly 50 the server applies the txn, but its answer
/// is one level deeper (each response has a header), past what a prost client decodes: that
/// client sees INTERNAL for a write that happened. Go clients (limit 10,000) are unaffected.
#[tokio::test]
async fn nesting_stops_at_the_decoders_recursion_limit() {
    let server = TestServer::start(Limits::default()).await;
    let mut kv = server.kv().await;

    let before = revision(&mut kv).await;
    kv.txn(nested_to(49)).await.expect("49 levels decode both ways");
    assert_eq!(revision(&mut kv).await, before + 1);

    let before = revision(&mut kv).await;
    let err = kv.txn(nested_to(50)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.message().contains("PutResponse.header"),
        "the client's decoder gave up: {}",
        err.message()
    );
    assert_eq!(revision(&mut kv).await, before + 1, "yet the server applied it");

    let before = revision(&mut kv).await;
    let err = kv.txn(nested_to(51)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(
        err.message().starts_with("failed to decode Protobuf message: TxnRequest"),
        "{}",
        err.message()
    );
    assert_eq!(revision(&mut kv).await, before, "a refused txn changes nothing");

    still_serving(&mut kv).await;
    server.stop().await;
}
