//! Peer messaging over tonic.
//!
//! [`GrpcTransport`] implements `conclave_node::Transport`: each peer gets a bounded queue and a
//! task that keeps one client-streaming `Peer/Stream` call open, batches whatever is queued into
//! one `Batch`, and reconnects with exponential backoff when the call breaks. A full queue drops
//! the payload (the protocols retransmit) and counts it; sending never blocks the node thread.
//! [`PeerService`] is the receiving side: it checks each batch and hands payloads to the node's
//! inbox, waiting when the inbox is full so back-pressure reaches the sender's TCP window.
//! [`Faults`] lets the lab and tests drop or delay the traffic to any peer. With
//! [`TransportConfig::tls`] set, links use mutual TLS and every batch's sender id is checked
//! against the sender's certificate (see the `tls` module for the naming convention).
//!
//! Architecture invariant: only this crate and `conclave-etcd` know about gRPC.

mod config;
mod faults;
mod sender;
mod service;
mod tls;

pub mod pb {
    //! Generated from `proto/peer.proto`.
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("conclave.peer");
}

pub use config::{TransportConfig, TransportConfigError};
pub use faults::{Faults, LinkFault};
pub use sender::GrpcTransport;
pub use service::PeerService;
pub use tls::{PeerIdentityError, PeerTls, certificate_names_node, node_name};

/// Peers refused because their certificate did not name the node id they claimed (or was
/// missing): `{protocol, reason}`.
pub const PEER_IDENTITY_REFUSED_TOTAL: &str = "conclave_peer_identity_refused_total";

/// Describes the transport's own metrics to the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        PEER_IDENTITY_REFUSED_TOTAL,
        "Peer streams refused because the TLS client certificate did not name the node id the peer claimed"
    );
}
