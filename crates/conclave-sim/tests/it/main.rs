//! Integration tests of the simulator, one module per subject. The heavier ones (planted bugs)
//! stop at the first failing seed; run them in release for speed:
//! `cargo test --release -p conclave-sim`.

mod cli;
mod determinism;
mod faults;
#[cfg(feature = "gossip")]
mod gossip;
mod healthy;
#[cfg(feature = "paxos")]
mod paxos;
mod planted;
#[cfg(feature = "totem")]
mod totem;

use conclave_sim::SimConfig;

/// The defaults, duplicated messages included.
pub fn config() -> SimConfig {
    SimConfig::default()
}
