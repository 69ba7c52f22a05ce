//! The proxy on loopback, in front of an echo server: cuts hold traffic until the heal, delay
//! slows it, and etcd-style callers are recognised by their `X-Server-From` header.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads exactly `n` bytes within `within`, or `None`.
async fn read_n(stream: &mut TcpStream, n: usize, within: Duration) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; n];
    tokio::time::timeout(within, stream.read_exact(&mut buffer)).await.ok()?.ok()?;
    Some(buffer)
}

#[tokio::test]
async fn a_cut_holds_traffic_until_the_heal() {
    let network = Network::new(2, 1);
    let addr = network.listen(Some(0), 1, echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut stream, 4, Duration::from_secs(2)).await.as_deref(), Some(&b"ping"[..]));

    network.cut(0, 1);
    stream.write_all(b"lost?").await.unwrap();
    assert_eq!(read_n(&mut stream, 5, Duration::from_millis(300)).await, None);
    // The other direction's cut does not concern this link.
    assert_eq!(network.cuts(), vec![(0, 1)]);

    network.heal();
    assert_eq!(
        read_n(&mut stream, 5, Duration::from_secs(2)).await.as_deref(),
        Some(&b"lost?"[..])
    );
    network.shutdown();
}

#[tokio::test]
async fn delay_slows_both_directions() {
    let network = Network::new(2, 1);
    let addr = network.listen(Some(0), 1, echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    network.shape_all(LinkShape { delay: Duration::from_millis(100), ..LinkShape::default() });
    let sent = Instant::now();
    stream.write_all(b"slow").await.unwrap();
    assert!(read_n(&mut stream, 4, Duration::from_secs(2)).await.is_some());
    assert!(sent.elapsed() >= Duration::from_millis(200), "{:?}", sent.elapsed());
    assert!(network.stats().bytes >= 8);
}

#[tokio::test]
async fn etcd_callers_are_known_by_their_header() {
    let network = Network::new(2, 1);
    // One listener in front of node 1; node 0 calls it.
    let addr = network.listen(None, 1, echo_server().await).await.unwrap();
    let request = b"GET /raft/stream HTTP/1.1\r\nX-Server-From: 8E9E05C52164694D\r\n\r\n";
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    assert!(read_n(&mut stream, request.len(), Duration::from_secs(2)).await.is_some());
    // Registered after the connection was made, as the lab does once etcd is up.
    network.register_sender("8e9e05c52164694d", 0);
    // etcd connections carry both directions: a cut either way stops them.
    network.cut(1, 0);
    stream.write_all(b"held").await.unwrap();
    assert_eq!(read_n(&mut stream, 4, Duration::from_millis(300)).await, None);
    network.heal();
    assert!(read_n(&mut stream, 4, Duration::from_secs(2)).await.is_some());
}

#[test]
fn unknown_callers_are_cut_only_when_their_target_is_isolated() {
    let network = Network::new(3, 1);
    network.cut(0, 2);
    assert_eq!(network.gate(&Caller::Unknown, 2, true), Gate::Open);
    network.split(&[2], &[0, 1]);
    assert_eq!(network.gate(&Caller::Unknown, 2, true), Gate::Blocked);
    assert_eq!(network.gate(&Caller::Node(0), 1, false), Gate::Open);
}
