//! `max_concurrent_streams` (10,000 by default): concurrent gRPC streams on one client
//! connection, announced to the client as HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS.
//!
//! A client that honours the setting (grpc-go, tonic) waits for a stream to end before it opens
//! another past the limit; one that opens it anyway gets it reset with REFUSED_STREAM, which
//! gRPC reports as UNAVAILABLE. Both are tested here: the first with tonic, the second with
//! HTTP/2 frames written by hand, since no HTTP/2 library will break the rule. Either way the
//! connection and the server go on.

use crate::support::{TestServer, b, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::pb::etcdserverpb::watch_client::WatchClient;
use conclave_etcd::pb::etcdserverpb::watch_request::RequestUnion;
use conclave_etcd::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

type Open = (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>);

/// Opens a watch stream on `channel` and waits for its first watcher to be created.
async fn open_watch(channel: Channel, key: &str) -> Open {
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b(key),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut responses =
        WatchClient::new(channel).watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let created = responses.message().await.unwrap().unwrap();
    assert!(created.created, "{created:?}");
    (tx, responses)
}

#[tokio::test]
async fn a_client_waits_at_the_limit_and_goes_on_when_a_stream_ends() {
    assert_eq!(Limits::default().max_concurrent_streams, 10_000);
    let limit = 2;
    let server =
        TestServer::start(Limits { max_concurrent_streams: limit, ..Limits::default() }).await;
    // One channel: one HTTP/2 connection, whose streams the limit counts.
    let channel =
        Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut streams = Vec::new();
    for i in 0..limit {
        streams.push(open_watch(channel.clone(), &format!("s{i}")).await);
    }
    // One past the limit: the client holds the stream back. It may not open while the others
    // are open; how long we look only bounds the test, it is not what the test asserts.
    let waiting = tokio::spawn(open_watch(channel.clone(), "past"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a stream past the limit opened");
    // Another connection has its own streams.
    still_serving(&mut server.kv().await).await;
    // Ending one stream lets the waiting one open.
    drop(streams.pop());
    let opened = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting stream opens once another ends")
        .unwrap();
    drop(opened);
    drop(streams);
    server.stop().await;
}

/// HTTP/2 frame types and flags used below (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// RST_STREAM's REFUSED_STREAM error code (RFC 9113 §7).
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header field as an HPACK literal without indexing, new name (RFC 7541 §6.2.2); names and
/// values are short, so each length fits the 7-bit prefix.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// The request headers of a Watch call, with no END_STREAM: the stream stays open.
fn watch_headers(authority: &str) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", "POST");
    literal(&mut block, ":scheme", "http");
    literal(&mut block, ":path", "/etcdserverpb.Watch/Watch");
    literal(&mut block, ":authority", authority);
    literal(&mut block, "content-type", "application/grpc");
    literal(&mut block, "te", "trailers");
    block
}

/// Reads frames until `stop` says so, answering the server's SETTINGS; gives up after 30 s.
async fn read_frames(
    conn: &mut TcpStream,
    mut stop: impl FnMut(u8, u32, &[u8]) -> bool,
) -> Vec<(u8, u32, Vec<u8>)> {
    let mut seen = Vec::new();
    let reading = async {
        loop {
            let mut head = [0u8; 9];
            conn.read_exact(&mut head).await.expect("the server keeps the connection open");
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            conn.read_exact(&mut payload).await.unwrap();
            if head[3] == SETTINGS && head[4] & ACK == 0 {
                conn.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
            let done = stop(head[3], stream, &payload);
            seen.push((head[3], stream, payload));
            if done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reading).await.expect("the frames within 30 s");
    seen
}

#[tokio::test]
async fn a_stream_opened_past_the_limit_is_refused_and_the_connection_goes_on() {
    let limit = 2u32;
    let server =
        TestServer::start(Limits { max_concurrent_streams: limit, ..Limits::default() }).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    conn.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    // The server's SETTINGS announce the limit (identifier 0x3, MAX_CONCURRENT_STREAMS).
    let settings = read_frames(&mut conn, |kind, _, _| kind == SETTINGS).await;
    let (_, _, payload) = settings.last().unwrap();
    let announced = payload
        .chunks(6)
        .find(|setting| setting[..2] == [0, 3])
        .map(|setting| u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]));
    assert_eq!(announced, Some(limit));

    // Streams 1 and 3 are within the limit and stay open; stream 5 is one past it.
    let authority = server.addr.to_string();
    for stream in [1u32, 3, 5] {
        conn.write_all(&frame(HEADERS, END_HEADERS, stream, &watch_headers(&authority)))
            .await
            .unwrap();
    }
    let frames = read_frames(&mut conn, |kind, stream, _| {
        kind == GOAWAY || (kind == RST_STREAM && stream == 5)
    })
    .await;
    let (kind, _, payload) = frames.last().unwrap();
    assert_eq!(*kind, RST_STREAM, "the stream is refused, not the connection: {frames:?}");
    assert_eq!(
        u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
        REFUSED_STREAM
    );
    assert!(
        !frames.iter().any(|(kind, stream, _)| *kind == RST_STREAM && *stream != 5),
        "the streams within the limit stay open: {frames:?}"
    );
    // The server is fine, and so is this connection: stream 5's place is still free to take
    // once one of the others ends, which is what tonic's test above shows.
    still_serving(&mut server.kv().await).await;
    drop(conn);
    server.stop().await;
}
