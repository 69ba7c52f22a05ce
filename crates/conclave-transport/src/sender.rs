//! The sending side: a bounded queue and a link task per peer.
//!
//! A payload too large for one frame (a snapshot) ends the batch it would have joined and goes
//! out in fragments right after it; payloads queued behind it wait for its last fragment, so
//! the order on the link is always the order of `send`. Heartbeats wait too: a link carrying a
//! snapshot is busy for the snapshot's size over the link's bandwidth.

use crate::connection::{Connection, DialError, Writer, dial};
use crate::frame::Kind;
use crate::{Faults, TransportConfig};
use bytes::Bytes;
use conclave_core::NodeId;
use conclave_node::Transport;
use metrics::{Counter, Histogram, counter, histogram};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Sends protocol payloads to peers over one long-lived connection each.
pub struct PeerTransport {
    queues: BTreeMap<NodeId, mpsc::Sender<Bytes>>,
    faults: Faults,
    max_payload_bytes: usize,
    dropped: Counter,
}

impl fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTransport").field("peers", &self.queues.keys()).finish_non_exhaustive()
    }
}

impl PeerTransport {
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

impl Transport for PeerTransport {
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
        // The last misconfiguration warned about, so a bad link warns once, not at every retry.
        let mut warned: Option<String> = None;
        loop {
            match dial(self.me, self.peer, &self.address, &self.config).await {
                Ok(connection) => {
                    backoff = min;
                    warned = None;
                    tracing::debug!(peer = %self.peer, address = %self.address, "peer link open");
                    if !self.pump(connection, &mut queue).await {
                        return;
                    }
                    tracing::debug!(peer = %self.peer, "peer link closed; reconnecting");
                }
                Err(error) => self.report(&error, &mut warned),
            }
            // Drain what queued while disconnected: stale protocol messages are worth less
            // than fresh ones, and the protocols retransmit what matters.
            while queue.try_recv().is_ok() {}
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    }

    /// A peer that is down is routine (trace); a refusal or a certificate the handshake
    /// refused (wrong CA, a server naming another node) is a misconfiguration or an impostor.
    fn report(&self, error: &DialError, warned: &mut Option<String>) {
        if !error.is_misconfiguration() {
            tracing::trace!(peer = %self.peer, %error, "cannot connect to peer");
            return;
        }
        let text = error.to_string();
        if warned.as_deref() != Some(text.as_str()) {
            tracing::warn!(peer = %self.peer, address = %self.address, %error, "peer link refused; retrying");
            *warned = Some(text);
        }
    }

    /// Sends batches until the link breaks (returns true) or the node is gone (false).
    async fn pump(&self, connection: Connection, queue: &mut mpsc::Receiver<Bytes>) -> bool {
        let Connection { mut reader, mut writer } = connection;
        // Pongs come back on the same connection; the token is the send time.
        let epoch = Instant::now();
        let histogram = self.round_trip.clone();
        let mut pongs = tokio::spawn(async move {
            while let Ok(Some((kind, body))) = reader.next().await {
                if kind == Kind::Pong
                    && let Ok(token) = <[u8; 8]>::try_from(body.as_ref())
                {
                    let sent = Duration::from_micros(u64::from_be_bytes(token));
                    histogram.record(epoch.elapsed().saturating_sub(sent).as_secs_f64());
                }
            }
        });
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let alive = loop {
            tokio::select! {
                _ = &mut pongs => break true,
                _ = ping.tick() => {
                    writer.push_ping(epoch.elapsed().as_micros() as u64);
                }
                first = queue.recv() => {
                    let Some(first) = first else { break false };
                    let large = self.batch(first, queue, &mut writer);
                    let delay = self.faults.get(self.peer).delay;
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if let Some(large) = large
                        && let Err(error) = writer.write_fragmented(&large).await
                    {
                        let len = large.len();
                        tracing::debug!(peer = %self.peer, %error, len, "peer link write failed in a large payload");
                        break true;
                    }
                }
            }
            if let Err(error) = writer.flush().await {
                tracing::debug!(peer = %self.peer, %error, "peer link write failed");
                break true;
            }
        };
        pongs.abort();
        alive
    }

    /// Frames `first` and whatever else is already queued, up to the batch limits, into one
    /// write. A payload too large for one frame ends the batch and is returned, to be written
    /// in fragments after the batch: the order of payloads on the link is the queue's.
    fn batch(
        &self,
        first: Bytes,
        queue: &mut mpsc::Receiver<Bytes>,
        writer: &mut Writer,
    ) -> Option<Bytes> {
        if writer.needs_fragments(&first) {
            return Some(first);
        }
        let mut size = first.len();
        writer.push(&first);
        let mut count = 1;
        while count < self.config.max_batch_messages && size < self.config.max_message_bytes / 2 {
            match queue.try_recv() {
                Ok(next) if writer.needs_fragments(&next) => return Some(next),
                Ok(next) => {
                    size += next.len();
                    count += 1;
                    writer.push(&next);
                }
                Err(_) => break,
            }
        }
        None
    }
}
