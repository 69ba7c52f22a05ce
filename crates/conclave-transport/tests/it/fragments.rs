//! Payloads larger than a frame: split into fragments by the sender, reassembled whole by the
//! receiver, in order with the small payloads around them; the receiver's limit on an assembled
//! payload, a link cut in the middle of one, and the wire format version in the hello.

use super::{receiver, receiver_with, recv};
use bytes::{Bytes, BytesMut};
use conclave_core::NodeId;
use conclave_node::{Inbound, Transport};
use conclave_transport::frame::{FrameReader, HELLO_LEN, Hello, Kind, VERSION, put_frame};
use conclave_transport::{Faults, PeerTransport, TransportConfig, dial};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// One frame's bytes.
pub fn frame(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_frame(&mut out, kind, body);
    out.to_vec()
}

/// A first fragment announcing `total` bytes and carrying `bytes`.
fn first_fragment(total: u64, bytes: &[u8]) -> Vec<u8> {
    let mut body = total.to_be_bytes().to_vec();
    body.extend_from_slice(bytes);
    frame(Kind::FirstFragment, &body)
}

/// A hand-driven link from `from` to `to`, accepted by the listener: what a misbehaving or
/// crashing peer looks like on the wire.
pub async fn raw_link(
    addr: SocketAddr,
    from: u64,
    to: u64,
) -> (FrameReader<OwnedReadHalf>, OwnedWriteHalf) {
    let (read, mut write) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    write.write_all(&Hello { from: NodeId(from), to: NodeId(to) }.encode()).await.unwrap();
    let mut reader = FrameReader::new(read, 1 << 20);
    let (kind, body) = reader.next().await.unwrap().expect("an answer to the hello");
    assert_eq!(kind, Kind::Accept, "{}", String::from_utf8_lossy(&body));
    (reader, write)
}

/// Whether the listener closed the link (within a bound, so a test never hangs).
pub async fn closed(reader: &mut FrameReader<OwnedReadHalf>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.next()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

/// `len` pseudo-random bytes (xorshift from `seed`): a fragment out of place, repeated or
/// missing cannot go unnoticed.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

fn start(me: u64, peers: &[(u64, SocketAddr)], config: &TransportConfig) -> PeerTransport {
    let peers: BTreeMap<NodeId, String> =
        peers.iter().map(|(id, a)| (NodeId(*id), a.to_string())).collect();
    let config = TransportConfig {
        reconnect_backoff_ms_min: 10,
        reconnect_backoff_ms_max: 50,
        ..config.clone()
    };
    PeerTransport::start(NodeId(me), &peers, &config, Faults::default(), "test")
}

/// The next payload, waiting up to a minute (a large payload on a loaded machine).
async fn recv_large(inbox: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(60), inbox.recv())
        .await
        .expect("no payload within a minute")
        .expect("the listener is gone")
}

pub fn assert_same(got: &Bytes, sent: &Bytes) {
    assert_eq!(got.len(), sent.len(), "the payload arrived with another length");
    let first_difference = got.iter().zip(sent.iter()).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the payload arrived with other bytes");
}

#[tokio::test]
async fn a_100_mib_payload_arrives_whole_between_the_small_ones_around_it() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let t = start(1, &[(2, addr)], &TransportConfig::default());
    let large = pattern(100 << 20, 42);
    let started = Instant::now();
    t.send(NodeId(2), Bytes::from_static(b"before"));
    t.send(NodeId(2), large.clone());
    t.send(NodeId(2), Bytes::from_static(b"after"));
    assert_eq!(recv_large(&mut inbox).await.payload.as_ref(), b"before");
    let got = recv_large(&mut inbox).await;
    let elapsed = started.elapsed();
    assert_eq!(got.from, NodeId(1));
    assert_same(&got.payload, &large);
    assert_eq!(recv_large(&mut inbox).await.payload.as_ref(), b"after");
    eprintln!(
        "100 MiB in 100 fragments over plain TCP: {elapsed:?} ({:.0} MiB/s)",
        100.0 / elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn payloads_at_and_past_a_fragment_keep_their_order_with_small_frames() {
    // 64-byte frames: fragments of 55 bytes, so every size below crosses many of them.
    let small = TransportConfig {
        max_message_bytes: 64,
        max_payload_bytes: 1 << 20,
        max_assembled_bytes: 1 << 20,
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, mut inbox, _stop) = receiver_with(listener, 2, &[1, 2], small.clone()).await;
    let t = start(1, &[(2, addr)], &small);
    let sizes = [0, 1, 54, 55, 56, 110, 111, 1000, 4096, 100_000, 3, 55, 56, 300_000, 7];
    let sent: Vec<Bytes> =
        sizes.iter().enumerate().map(|(i, &len)| pattern(len, i as u64 + 1)).collect();
    for payload in &sent {
        t.send(NodeId(2), payload.clone());
    }
    for payload in &sent {
        let got = recv_large(&mut inbox).await;
        assert_same(&got.payload, payload);
    }
}

#[tokio::test]
async fn a_peer_announcing_more_than_the_assembly_limit_is_cut_off() {
    let limited = TransportConfig {
        max_message_bytes: 4096,
        max_payload_bytes: 64 * 1024,
        max_assembled_bytes: 64 * 1024,
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, mut inbox, _stop) = receiver_with(listener, 2, &[1, 2], limited.clone()).await;

    // A gigabyte announced, a few bytes sent: cut off at the announcement.
    let (mut reader, mut writer) = raw_link(addr, 1, 2).await;
    writer.write_all(&first_fragment(1 << 30, &[1; 100])).await.unwrap();
    let _ = writer.write_all(&frame(Kind::Fragment, &[2; 100])).await;
    assert!(closed(&mut reader).await, "the link should be closed");

    // Exactly the limit, announced and sent, is fine.
    let (_reader, mut writer) = raw_link(addr, 1, 2).await;
    let at_limit = pattern(64 * 1024, 9);
    writer.write_all(&first_fragment(at_limit.len() as u64, &at_limit[..4000])).await.unwrap();
    for part in at_limit[4000..].chunks(4000) {
        writer.write_all(&frame(Kind::Fragment, part)).await.unwrap();
    }
    assert_same(&recv_large(&mut inbox).await.payload, &at_limit);

    // A node whose own limits are larger (a misconfigured member) sends a payload past the
    // receiver's limit: it never arrives, and the link carries small payloads again after the
    // reconnect.
    let generous = TransportConfig {
        max_payload_bytes: 1 << 20,
        max_assembled_bytes: 1 << 20,
        ..limited.clone()
    };
    let t = start(1, &[(2, addr)], &generous);
    t.send(NodeId(2), pattern(200 * 1024, 5));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        t.send(NodeId(2), Bytes::from_static(b"small"));
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
        {
            assert_eq!(got.payload.as_ref(), b"small", "only small payloads may arrive");
            break;
        }
        assert!(Instant::now() < deadline, "the link never carried payloads again");
    }
}

