//! Deterministic simulator, invariant checkers and linearizability checker for every protocol.
//!
//! A [`Simulation`] runs N replicas of any protocol that implements
//! [`conclave_core::Protocol`] (through the [`SimProtocol`] adapter), each with an in-memory
//! store ([`conclave_storage::MemStore`]) and the replicated key-value store
//! ([`conclave_kv::KvStore`]). It carries out every `Ready` as the real driver does, injects
//! faults (message delay, loss, duplication and reordering; symmetric and one-way partitions;
//! crashes that lose unsynced writes; clock drift), drives concurrent clients, and checks:
//!
//! - the protocol's own invariants, through its [`Checker`], after every event;
//! - state machine safety, for every protocol: no two replicas apply different entries at one
//!   index, and each applies indexes in order;
//! - linearizability of the clients' history ([`linearizability`]), when the protocol's
//!   `guarantees()` promise linearizable reads, writes and compare-and-swap;
//! - liveness and convergence: after the faults stop and a quiet period, a write succeeds and
//!   every replica reaches the same state.
//!
//! Everything comes from one seed: the same seed replays the same run, bit for bit. Virtual
//! time is kept in microseconds so that drift can scale a tick by a fraction of a millisecond;
//! reports give milliseconds.
//!
//! ```no_run
//! use conclave_sim::{SimConfig, Simulation, protocols::raft};
//!
//! let report = Simulation::<raft::Adapter>::new(&SimConfig::default(), 42).run();
//! assert!(report.passed(), "{:?}", report.violation);
//! ```
//!
//! # Adding a protocol
//!
//! Implement [`SimProtocol`] in `src/protocols/<name>.rs` and register it in
//! `src/protocols/mod.rs`; the module documentation there lists the steps. The trait asks for
//! the protocol's name and plantable bugs, a per-seed configuration, its tick interval, a
//! constructor from recovered storage, and a [`Checker`] for its invariants. The generic
//! checks then apply with no further code.
//!
//! The command line (`src/main.rs`) runs ranges of seeds:
//! `cargo run --release -p conclave-sim -- --protocol raft --seeds 500`.

mod checker;
mod clients;
mod config;
mod driver;
mod events;
mod finale;
mod kv_ops;
mod nemesis;
mod network;
mod node;
mod simulation;

pub mod linearizability;
pub mod protocols;
pub mod run;

pub use checker::Violation;
pub use clients::ClientStats;
pub use config::{ConfigError, SimConfig};
pub use nemesis::{FaultPlan, NemesisStats};
pub use network::{LinkFaults, NetworkStats};
pub use node::SimNode;
pub use protocols::{Checker, Cluster, Observation, SimProtocol};
pub use run::{RunOptions, RunStats, SeedReport, Summary};
pub use simulation::{Setup, Simulation};
