//! Eventually consistent replication of the key-value store by anti-entropy, as a
//! deterministic, IO-free [`conclave_core::Protocol`].
//!
//! Every replica holds a last-writer-wins map: each key's newest value or tombstone, ranked by
//! a hybrid logical clock stamp and the writer's id ([`hlc`]). A client's write applies locally
//! at once and spreads by scuttlebutt anti-entropy: digests of per-origin versions, then only
//! the deltas, within an MTU-sized budget and under flow control ([`delta`], [`flow`]). A
//! periodic Merkle-tree comparison repairs whatever digests missed ([`merkle`]). Members are
//! found through seeds and watched by a gossip-style failure detector with suspicion
//! ([`members`]). Tombstones are collected once every live member has acknowledged them, and a
//! collected-through watermark keeps deleted values from coming back ([`store`]).
//!
//! Nothing here reads a clock, a socket or a thread RNG: physical time is derived from ticks,
//! randomness comes from a seeded [`conclave_core::DetRng`]. Linearizable reads and txn
//! compares are refused as unsupported: gossip promises convergence, not order.

pub mod apply_log;
pub mod command;
pub mod config;
pub mod convergence;
pub mod delta;
pub mod durable;
pub mod error;
mod exchange;
pub mod flow;
mod gossip;
pub mod hlc;
pub mod members;
pub mod merkle;
pub mod message;
mod repair;
mod round;
pub mod store;
pub mod versions;
mod write;

pub use config::{ConfigError, GossipConfig, PlantedBug};
pub use error::GossipError;
pub use gossip::Gossip;
pub use hlc::{Clock, Hlc, Stamp};
pub use members::Liveness;
pub use message::{Body, Deltas, Heartbeat, Message, Update, WireSize};
pub use store::Versioned;
pub use versions::VersionVector;
