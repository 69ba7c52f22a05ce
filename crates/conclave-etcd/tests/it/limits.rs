//! Request size limits: etcd's "request is too large" below the gRPC limit, RESOURCE_EXHAUSTED
//! above it, and the server keeps serving either way.

use bytes::Bytes;
use conclave_etcd::pb::etcdserverpb::PutRequest;
use tonic::Code;

use crate::kv::{b, get, put};
use crate::support::TestServer;

fn value_of(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

#[tokio::test]
async fn oversized_requests_are_refused_and_serving_goes_on() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await.max_encoding_message_size(64 << 20);

    // Over max_request_bytes (1.5 MiB) but under the gRPC limit (2 MiB): etcd's own error.
    let err = kv
        .put(PutRequest { key: b("big"), value: value_of(1_600_000), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );

    // Over the gRPC limit: refused before decoding, as grpc-go refuses it for etcd.
    let err = kv
        .put(PutRequest { key: b("huge"), value: value_of(3 << 20), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Nothing was applied, and the same connection still works.
    kv.put(put("small", "ok")).await.unwrap();
    let got = kv.range(get("small")).await.unwrap().into_inner();
    assert_eq!(got.header.unwrap().revision, 2);

    // Just under the limit is fine.
    kv.put(PutRequest { key: b("edge"), value: value_of(1_500_000), ..Default::default() })
        .await
        .unwrap();
}
