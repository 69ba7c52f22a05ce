//! Peer message decoders: whatever bytes arrive on the peer port, decoding them as a
//! protocol's message returns `Ok` or `Err` and nothing worse.
//!
//! The driver decodes every inbound payload with `postcard::from_bytes::<P::Message>` before
//! the protocol sees it, and peers are not authenticated, so these decoders face the network
//! directly. Besides "no panic" and the allocation bound the runner enforces, a message that
//! decodes must re-encode to bytes that decode to the same message again (the driver relays
//! and re-encodes messages; an unstable encoding would be a silent change on the way).

use crate::corpus;
use crate::mutate::Mutator;
use crate::runner::{self, CheckResult, Failure, Report, Verdict};
use crate::settings::FuzzSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Mutants are cut to this length: far above any seed, small enough to mutate quickly.
pub const MAX_INPUT_BYTES: usize = 16 * 1024;

pub const RAFT: &str = "raft_message";
pub const PAXOS: &str = "paxos_message";
pub const TOTEM: &str = "totem_message";
pub const GOSSIP: &str = "gossip_message";

/// Decodes `bytes` as an `M` the way the driver does, and checks a decoded message's
/// encoding round trip.
pub fn check<M: Serialize + DeserializeOwned>(bytes: &[u8]) -> CheckResult {
    let Ok(message) = postcard::from_bytes::<M>(bytes) else { return Ok(Verdict::Rejected) };
    let encoded = postcard::to_allocvec(&message).map_err(|e| format!("cannot re-encode: {e}"))?;
    let again: M = postcard::from_bytes(&encoded)
        .map_err(|e| format!("a re-encoded message does not decode: {e}"))?;
    let twice = postcard::to_allocvec(&again).map_err(|e| format!("cannot re-encode: {e}"))?;
    if twice != encoded {
        return Err("re-encoding a decoded message is not stable".into());
    }
    Ok(Verdict::Accepted)
}

fn fuzz<M: Serialize + DeserializeOwned>(
    target: &str,
    settings: &FuzzSettings,
) -> Result<Report, Failure> {
    runner::run(target, &corpus::load(target), &Mutator::new(MAX_INPUT_BYTES), settings, |input| {
        check::<M>(&input.bytes)
    })
}

pub fn fuzz_raft(settings: &FuzzSettings) -> Result<Report, Failure> {
    fuzz::<conclave_raft::RaftMessage>(RAFT, settings)
}

pub fn fuzz_paxos(settings: &FuzzSettings) -> Result<Report, Failure> {
    fuzz::<conclave_paxos::Message>(PAXOS, settings)
}

pub fn fuzz_totem(settings: &FuzzSettings) -> Result<Report, Failure> {
    fuzz::<conclave_totem::TotemMessage>(TOTEM, settings)
}

pub fn fuzz_gossip(settings: &FuzzSettings) -> Result<Report, Failure> {
    fuzz::<conclave_gossip::Message>(GOSSIP, settings)
}
