//! `max_request_bytes` (etcd's `--max-request-bytes`, 1.5 MiB by default): a write whose
//! command encodes to more is refused with INVALID_ARGUMENT "etcdserver: request is too
//! large"; a gRPC message above `max_request_bytes` + 512 KiB is refused by gRPC itself with
//! RESOURCE_EXHAUSTED before it is decoded, as grpc-go refuses it for etcd.

use crate::support::{TestServer, b, still_serving};
use bytes::Bytes;
use conclave_etcd::config::GRPC_OVERHEAD_BYTES;
use conclave_etcd::pb::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use conclave_etcd::{Limits, error::REQUEST_TOO_LARGE};
use prost::Message;
use tonic::Code;

/// A put of `key` whose command, as the server proposes it, encodes to exactly `size` bytes.
fn put_of_command_size(key: &str, size: usize) -> PutRequest {
    let command_len = |value_len: usize| {
        conclave_kv::Command::Put(conclave_kv::PutRequest::new(
            key.to_string(),
            vec![b'v'; value_len],
        ))
        .encode()
        .len()
    };
    // The value's length prefix is a varint, so step down until the size fits exactly.
    let mut value_len = size;
    while command_len(value_len) > size {
        value_len -= 1;
    }
    assert_eq!(command_len(value_len), size, "no value length gives a {size}-byte command");
    PutRequest { key: b(key), value: Bytes::from(vec![b'v'; value_len]), ..Default::default() }
}

/// A put whose protobuf encoding is exactly `size` bytes.
fn put_of_message_size(size: usize) -> PutRequest {
    let mut value_len = size;
    loop {
        let put = PutRequest {
            key: b("m"),
            value: Bytes::from(vec![b'v'; value_len]),
            ..Default::default()
        };
        match put.encoded_len() {
            n if n == size => return put,
            n if n > size => value_len -= 1,
            _ => panic!("no value length gives a {size}-byte message"),
        }
    }
}

async fn at_and_past(limit: usize) {
    let server = TestServer::start(Limits { max_request_bytes: limit, ..Limits::default() }).await;
    let mut kv = server.kv().await;

    kv.put(put_of_command_size("at", limit))
        .await
        .expect("a command of exactly the limit is accepted");
    let err = kv.put(put_of_command_size("past", limit + 1)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, REQUEST_TOO_LARGE));
    still_serving(&mut kv).await;

    // The gRPC decoding limit sits GRPC_OVERHEAD_BYTES above: at it, the message still
    // reaches the handler (and is refused there); one byte past, gRPC refuses it.
    let grpc_limit = limit + GRPC_OVERHEAD_BYTES;
    let err = kv.put(put_of_message_size(grpc_limit)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, REQUEST_TOO_LARGE));
    let err = kv.put(put_of_message_size(grpc_limit + 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    still_serving(&mut kv).await;

    // Nothing refused was applied: only "at" and the two still-serving puts exist.
    let all = kv
        .range(conclave_etcd::pb::etcdserverpb::RangeRequest {
            key: b("\0"),
            range_end: b("\0"),
            keys_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> =
        all.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect();
    assert_eq!(keys, ["at", "still-serving"]);
    server.stop().await;
}

#[tokio::test]
async fn a_small_configured_limit_holds_exactly() {
    at_and_past(4096).await;
}

#[tokio::test]
async fn the_default_limit_is_etcds_one_and_a_half_mebibytes() {
    assert_eq!(Limits::default().max_request_bytes, 1536 * 1024);
    at_and_past(Limits::default().max_request_bytes).await;
}

/// A txn is one proposal: its whole encoding counts, not each put's.
#[tokio::test]
async fn a_txn_of_small_puts_counts_whole() {
    let server = TestServer::start(Limits { max_request_bytes: 4096, ..Limits::default() }).await;
    let mut kv = server.kv().await;
    let op = |i: usize| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b(&format!("k{i}")),
            value: Bytes::from(vec![b'v'; 100]),
            ..Default::default()
        })),
    };
    let fits = TxnRequest { success: (0..30).map(op).collect(), ..Default::default() };
    kv.txn(fits).await.expect("30 puts of 100 bytes fit in 4096");
    let too_big = TxnRequest { success: (0..50).map(op).collect(), ..Default::default() };
    let err = kv.txn(too_big).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::InvalidArgument, REQUEST_TOO_LARGE));
    still_serving(&mut kv).await;
    server.stop().await;
}
