//! The peer transport on loopback: delivery in order, batching, fault hooks, reconnects, pings,
//! and refusal of strangers, of links meant for another node, of non-peers and of oversized
//! payloads and frames; payloads in fragments (`fragments`), and over mutual TLS (`tls`).

mod fragments;
mod tls;

use bytes::Bytes;
use conclave_core::NodeId;
use conclave_node::{Inbound, Transport};
use conclave_transport::frame::Kind;
use conclave_transport::{
    DialError, Faults, LinkFault, PeerListener, PeerTransport, TransportConfig, dial,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Starts a receiving node on a loopback port; returns its address, inbox and a stopper.
async fn receiver(
    me: u64,
    members: &[u64],
) -> (SocketAddr, mpsc::Receiver<Inbound>, oneshot::Sender<()>) {
    receiver_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), me, members).await
}

async fn receiver_on(
    listener: TcpListener,
    me: u64,
    members: &[u64],
) -> (SocketAddr, mpsc::Receiver<Inbound>, oneshot::Sender<()>) {
    receiver_with(listener, me, members, TransportConfig::default()).await
}

/// A receiving node on `listener` with its own transport `config`.
async fn receiver_with(
    listener: TcpListener,
    me: u64,
    members: &[u64],
    config: TransportConfig,
) -> (SocketAddr, mpsc::Receiver<Inbound>, oneshot::Sender<()>) {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let members: BTreeSet<NodeId> = members.iter().map(|&m| NodeId(m)).collect();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let server = PeerListener::new(NodeId(me), members, tx, &config, "test");
    tokio::spawn(server.serve(listener, stopping));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = stopped.await;
        let _ = stopping_tx.send(true);
    });
    (addr, rx, stop)
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Option<Inbound> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().flatten()
}

fn transport(me: u64, peers: &[(u64, SocketAddr)], faults: Faults) -> PeerTransport {
    let peers: BTreeMap<NodeId, String> =
        peers.iter().map(|(id, a)| (NodeId(*id), a.to_string())).collect();
    let config = TransportConfig {
        reconnect_backoff_ms_min: 10,
        reconnect_backoff_ms_max: 50,
        ..Default::default()
    };
    PeerTransport::start(NodeId(me), &peers, &config, faults, "test")
}

#[tokio::test]
async fn delivers_in_order_with_the_sender_id() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let t = transport(1, &[(2, addr)], Faults::default());
    for i in 0..1000u32 {
        t.send(NodeId(2), Bytes::from(i.to_le_bytes().to_vec()));
    }
    for i in 0..1000u32 {
        let got = recv(&mut inbox).await.expect("payload not delivered");
        assert_eq!(got.from, NodeId(1));
        assert_eq!(got.payload.as_ref(), i.to_le_bytes());
    }
}

#[tokio::test]
async fn dropped_link_delivers_nothing_until_healed() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let faults = Faults::default();
    let t = transport(1, &[(2, addr)], faults.clone());
    faults.set(NodeId(2), LinkFault { drop: true, ..Default::default() });
    t.send(NodeId(2), Bytes::from_static(b"lost"));
    assert!(tokio::time::timeout(Duration::from_millis(300), inbox.recv()).await.is_err());
    faults.set(NodeId(2), LinkFault::default());
    t.send(NodeId(2), Bytes::from_static(b"kept"));
    assert_eq!(recv(&mut inbox).await.unwrap().payload.as_ref(), b"kept");
}

#[tokio::test]
async fn delayed_link_holds_payloads() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let faults = Faults::default();
    let t = transport(1, &[(2, addr)], faults.clone());
    t.send(NodeId(2), Bytes::from_static(b"warm-up"));
    recv(&mut inbox).await.unwrap();
    faults.set(NodeId(2), LinkFault { drop: false, delay: Duration::from_millis(300) });
    let started = std::time::Instant::now();
    t.send(NodeId(2), Bytes::from_static(b"slow"));
    recv(&mut inbox).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250), "delay fault not applied");
}

#[tokio::test]
async fn reconnects_after_the_peer_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, mut inbox, stop) = receiver_on(listener, 2, &[1, 2]).await;
    let t = transport(1, &[(2, addr)], Faults::default());
    t.send(NodeId(2), Bytes::from_static(b"before"));
    assert_eq!(recv(&mut inbox).await.unwrap().payload.as_ref(), b"before");
    stop.send(()).unwrap();
    drop(inbox);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let (_, mut inbox, _stop) = receiver_on(listener, 2, &[1, 2]).await;
    // Payloads sent while the link is down may be lost; keep sending until one arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        t.send(NodeId(2), Bytes::from_static(b"after"));
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await
        {
            assert_eq!(got.payload.as_ref(), b"after");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reconnected");
    }
}

