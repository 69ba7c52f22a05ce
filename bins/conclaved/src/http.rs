//! A small HTTP/1.1 server for `/metrics` (Prometheus text format) and `/health`.
//!
//! Two GET endpoints do not need a web framework: requests are read up to a size limit and a
//! timeout, answered, and the connection is closed.

use conclave_core::{Consensus, Role};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const MAX_REQUEST_BYTES: usize = 8 * 1024;
const MAX_CONNECTIONS: usize = 64;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the HTTP endpoints report on.
#[derive(Clone)]
pub struct Endpoints {
    pub metrics: PrometheusHandle,
    pub consensus: Arc<dyn Consensus>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints").finish_non_exhaustive()
    }
}

/// Whether the node can serve: a leader is known (or, for leaderless protocols, the node is an
/// operational member), and it is not stopping.
pub fn healthy(consensus: &dyn Consensus) -> (bool, String) {
    let status = consensus.status();
    let guarantees = consensus.guarantees();
    let ok = if guarantees.has_leader {
        status.leader.is_some()
    } else {
        status.role == Role::Member || status.role == Role::Leader
    };
    let body = format!(
        "{{\"health\":\"{ok}\",\"protocol\":\"{}\",\"role\":\"{}\",\"leader\":{},\"term\":{},\"commit_index\":{},\"applied_index\":{}}}\n",
        status.protocol,
        status.role.as_str(),
        status.leader.map(|l| l.0.to_string()).unwrap_or_else(|| "null".into()),
        status.term,
        status.commit_index,
        status.applied_index,
    );
    (ok, body)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    // Over the connection limit: close at once rather than queue.
                    continue;
                };
                let endpoints = endpoints.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(error) = handle(stream, &endpoints).await {
                        tracing::debug!(%error, "metrics connection failed");
                    }
                });
            }
        }
    }
}

async fn handle(mut stream: TcpStream, endpoints: &Endpoints) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n =
            tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "request read timed out")
            })??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = endpoints.metrics.render();
            respond(&mut stream, 200, "text/plain; version=0.0.4; charset=utf-8", &body).await
        }
        ("GET", "/health") | ("GET", "/healthz") => {
            let (ok, body) = healthy(endpoints.consensus.as_ref());
            respond(&mut stream, if ok { 200 } else { 503 }, "application/json", &body).await
        }
        ("GET", _) => {
            respond(&mut stream, 404, "text/plain", "not found: try /metrics or /health\n").await
        }
        _ => respond(&mut stream, 405, "text/plain", "only GET is served\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
