//! Limits, timings and TLS settings of the peer transport.

use crate::PeerTls;
use crate::frame::MIN_FRAME_BYTES;

/// The storage's default snapshot limit (1 GiB) plus 1 MiB for the protocol message that
/// carries the snapshot.
const DEFAULT_MAX_PAYLOAD_BYTES: usize = (1024 + 1) * 1024 * 1024;

/// How the transport batches, bounds and reconnects.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Payloads queued per peer before new ones are dropped.
    pub queue_capacity: usize,
    /// The most payloads in one batch (one write).
    pub max_batch_messages: usize,
    /// The largest frame a listener accepts, in bytes (at least 64); a batch stops growing at
    /// half of it. A payload travels in frames of at most 1 MiB (fragments of a larger one), so
    /// this bounds what a misbehaving peer can make a listener buffer, not the payload size.
    pub max_message_bytes: usize,
    /// The largest single payload accepted for sending; a larger one is dropped and counted.
    /// At most `max_assembled_bytes`.
    pub max_payload_bytes: usize,
    /// The largest payload a listener reassembles from fragments; a peer announcing more is
    /// cut off. The default holds the storage's largest snapshot (1 GiB) and the message
    /// around it, so a follower that fell behind a compacted log can always be caught up.
    pub max_assembled_bytes: usize,
    pub connect_timeout_ms: u64,
    /// A link that cannot connect retries after this long, doubling up to the maximum.
    pub reconnect_backoff_ms_min: u64,
    /// The longest wait between retries: how long a restarted peer may go unheard of at most.
    /// Dialling a dead peer on its own network costs little; hearing a restarted one late
    /// delays its rejoining (a Totem ring re-forms only once every member hears it).
    pub reconnect_backoff_ms_max: u64,
    /// Mutual TLS with node-id certificates; plaintext when `None`.
    pub tls: Option<PeerTls>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8_192,
            max_batch_messages: 512,
            max_message_bytes: 64 * 1024 * 1024,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_assembled_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            connect_timeout_ms: 1_000,
            reconnect_backoff_ms_min: 50,
            reconnect_backoff_ms_max: 500,
            tls: None,
        }
    }
}

/// A transport setting out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid transport.{field} = {value}: expected {accepted}")]
pub struct TransportConfigError {
    pub field: &'static str,
    pub value: u64,
    pub accepted: &'static str,
}

impl TransportConfig {
    pub fn validate(&self) -> Result<(), TransportConfigError> {
        let positive = [
            ("queue_capacity", self.queue_capacity as u64),
            ("max_batch_messages", self.max_batch_messages as u64),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("max_payload_bytes", self.max_payload_bytes as u64),
            ("max_assembled_bytes", self.max_assembled_bytes as u64),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("reconnect_backoff_ms_min", self.reconnect_backoff_ms_min),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(TransportConfigError { field, value, accepted: "a positive number" });
            }
        }
        if self.reconnect_backoff_ms_max < self.reconnect_backoff_ms_min {
            return Err(TransportConfigError {
                field: "reconnect_backoff_ms_max",
                value: self.reconnect_backoff_ms_max,
                accepted: "at least reconnect_backoff_ms_min",
            });
        }
        if self.max_message_bytes < MIN_FRAME_BYTES {
            return Err(TransportConfigError {
                field: "max_message_bytes",
                value: self.max_message_bytes as u64,
                accepted: "at least 64 (a fragment's header and some of its payload)",
            });
        }
        if self.max_payload_bytes > self.max_assembled_bytes {
            // Peers share one configuration: a payload this node would send, it must be able
            // to receive.
            return Err(TransportConfigError {
                field: "max_payload_bytes",
                value: self.max_payload_bytes as u64,
                accepted: "at most max_assembled_bytes",
            });
        }
        Ok(())
    }
}
