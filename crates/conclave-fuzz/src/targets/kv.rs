//! The state machine's decoders: [`Command::decode`], [`Output::decode`] and
//! [`KvStore::restore`] (through [`StateMachine`]), and what the store does next.
//!
//! Every replica applies whatever the log holds, and a peer can put anything in the log, so a
//! command that decodes is also applied to a store here: applying must answer (an output that
//! decodes) rather than panic. A snapshot that restores must leave a store that serves reads,
//! accepts writes and snapshots to bytes that restore to the same state.

use crate::corpus;
use crate::mutate::Mutator;
use crate::runner::{self, CheckResult, Failure, Report, Verdict};
use crate::settings::FuzzSettings;
use conclave_core::{SnapshotMeta, StateMachine};
use conclave_kv::{Command, KvStore, Output, PutRequest, RangeRequest};

/// Mutants are cut to this length.
pub const MAX_INPUT_BYTES: usize = 8 * 1024;

pub const COMMAND: &str = "kv_command";
pub const OUTPUT: &str = "kv_output";
pub const SNAPSHOT: &str = "kv_snapshot";

/// Applied commands are reset to a fresh store this often, so the store stays small.
const RESET_EVERY: u64 = 512;

/// A store with some history, for decoded commands to act on.
fn populated_store() -> KvStore {
    let mut store = KvStore::new();
    for (i, (_, command)) in crate::seeds::kv::commands().into_iter().enumerate() {
        store.apply(i as u64 + 1, Some(&command.encode()));
    }
    store
}

/// Every key, at the current revision.
fn everything() -> RangeRequest {
    RangeRequest::range(vec![0u8], vec![0u8])
}

/// Decodes a command; if it decodes, checks its round trip and applies it to `store`.
pub fn check_command(store: &mut KvStore, index: u64, bytes: &[u8]) -> CheckResult {
    let Ok(command) = Command::decode(bytes) else { return Ok(Verdict::Rejected) };
    if Command::decode(&command.encode()).as_ref() != Ok(&command) {
        return Err("a decoded command does not survive encode and decode".into());
    }
    let output = store.apply(index, Some(bytes));
    Output::decode(&output)
        .map_err(|e| format!("applying a command gave an undecodable output: {e}"))?;
    store
        .range(&everything())
        .map_err(|e| format!("the store refuses to read after a command: {e}"))?;
    Ok(Verdict::Accepted)
}

pub fn check_output(bytes: &[u8]) -> CheckResult {
    let Ok(output) = Output::decode(bytes) else { return Ok(Verdict::Rejected) };
    if Output::decode(&output.encode()).as_ref() != Ok(&output) {
        return Err("a decoded output does not survive encode and decode".into());
    }
    let _ = output.revision();
    Ok(Verdict::Accepted)
}

/// Restores a store from `bytes`; if that works, uses it.
pub fn check_snapshot(bytes: &[u8]) -> CheckResult {
    let mut store = KvStore::new();
    let meta = SnapshotMeta { index: 42, ..SnapshotMeta::default() };
    if store.restore(&meta, bytes).is_err() {
        return Ok(Verdict::Rejected);
    }
    // What a restored replica does first: serve reads and watches, snapshot, take writes.
    let _ = store.range(&everything());
    let _ = store.range(&everything().with_revision(store.compact_revision().max(1)));
    let _ = store.events_since(1, &[0], &[0]);
    let _ = store.leases();
    let again = store.snapshot();
    let mut copy = KvStore::new();
    copy.restore(&meta, &again)
        .map_err(|e| format!("a restored store's snapshot does not restore: {e}"))?;
    if copy.snapshot() != again {
        return Err("snapshot → restore → snapshot changed the bytes".into());
    }
    let writes = [
        Command::Put(PutRequest::new("fuzz", "x")),
        Command::DeleteRange(conclave_kv::DeleteRangeRequest::range(vec![0u8], vec![0u8])),
        Command::LeaseGrant { id: 7777, ttl: 10 },
        Command::Compact { revision: store.current_revision() },
    ];
    // Not counted against the allocation bound: that is for decoding, and a caught panic's
    // backtrace (with RUST_BACKTRACE set) allocates tens of megabytes by itself.
    let mut written = Ok(Ok(()));
    allocation_counter::opt_out(|| {
        written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for (i, command) in writes.iter().enumerate() {
                let output = store.apply(43 + i as u64, Some(&command.encode()));
                Output::decode(&output)
                    .map_err(|e| format!("undecodable output after restore: {e}"))?;
            }
            Ok(())
        }));
    });
    match written {
        Ok(result) => result.map(|()| Verdict::Accepted),
        // A restored store must take writes like any other: restore refuses states whose
        // counters cannot advance (once a panic here; see `regressions::restored_counters_at_
        // their_maximum_are_refused`), so any panic now is a finding.
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

pub fn fuzz_command(settings: &FuzzSettings) -> Result<Report, Failure> {
    let mut store = populated_store();
    let mut index = 100u64;
    runner::run(
        COMMAND,
        &corpus::load(COMMAND),
        &Mutator::new(MAX_INPUT_BYTES),
        settings,
        move |input| {
            index += 1;
            if index % RESET_EVERY == 0 {
                store = populated_store();
            }
            check_command(&mut store, index, &input.bytes)
        },
    )
}

pub fn fuzz_output(settings: &FuzzSettings) -> Result<Report, Failure> {
    runner::run(OUTPUT, &corpus::load(OUTPUT), &Mutator::new(MAX_INPUT_BYTES), settings, |input| {
        check_output(&input.bytes)
    })
}

pub fn fuzz_snapshot(settings: &FuzzSettings) -> Result<Report, Failure> {
    runner::run(
        SNAPSHOT,
        &corpus::load(SNAPSHOT),
        &Mutator::new(MAX_INPUT_BYTES),
        settings,
        |input| check_snapshot(&input.bytes),
    )
}