#[tokio::test]
async fn refuses_a_sender_that_is_not_a_member() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let stranger = transport(9, &[(2, addr)], Faults::default());
    stranger.send(NodeId(2), Bytes::from_static(b"hello"));
    assert!(tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await.is_err());
    // The dialer is told why.
    let config = TransportConfig::default();
    let refused = dial(NodeId(9), NodeId(2), &addr.to_string(), &config).await.unwrap_err();
    assert!(matches!(refused, DialError::Refused { .. }), "{refused}");
    assert!(refused.to_string().contains("node 9 is not a peer of node 2"), "{refused}");
    // So is one that dialed the wrong node, and one that claims to be the listener itself.
    let wrong = dial(NodeId(1), NodeId(3), &addr.to_string(), &config).await.unwrap_err();
    assert!(wrong.to_string().contains("a link for node 3 reached node 2"), "{wrong}");
    let itself = dial(NodeId(2), NodeId(2), &addr.to_string(), &config).await.unwrap_err();
    assert!(itself.to_string().contains("node 2 is not a peer of node 2"), "{itself}");
}

#[tokio::test]
async fn a_member_link_answers_pings_and_delivers() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let config = TransportConfig::default();
    let mut link = dial(NodeId(1), NodeId(2), &addr.to_string(), &config).await.unwrap();
    link.ping().await.expect("a ping is answered");
    link.send(b"direct").await.unwrap();
    let got = recv(&mut inbox).await.unwrap();
    assert_eq!((got.from, got.payload.as_ref()), (NodeId(1), b"direct".as_ref()));
}

#[tokio::test]
async fn something_that_is_not_a_peer_is_turned_away() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    // An HTTP client pointed at the peer port: the listener closes without answering.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    // Closed without a byte of answer (a reset, when our request was still unread, is a close).
    let closed = match &read {
        Ok(Ok(0)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
        _ => false,
    };
    assert!(closed && answer.is_empty(), "the listener should close: {read:?} {answer:?}");
    // A listener that is not a peer (here: one that never answers the hello) times the
    // dialer out instead of hanging it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = TransportConfig { connect_timeout_ms: 300, ..Default::default() };
    let error =
        dial(NodeId(1), NodeId(2), &silent.local_addr().unwrap().to_string(), &config).await;
    assert!(matches!(error, Err(DialError::Timeout { .. })), "{error:?}");
    assert!(inbox.try_recv().is_err());
}

#[tokio::test]
async fn an_oversized_frame_ends_the_link_and_delivers_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut inbox) = mpsc::channel(16);
    let members: BTreeSet<NodeId> = [NodeId(1), NodeId(2)].into();
    let small =
        TransportConfig { max_message_bytes: 1024, max_payload_bytes: 512, ..Default::default() };
    let (_stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(
        PeerListener::new(NodeId(2), members, tx, &small, "test").serve(listener, stopping),
    );
    let (mut reader, mut writer) = fragments::raw_link(addr, 1, 2).await;
    // A sender that ignores the frame limit: the listener refuses the frame unread.
    let _ = writer.write_all(&fragments::frame(Kind::Message, &[7u8; 4096])).await;
    let _ = writer.write_all(&fragments::frame(Kind::Message, b"after")).await;
    assert!(tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await.is_err());
    assert!(fragments::closed(&mut reader).await, "the link should be closed");
}

#[tokio::test]
async fn oversized_payload_is_dropped_and_the_link_keeps_working() {
    let (addr, mut inbox, _stop) = receiver(2, &[1, 2]).await;
    let peers: BTreeMap<NodeId, String> = [(NodeId(2), addr.to_string())].into();
    let config =
        TransportConfig { max_payload_bytes: 1024, max_message_bytes: 4096, ..Default::default() };
    let t = PeerTransport::start(NodeId(1), &peers, &config, Faults::default(), "test");
    t.send(NodeId(2), Bytes::from(vec![0u8; 2048]));
    t.send(NodeId(2), Bytes::from_static(b"small"));
    assert_eq!(recv(&mut inbox).await.unwrap().payload.as_ref(), b"small");
}

#[test]
fn config_validation_names_the_field() {
    let bad = TransportConfig { queue_capacity: 0, ..Default::default() };
    let message = bad.validate().unwrap_err().to_string();
    assert!(message.contains("transport.queue_capacity"), "{message}");
    assert!(TransportConfig::default().validate().is_ok());

    let bad = TransportConfig { max_assembled_bytes: 0, ..Default::default() };
    let message = bad.validate().unwrap_err().to_string();
    assert_eq!(message, "invalid transport.max_assembled_bytes = 0: expected a positive number");
    let bad = TransportConfig {
        max_payload_bytes: 2 << 20,
        max_assembled_bytes: 1 << 20,
        ..Default::default()
    };
    let message = bad.validate().unwrap_err().to_string();
    assert_eq!(
        message,
        "invalid transport.max_payload_bytes = 2097152: expected at most max_assembled_bytes"
    );
    let bad = TransportConfig { max_message_bytes: 63, ..Default::default() };
    let message = bad.validate().unwrap_err().to_string();
    assert!(message.starts_with("invalid transport.max_message_bytes = 63: expected at least 64"));
    // A payload may now be larger than a frame: that is what fragments are for.
    let fragmented = TransportConfig {
        max_message_bytes: 64,
        max_payload_bytes: 1 << 20,
        max_assembled_bytes: 1 << 20,
        ..Default::default()
    };
    fragmented.validate().unwrap();
    // The defaults carry the storage's largest snapshot (1 GiB) and its message.
    let defaults = TransportConfig::default();
    assert!(defaults.max_payload_bytes > 1 << 30 && defaults.max_assembled_bytes > 1 << 30);
}
