//! The sending side: a bounded queue and a streaming task per peer.

use crate::pb::peer_client::PeerClient;
use crate::pb::{Batch, Ping};
use crate::{Faults, TransportConfig};
use bytes::Bytes;
use conclave_core::NodeId;
use conclave_node::Transport;
use metrics::{Counter, Histogram, counter, histogram};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// Sends protocol payloads to peers over one long-lived gRPC stream each.
pub struct GrpcTransport {
    queues: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    faults: Faults,
    max_payload_bytes: usize,
    dropped: Counter,
}

impl fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTransport").field("peers", &self.queues.keys()).finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// Starts one sender task per peer (`id → host:port`) on the current tokio runtime.
    /// Connections are made lazily and retried forever with backoff.
    ///
    /// `protocol` labels the transport's metrics.
    pub fn start(
        me: NodeId,
        peers: &BTreeMap<NodeId, String>,
        config: &TransportConfig,
        faults: Faults,
        protocol: &'static str,
    ) -> Self {
        let mut queues = BTreeMap::new();
        for (&peer, address) in peers {
            if peer == me {
                continue;
            }
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            queues.insert(peer, tx);
            let link = Link {
                me,
                peer,
                address: address.clone(),
                config: config.clone(),
                faults: faults.clone(),
                round_trip: histogram!(
                    conclave_core::metrics::PEER_ROUND_TRIP_SECONDS,
                    "protocol" => protocol,
                    "peer" => peer.to_string()
                ),
            };
            tokio::spawn(link.run(rx));
        }
        Self {
            queues,
            faults,
            max_payload_bytes: config.max_payload_bytes,
            dropped: counter!(conclave_core::metrics::PEER_MESSAGES_DROPPED_TOTAL, "protocol" => protocol),
        }
    }

    /// The fault hooks of this node's outgoing links.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl Transport for GrpcTransport {
    fn send(&self, to: NodeId, payload: Bytes) {
        if payload.len() > self.max_payload_bytes {
            tracing::error!(%to, len = payload.len(), limit = self.max_payload_bytes, "payload over the transport limit; dropped");
            self.dropped.increment(1);
            return;
        }
        if self.faults.get(to).drop {
            return;
        }
        let Some(queue) = self.queues.get(&to) else {
            tracing::warn!(%to, "no such peer; payload dropped");
            return;
        };
        if queue.try_send(payload).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// One outgoing link and its reconnect loop.
struct Link {
    me: NodeId,
    peer: NodeId,
    address: String,
    config: TransportConfig,
    faults: Faults,
    round_trip: Histogram,
}

/// How often an open link measures its round trip.
const PING_INTERVAL: Duration = Duration::from_secs(1);

impl Link {
    async fn run(self, mut queue: mpsc::Receiver<Bytes>) {
        let min = Duration::from_millis(self.config.reconnect_backoff_ms_min);
        let max = Duration::from_millis(self.config.reconnect_backoff_ms_max);
        let mut backoff = min;
        // The last TLS failure warned about, so a misconfigured link warns once, not at every
        // retry.
        let mut warned: Option<String> = None;
        loop {
            match self.connect().await {
                Ok(client) => {
                    backoff = min;
                    warned = None;
                    tracing::debug!(peer = %self.peer, address = %self.address, "peer stream open");
                    if !self.pump(client, &mut queue).await {
                        return;
                    }
                    tracing::debug!(peer = %self.peer, "peer stream closed; reconnecting");
                }
                Err(error) => {
                    // A peer that is down is routine (trace); a certificate the handshake
                    // refused (wrong CA, a server naming another node) is a misconfiguration or
                    // an impostor, and the source chain is the only place that tells which.
                    let chain = ErrorChain(&error).to_string();
                    if self.config.tls.is_some() && chain.contains("certificate") {
                        if warned.as_deref() != Some(chain.as_str()) {
                            tracing::warn!(peer = %self.peer, address = %self.address, error = %chain, "TLS handshake with peer failed; retrying");
                            warned = Some(chain);
                        }
                    } else {
                        tracing::trace!(peer = %self.peer, error = %chain, "cannot connect to peer");
                    }
                }
            }
            // Drain what queued while disconnected: stale protocol messages are worth less
            // than fresh ones, and the protocols retransmit what matters.
            while queue.try_recv().is_ok() {}
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    }

    async fn connect(
        &self,
    ) -> Result<PeerClient<tonic::transport::Channel>, tonic::transport::Error> {
        let scheme = if self.config.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", self.address))?
            .connect_timeout(Duration::from_millis(self.config.connect_timeout_ms))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        if let Some(tls) = &self.config.tls {
            // The server must prove it is the node we meant to dial: its certificate has to
            // name `node-<peer>.conclave`, whatever address it answers on.
            endpoint = endpoint.tls_config(tls.client_config(self.peer))?;
        }
        let channel = endpoint.connect().await?;
        Ok(PeerClient::new(channel)
            .max_encoding_message_size(self.config.max_message_bytes)
            .max_decoding_message_size(self.config.max_message_bytes))
    }

    /// Streams batches until the call breaks (returns true) or the node is gone (false).
    async fn pump(
        &self,
        mut client: PeerClient<tonic::transport::Channel>,
        queue: &mut mpsc::Receiver<Bytes>,
    ) -> bool {
        let (batches, stream) = mpsc::channel::<Batch>(4);
        let pinger = client.clone();
        let call = client.stream(ReceiverStream::new(stream));
        tokio::pin!(call);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    // Pings run beside the stream on the same connection; a slow one never
                    // holds up protocol traffic.
                    let (mut client, histogram, from) = (pinger.clone(), self.round_trip.clone(), self.me.0);
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        if client.round_trip(Ping { from }).await.is_ok() {
                            histogram.record(started.elapsed().as_secs_f64());
                        }
                    });
                }
                result = &mut call => {
                    if let Err(status) = result {
                        tracing::debug!(peer = %self.peer, %status, "peer stream ended");
                    }
                    return true;
                }
                first = queue.recv() => {
                    let Some(first) = first else { return false };
                    let batch = self.batch(first, queue);
                    let delay = self.faults.get(self.peer).delay;
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if batches.send(batch).await.is_err() {
                        return true;
                    }
                }
            }
        }
    }

    /// Gathers whatever else is already queued into one batch, within the limits.
    fn batch(&self, first: Bytes, queue: &mut mpsc::Receiver<Bytes>) -> Batch {
        let mut size = first.len();
        let mut payloads = vec![first];
        while payloads.len() < self.config.max_batch_messages {
            match queue.try_recv() {
                Ok(next) if size + next.len() <= self.config.max_message_bytes / 2 => {
                    size += next.len();
                    payloads.push(next);
                }
                Ok(next) => {
                    // Too big for this batch; it leads the next one.
                    payloads.push(next);
                    break;
                }
                Err(_) => break,
            }
        }
        Batch { from: self.me.0, to: self.peer.0, payloads }
    }
}

/// Displays an error with its sources, `outer: inner: innermost`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
