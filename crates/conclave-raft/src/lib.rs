//! Raft, as a deterministic IO-free state machine behind the conclave-core protocol interface.
//!
//! The algorithm is the one of Ongaro and Ousterhout's paper ("In Search of an Understandable
//! Consensus Algorithm", extended version) with the extensions of Ongaro's thesis: pre-vote
//! (§9.6), check-quorum (§6.2), ReadIndex and lease reads (§6.4), leadership transfer (§3.10)
//! and single-server membership changes (§4.1). Section numbers in this crate refer to the
//! paper unless they say "thesis".
//!
//! [`Raft`] does no IO and reads no clock: time arrives through `tick()`, randomness from a
//! [`conclave_core::DetRng`] seeded at construction, and every effect leaves through
//! [`conclave_core::Ready`], in its documented order. In particular the hard state (term, vote,
//! commit; see [`HardState`]) and the appended entries of a `Ready` must be durable before its
//! messages are sent: a vote or an append acknowledgement is always in the same `Ready` as the
//! state it vouches for.

mod changes;
mod config;
mod counters;
mod election;
mod error;
mod follower;
mod forwarded;
mod forwarded_reads;
mod hard_state;
mod leadership;
mod log;
mod membership_log;
mod message;
mod progress;
mod protocol;
mod raft;
mod read_queue;
mod reads;
mod replication;

pub use config::{PlantedBug, RaftConfig};
pub use error::RaftError;
pub use hard_state::HardState;
pub use message::RaftMessage;
pub use raft::Raft;

/// The role of a replica, as the rest of Conclave names it.
pub use conclave_core::Role;
