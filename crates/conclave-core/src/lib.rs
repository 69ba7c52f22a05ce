//! The seam every Conclave protocol plugs into.
//!
//! Two interfaces live here. [`Protocol`] is the deterministic, IO-free state machine a protocol
//! crate implements: it is fed events (ticks, peer messages, proposals, read requests) and hands
//! back a [`Ready`] listing the effects the caller must carry out, in order. [`Consensus`] is the
//! async, object-safe face that the server and the lab hold as `Arc<dyn Consensus>`; the driver in
//! `conclave-node` turns any [`Protocol`] into one.
//!
//! Nothing in this crate (or in a protocol crate) touches a socket, a file, a clock or a thread
//! RNG: time arrives as ticks and randomness from a [`rng::DetRng`] seeded at construction.

pub mod consensus;
pub mod entry;
pub mod error;
pub mod held_snapshot;
pub mod id;
pub mod metrics;
pub mod proposal;
pub mod protocol;
pub mod rng;

pub use consensus::{Consensus, Frozen, Guarantees, ReadConsistency, Role, StateMachine, Status};
pub use entry::{Entry, EntryKind, Membership, SnapshotMeta};
pub use error::{ConsensusError, Result};
pub use held_snapshot::HeldSnapshot;
pub use id::{NodeId, RequestId};
pub use protocol::{Envelope, Protocol, ReadState, Ready, Recovered, Rejection, Snapshot};
pub use rng::DetRng;
