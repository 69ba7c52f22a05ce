//! How a node reaches its peers: a byte-level [`Transport`] and an in-process implementation.
//!
//! The driver encodes protocol messages itself, so a transport only moves opaque payloads; the
//! gRPC transport (`conclave-transport`), the lab's fault-injecting proxy and the in-process
//! [`ChannelNetwork`] are interchangeable.

use bytes::Bytes;
use conclave_core::NodeId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A payload that arrived from a peer.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub from: NodeId,
    pub payload: Bytes,
}

/// Sends payloads to peers. Sending never blocks the node: a transport that cannot keep up
/// drops payloads (the protocols retransmit) and counts the drop.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, to: NodeId, payload: Bytes);
}

/// An in-process network of nodes joined by bounded channels, for tests.
#[derive(Clone, Default)]
pub struct ChannelNetwork {
    inboxes: Arc<Mutex<BTreeMap<NodeId, mpsc::Sender<Inbound>>>>,
}

impl fmt::Debug for ChannelNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelNetwork").finish_non_exhaustive()
    }
}

impl ChannelNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `id` (replacing an earlier registration, as after a restart) and returns its
    /// transport and inbox.
    pub fn join(&self, id: NodeId) -> (Arc<dyn Transport>, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(65_536);
        self.inboxes.lock().expect("network lock poisoned").insert(id, tx);
        (Arc::new(ChannelTransport { from: id, network: self.clone() }), rx)
    }

    /// Cuts `id` off: payloads to it are dropped until it joins again.
    pub fn leave(&self, id: NodeId) {
        self.inboxes.lock().expect("network lock poisoned").remove(&id);
    }
}

struct ChannelTransport {
    from: NodeId,
    network: ChannelNetwork,
}

impl Transport for ChannelTransport {
    fn send(&self, to: NodeId, payload: Bytes) {
        let inbox = self.network.inboxes.lock().expect("network lock poisoned").get(&to).cloned();
        if let Some(inbox) = inbox {
            // A full inbox drops the payload, as a congested network would.
            let _ = inbox.try_send(Inbound { from: self.from, payload });
        }
    }
}
