//! A bound on the client connections served at once.
//!
//! [`LimitedIncoming`] sits between the listener and the gRPC server: it counts the
//! connections it has handed over that are still open (each carries a [`Slot`] that gives its
//! place back when the server drops the connection, whatever ended it). A connection accepted
//! while `max` are open is never handed over. On a plaintext listener it is told why first, in
//! HTTP/2's own terms: the server's SETTINGS, then a GOAWAY with ENHANCE_YOUR_CALM and the text
//! "etcdserver: too many connections", which gRPC clients report for their call as
//! RESOURCE_EXHAUSTED (tonic) or UNAVAILABLE (grpc-go: etcdctl, clientv3), both of which etcd
//! clients retry, or take to another member. Over TLS (the handshake comes after this layer)
//! it is closed at once. The server goes on serving the connections it has.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::coalesce::Coalesced;
use crate::metrics::{CLIENT_CONNECTIONS, limit_refused};

/// The GOAWAY's debug text, which clients may log.
pub const TOO_MANY_CONNECTIONS: &str = "etcdserver: too many connections";

/// Refused connections being told so at once; more are closed without a word.
const REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refused connection may take to read its GOAWAY and hang up.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Accepted connections, at most `max` of them open at once.
#[derive(Debug)]
pub struct LimitedIncoming<S> {
    inner: S,
    open: Arc<AtomicUsize>,
    max: usize,
    protocol: &'static str,
    /// Whether refused connections get an HTTP/2 GOAWAY (plaintext listeners only).
    goaway: bool,
    refusals: Arc<Semaphore>,
}

impl<S> LimitedIncoming<S> {
    pub fn new(inner: S, max: usize, protocol: &'static str) -> Self {
        Self {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            max,
            protocol,
            goaway: true,
            refusals: Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT)),
        }
    }

    /// For a listener whose connections start with a TLS handshake: refused ones are closed
    /// without an HTTP/2 GOAWAY, which a TLS client could not read.
    pub fn without_goaway(mut self) -> Self {
        self.goaway = false;
        self
    }

    fn refuse(&self, stream: TcpStream) {
        limit_refused(self.protocol, "connections");
        tracing::debug!(
            peer = ?stream.peer_addr().ok(),
            limit = self.max,
            "client connection refused: too many open"
        );
        if !self.goaway {
            return;
        }
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else { return };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_LINGER, goaway(stream)).await;
        });
    }
}

/// Tells an HTTP/2 client that its connection is refused, then waits for it to hang up, so
/// that closing does not reset the connection before the client has read why.
async fn goaway(mut stream: TcpStream) -> io::Result<()> {
    // RFC 9113 §6: an empty SETTINGS frame (the server's preface), then GOAWAY on stream 0
    // with last stream id 0 (no request was processed) and error code ENHANCE_YOUR_CALM.
    let mut frames = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = 8 + TOO_MANY_CONNECTIONS.len() as u32;
    frames.extend_from_slice(&len.to_be_bytes()[1..]);
    frames.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    frames.extend_from_slice(&0u32.to_be_bytes());
    frames.extend_from_slice(&0xbu32.to_be_bytes());
    frames.extend_from_slice(TOO_MANY_CONNECTIONS.as_bytes());
    stream.write_all(&frames).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

impl<S> Stream for LimitedIncoming<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<CountedConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let stream = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(stream))) => stream,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let max = self.max;
            let taken = self
                .open
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                    (open < max).then_some(open + 1)
                })
                .is_ok();
            if !taken {
                self.refuse(stream);
                continue;
            }
            let slot = Slot { open: self.open.clone(), protocol: self.protocol };
            slot.publish();
            return Poll::Ready(Some(Ok(CountedConnection {
                stream: Coalesced::new(stream),
                _slot: slot,
            })));
        }
    }
}

/// One open connection's place in the count.
#[derive(Debug)]
struct Slot {
    open: Arc<AtomicUsize>,
    protocol: &'static str,
}

impl Slot {
    fn publish(&self) {
        let open = self.open.load(Ordering::Acquire);
        metrics::gauge!(CLIENT_CONNECTIONS, "protocol" => self.protocol).set(open as f64);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.publish();
    }
}

/// A TCP connection that holds a place in the count while it is open. Its writes are
/// [`Coalesced`]: the answers of one turn of the node's thread leave in one write.
#[derive(Debug)]
pub struct CountedConnection {
    stream: Coalesced<TcpStream>,
    _slot: Slot,
}

impl Connected for CountedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.get_ref().connect_info()
    }
}

impl AsyncRead for CountedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