#[tokio::test]
async fn a_link_cut_mid_payload_delivers_nothing_and_the_next_link_works() {
    let frames = TransportConfig { max_message_bytes: 4096, ..Default::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, mut inbox, _stop) = receiver_with(listener, 2, &[1, 2], frames.clone()).await;
    let payload = pattern(10_000, 3);

    // 8,000 of 10,000 bytes, a ping answered between two fragments, then the sender crashes.
    let (mut reader, mut writer) = raw_link(addr, 1, 2).await;
    writer.write_all(&first_fragment(10_000, &payload[..4000])).await.unwrap();
    writer.write_all(&frame(Kind::Ping, &7u64.to_be_bytes())).await.unwrap();
    let (kind, body) = reader.next().await.unwrap().unwrap();
    assert_eq!((kind, body.as_ref()), (Kind::Pong, 7u64.to_be_bytes().as_ref()));
    writer.write_all(&frame(Kind::Fragment, &payload[4000..8000])).await.unwrap();
    drop((reader, writer));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await.is_err(),
        "part of a payload was delivered"
    );

    // The next link starts from nothing: its first fragment is not taken for the rest of the
    // cut payload, and the whole payload arrives once.
    let (_reader, mut writer) = raw_link(addr, 1, 2).await;
    writer.write_all(&first_fragment(10_000, &payload[..4000])).await.unwrap();
    writer.write_all(&frame(Kind::Fragment, &payload[4000..8000])).await.unwrap();
    writer.write_all(&frame(Kind::Fragment, &payload[8000..])).await.unwrap();
    writer.write_all(&frame(Kind::Message, b"next")).await.unwrap();
    assert_same(&recv_large(&mut inbox).await.payload, &payload);
    assert_eq!(recv(&mut inbox).await.unwrap().payload.as_ref(), b"next");

    // A payload that stops and gives way to a new one is a broken stream: nothing of it is
    // delivered, not even the message that interrupted it.
    let (mut reader, mut writer) = raw_link(addr, 1, 2).await;
    writer.write_all(&first_fragment(10_000, &payload[..4000])).await.unwrap();
    let _ = writer.write_all(&frame(Kind::Message, b"interrupting")).await;
    assert!(closed(&mut reader).await, "the link should be closed");
    assert!(tokio::time::timeout(Duration::from_millis(300), inbox.recv()).await.is_err());

    // And a real dialer's large payload goes through.
    let mut link = dial(NodeId(1), NodeId(2), &addr.to_string(), &frames).await.unwrap();
    let large = pattern(3 << 20, 11);
    link.send(&large).await.unwrap();
    assert_same(&recv_large(&mut inbox).await.payload, &large);
}

#[tokio::test]
async fn a_hello_of_another_version_is_refused_naming_both_versions() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let mut hello: [u8; HELLO_LEN] = Hello { from: NodeId(1), to: NodeId(2) }.encode();
    hello[8..12].copy_from_slice(&1u32.to_be_bytes());
    let (read, mut write) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    write.write_all(&hello).await.unwrap();
    let mut reader = FrameReader::new(read, 1 << 20);
    let answer = tokio::time::timeout(Duration::from_secs(5), reader.next()).await;
    let (kind, reason) = answer.expect("an answer").unwrap().expect("a frame");
    let reason = String::from_utf8_lossy(&reason).into_owned();
    assert_eq!(kind, Kind::Refuse, "{reason}");
    assert_eq!(
        reason,
        format!("peer wire format version 1 is not supported: this node speaks version {VERSION}")
    );
    assert!(closed(&mut reader).await);
    assert!(inbox.try_recv().is_err());
}
