//! A byte stream whose writes of one turn of the runtime leave in one `write`.
//!
//! HTTP/2 (h2) writes a connection's queued frames and flushes them every time the connection's
//! task runs. On a single-threaded runtime the answers of a batch (a read round, a commit)
//! complete one after another, and the connection's task runs between them: one `writev` of
//! about 300 bytes per answer, where on loopback each send also runs the receiving end's TCP
//! processing. [`Coalesced`] takes every write into a buffer, and the first flush after a write
//! waits for one more turn of the runtime — it wakes its own task and returns `Pending` — so that
//! the tasks already queued on the thread add their frames behind it; the next flush writes them
//! all at once. The cost is one extra poll of the connection's task per flush.
//!
//! Back-pressure is kept: once [`COALESCE_LIMIT`] bytes wait, a write first drains them into the
//! socket and is `Pending` while the socket is full, so a slow reader holds back its writer
//! instead of growing the buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered at most before a write must first drain them.
pub const COALESCE_LIMIT: usize = 64 * 1024;

/// `S` with its writes coalesced per turn of the runtime (see the module documentation).
#[derive(Debug)]
pub struct Coalesced<S> {
    inner: S,
    /// Bytes accepted and not yet written to `inner`: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    /// The pending flush has already let the runtime turn once.
    flush_deferred: bool,
}

impl<S> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, out: Vec::new(), sent: 0, flush_deferred: false }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes accepted and not yet handed to the stream.
    pub fn buffered(&self) -> usize {
        self.out.len() - self.sent
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes the buffer into the stream; `Pending` while the stream is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for a write: drains the buffer once it holds the limit.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered() >= COALESCE_LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        let mut n = 0;
        for buf in bufs {
            self.out.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    /// `false`, though vectored writes are taken: a writer that believes its stream is vectored
    /// may hand over a large payload as a separate slice, and h2 then flushes before it buffers
    /// its next frame. Here every byte is copied into the buffer anyway, and with a non-vectored
    /// stream h2 copies payloads below 1 KiB into its own buffer instead, so the frames of a
    /// turn's answers reach one flush (see the module documentation).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered() > 0 {
            if !self.flush_deferred {
                // Let the tasks already queued on this thread add their writes first.
                self.flush_deferred = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_drain(cx))?;
        }
        self.flush_deferred = false;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A writer that records each `write` it gets and can refuse to take more than `room` bytes.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        room: Option<usize>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.room.map_or(buf.len(), |room| room.min(buf.len()));
            if n == 0 {
                return Poll::Pending;
            }
            if let Some(room) = &mut self.room {
                *room -= n;
            }
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_before_a_flush_leave_in_one_write_after_one_turn() {
        let mut stream = Coalesced::new(Recorder::default());
        stream.write_all(b"first ").await.unwrap();
        stream.write_all(b"second").await.unwrap();
        assert!(stream.get_ref().writes.is_empty(), "a write alone must not reach the stream");
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // The first flush yields once…
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        stream.write_all(b" third").await.unwrap();
        // …and the second writes everything, in one write.
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        assert_eq!(stream.get_ref().writes, vec![b"first second third".to_vec()]);
        assert_eq!(stream.buffered(), 0);
        // An empty flush does not yield.
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn a_full_buffer_drains_before_taking_more_and_waits_for_a_full_stream() {
        let mut stream = Coalesced::new(Recorder { writes: Vec::new(), room: Some(10) });
        let big = vec![7u8; COALESCE_LIMIT];
        stream.write_all(&big).await.unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // The buffer is at the limit and the stream takes 10 bytes, then nothing: the next write
        // must wait rather than grow the buffer.
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"more").is_pending());
        assert_eq!(stream.buffered(), COALESCE_LIMIT - 10);
        // Once the stream has room again, the write is taken and a flush delivers everything.
        stream.inner.room = None;
        assert!(matches!(Pin::new(&mut stream).poll_write(&mut cx, b"more"), Poll::Ready(Ok(4))));
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut stream).poll_flush(&mut cx).is_ready());
        let written: Vec<u8> = stream.get_ref().writes.concat();
        assert_eq!(written.len(), COALESCE_LIMIT + 4);
        assert_eq!(&written[COALESCE_LIMIT..], b"more");
    }

    #[tokio::test]
    async fn bytes_cross_a_real_socket_whole_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            socket.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut stream = Coalesced::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut expected = Vec::new();
        for i in 0..5_000u32 {
            let chunk = i.to_le_bytes().repeat(1 + (i % 50) as usize);
            stream.write_all(&chunk).await.unwrap();
            expected.extend_from_slice(&chunk);
            if i % 7 == 0 {
                stream.flush().await.unwrap();
            }
        }
        stream.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), expected);
    }

    /// A stream that counts the writes that reach it.
    struct Counted {
        inner: tokio::io::DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(written))
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The answers an HTTP/2 server completes in one turn leave in one write, even when each
    /// carries a payload that h2 would hand a vectored stream as a slice of its own (256 bytes
    /// or more) and flush before the next frame.
    #[tokio::test]
    async fn a_turn_of_http2_answers_with_large_payloads_leaves_in_one_write() {
        const CALLS: usize = 16;
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let server_io = Coalesced::new(Counted { inner: server_io, writes: writes.clone() });

        let (calls_tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut connection = h2::server::handshake(server_io).await.unwrap();
            while let Some(call) = connection.accept().await {
                calls_tx.send(call.unwrap().1).unwrap();
            }
        });
        let (client, connection) = h2::client::handshake(client_io).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..CALLS {
            let request = http::Request::post("http://test/call").body(()).unwrap();
            answers.push(client.send_request(request, true).unwrap().0);
        }
        let mut respond: Vec<_> = Vec::new();
        while respond.len() < CALLS {
            respond.push(calls.recv().await.unwrap());
        }

        // Every answer at once, as a read round's answers are completed on the node's thread.
        let before = writes.load(Ordering::Relaxed);
        for respond in &mut respond {
            let mut stream = respond.send_response(http::Response::new(()), false).unwrap();
            stream.send_data(Bytes::from(vec![7u8; 312]), false).unwrap();
            stream.send_trailers(http::HeaderMap::new()).unwrap();
        }
        for answer in answers {
            let mut body = answer.await.unwrap().into_body();
            let mut received = 0;
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                received += chunk.len();
                body.flow_control().release_capacity(chunk.len()).unwrap();
            }
            assert_eq!(received, 312);
        }
        let sent = writes.load(Ordering::Relaxed) - before;
        assert_eq!(sent, 1, "{CALLS} answers left in {sent} writes");
    }
}
