//! The bench's gRPC connections: one HTTP/2 connection per channel, requests handed to it
//! directly.
//!
//! tonic's `Channel` puts a buffer task, a reconnecting layer and a timeout layer between a
//! request and its connection: every request crosses a queue to the buffer's task and back, a
//! wake-up of another task on cores the measured servers share with the load generator. The bench
//! needs none of that — a connection that breaks fails its cell's requests, which the cell counts
//! — so it sends each request straight to hyper's HTTP/2 connection, bounded by its own
//! deadline. The gRPC layer (framing, codecs, status) stays tonic's, so the requests on the wire
//! are those of any tonic client.

use conclave_etcd::coalesce::Coalesced;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response, Uri};

/// One HTTP/2 connection to a member, cloned by every client that shares it.
#[derive(Clone, Debug)]
pub struct Connection {
    send: http2::SendRequest<tonic::body::Body>,
    /// A request unanswered after this long fails with `DEADLINE_EXCEEDED`.
    timeout: Duration,
}

impl Connection {
    /// Connects to `endpoint` (`host:port`) within `patience`, with TCP_NODELAY, and runs the
    /// connection on the current runtime. Returns the connection and the origin its requests
    /// name.
    pub async fn open(
        endpoint: &str,
        patience: Duration,
        timeout: Duration,
    ) -> std::io::Result<(Self, Uri)> {
        let origin: Uri = format!("http://{endpoint}").parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad endpoint {endpoint:?}: {e}"),
            )
        })?;
        let stream = tokio::time::timeout(patience, tokio::net::TcpStream::connect(endpoint))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let (send, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(Coalesced::new(stream)))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // A connection that fails ends here; the requests on it fail with it and are counted.
            let _ = connection.await;
        });
        Ok((Self { send, timeout }, origin))
    }
}

impl Service<Request<tonic::body::Body>> for Connection {
    type Response = Response<hyper::body::Incoming>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let response = self.send.send_request(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, response).await {
                Ok(answered) => answered.map_err(Into::into),
                // tonic finds this status in the error and reports it as the call's.
                Err(_) => {
                    Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))
                        .into())
                }
            }
        })
    }
}
