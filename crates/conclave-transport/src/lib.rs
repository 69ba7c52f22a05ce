//! Peer messaging over tonic.
//!
//! [`GrpcTransport`] implements `conclave_node::Transport`: each peer gets a bounded queue and a
//! task that keeps one client-streaming `Peer/Stream` call open, batches whatever is queued into
//! one `Batch`, and reconnects with exponential backoff when the call breaks. A full queue drops
//! the payload (the protocols retransmit) and counts it; sending never blocks the node thread.
//! [`PeerService`] is the receiving side: it checks each batch and hands payloads to the node's
//! inbox, waiting when the inbox is full so back-pressure reaches the sender's TCP window.
//! [`Faults`] lets the lab and tests drop or delay the traffic to any peer.
//!
//! Architecture invariant: only this crate and `conclave-etcd` know about gRPC.

mod config;
mod faults;
mod sender;
mod service;

pub mod pb {
    //! Generated from `proto/peer.proto`.
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("conclave.peer");
}

pub use config::{TransportConfig, TransportConfigError};
pub use faults::{Faults, LinkFault};
pub use sender::GrpcTransport;
pub use service::PeerService;
