//! Oversized and malformed client requests get etcd-like error codes, and the server keeps
//! serving.

use crate::support::{runtime, serial, start};
use bytes::{Buf, BufMut, Bytes};
use conclave_etcd::pb::etcdserverpb::PutRequest;
use conclave_lab::client::connect;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Endpoint;

/// Sends and receives raw message bytes, so a test can put garbage on the wire.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_call(endpoint: &str, path: &'static str, body: Bytes) -> Result<Bytes, tonic::Status> {
    let channel =
        Endpoint::from_shared(format!("http://{endpoint}")).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawCodec).await.map(|r| r.into_inner())
}

async fn put(endpoint: &str, value: Vec<u8>) -> Result<(), tonic::Status> {
    let mut client = connect(endpoint).await.unwrap();
    client
        .put(PutRequest { key: b"big".to_vec().into(), value: value.into(), ..Default::default() })
        .await
        .map(|_| ())
}

#[test]
fn oversized_and_malformed_requests_are_refused_and_the_server_keeps_serving() {
    let _serial = serial();
    let rt = runtime();
    let cluster = start(&rt, "raft", 3, "");
    let endpoint = cluster.endpoints()[0].clone();
    rt.block_on(async {
        // Just under etcd's default 1.5 MiB limit: accepted.
        put(&endpoint, vec![7u8; 1024 * 1024]).await.expect("a 1 MiB value fits");
        // Over it: refused with etcd's code and text, before the consensus sees it.
        let status =
            put(&endpoint, vec![7u8; 2 * 1024 * 1024]).await.expect_err("2 MiB is over the limit");
        assert!(
            matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted),
            "oversized: {status:?}"
        );
        // Malformed protobuf: a field tag with an impossible wire type.
        let status =
            raw_call(&endpoint, "/etcdserverpb.KV/Put", Bytes::from_static(&[0x0f, 0xff, 0xff]))
                .await
                .expect_err("garbage is not a PutRequest");
        assert!(
            matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::Internal),
            "malformed: {status:?}"
        );
        // A valid request whose key is empty: etcd's "key is not provided".
        let status =
            raw_call(&endpoint, "/etcdserverpb.KV/Put", Bytes::from_static(&[0x12, 0x01, b'v']))
                .await
                .expect_err("an empty key is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("key is not provided"), "{status:?}");
        // An unknown method.
        let status =
            raw_call(&endpoint, "/etcdserverpb.KV/Frobnicate", Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
        // Still serving.
        tokio::time::sleep(Duration::from_millis(100)).await;
        conclave_lab::client::put(&endpoint, "after", "ok").await.expect("still serving");
        assert_eq!(
            conclave_lab::client::get(&endpoint, "after", false).await.unwrap().as_deref(),
            Some(&b"ok"[..])
        );
    });
}
