//! Fuzzing on stable Rust, and limit tests, for the inputs Conclave takes from outside.
//!
//! `cargo-fuzz` needs a nightly toolchain, so this crate has its own loop instead: seeded byte
//! mutations of a committed corpus of valid inputs ([`mutate`], [`runner`]), bounded by a time
//! budget from the environment ([`settings`]), checked for panics, hangs and allocations. The
//! targets ([`targets`]) cover what an unauthenticated peer, a damaged disk, a client or an
//! operator can hand the server: every protocol's peer messages, the write-ahead log's
//! recovery, the state machine's commands, outputs and snapshots, `conclave.toml`, and the etcd
//! requests. The seeds come from the real encoders ([`seeds`]) and live in `corpus/`
//! ([`corpus`]).
//!
//! The tests (`tests/it`) run each target for `CONCLAVE_FUZZ_SECONDS` (default 10) and hold
//! the limit tests of the etcd API. See docs/security.md for the threat model and how to run
//! the targets longer.

pub mod corpus;
pub mod fake;
pub mod mutate;
pub mod runner;
pub mod seeds;
pub mod settings;
pub mod targets;

pub use runner::{Failure, Input, Report, Seed, Verdict};
pub use settings::FuzzSettings;
