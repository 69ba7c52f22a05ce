//! Peer messaging: one TCP (or mutual-TLS) connection per peer and direction, carrying
//! length-prefixed frames (see [`frame`] for the wire format).
//!
//! [`PeerTransport`] implements `conclave_node::Transport`: each peer gets a bounded queue and a
//! task that keeps one connection open, writes whatever is queued as one batch of frames with
//! one write (a payload over 1 MiB, such as a snapshot, in fragments that the listener
//! reassembles), measures the round trip with a ping every second, and reconnects with
//! exponential backoff when the link breaks. A full queue drops the payload (the protocols retransmit) and
//! counts it; sending never blocks the node thread. [`PeerListener`] is the receiving side: it
//! checks each link's hello and hands payloads to the node's inbox, waiting when the inbox is
//! full so back-pressure reaches the sender's TCP window. [`Faults`] lets the lab and tests drop
//! or delay the traffic to any peer. With [`TransportConfig::tls`] set, links use mutual TLS and
//! each link's sender id is checked against the sender's certificate (see the `tls` module for
//! the naming convention).
//!
//! Peers speak a framed protocol of their own rather than gRPC: a protocol message crosses two
//! tasks (the sender's link, the receiver's link) instead of the five an HTTP/2 stream needs,
//! which matters for commit latency on a few cores (ARCHITECTURE.md, "Peer transport").

mod assembly;
mod config;
mod connection;
mod faults;
pub mod frame;
mod listener;
mod sender;
mod tls;

pub use config::{TransportConfig, TransportConfigError};
pub use connection::{Connection, DialError, dial};
pub use faults::{Faults, LinkFault};
pub use listener::PeerListener;
pub use sender::PeerTransport;
pub use tls::{PeerIdentityError, PeerTls, PeerTlsError, certificate_names_node, node_name};

/// Peers refused because their certificate did not name the node id they claimed (or was
/// missing): `{protocol, reason}`.
pub const PEER_IDENTITY_REFUSED_TOTAL: &str = "conclave_peer_identity_refused_total";

/// Describes the transport's own metrics to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        PEER_IDENTITY_REFUSED_TOTAL,
        "Peer links refused because the TLS client certificate did not name the node id the peer claimed"
    );
}
