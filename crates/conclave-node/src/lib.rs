//! The one driver: turns any [`conclave_core::Protocol`] into a running [`conclave_core::Consensus`].
//!
//! A node is a dedicated OS thread that owns the protocol, the log store and the write side of the
//! state machine. It loops: wait for an event (a tick, a peer message, a client request), take
//! every further event already queued (so that many proposals share one `fdatasync` — group
//! commit), then carry out the protocol's [`conclave_core::Ready`] in the documented order:
//! persist and sync, send, apply, answer. Clients talk to it through a [`NodeHandle`], which
//! implements `Consensus` and is what the server and the lab hold as `Arc<dyn Consensus>`.
//!
//! Fsync blocks only the node thread; proposals that arrive meanwhile queue up and are ordered
//! in the next batch, which is exactly the batching that group commit needs.

mod config;
mod driver;
mod handle;
pub mod metrics;
mod transport;
mod waiters;

pub use config::{NodeConfig, NodeConfigError};
pub use handle::{NodeHandle, NodeRuntime, spawn};
pub use transport::{ChannelNetwork, Inbound, Transport};
