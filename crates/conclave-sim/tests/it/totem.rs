//! Totem in the simulator: clean seeds pass (linearizable through partitions that split the
//! ring), and each planted bug is caught.
//!
//! Each test scans a short range of seeds and stops at the first failure; the ranges start at
//! a seed known to catch the bug, so the scan is short unless the protocol changes, and the
//! range leaves room for it to still find one if it does.

#![cfg(feature = "totem")]

use conclave_sim::SimConfig;
use conclave_sim::run::{SeedReport, run_one};
use std::ops::Range;

fn run(seed: u64, plant: Option<&str>) -> SeedReport {
    let config = SimConfig { plant: plant.map(str::to_string), ..SimConfig::default() };
    run_one("totem", &config, seed).expect("totem is compiled in")
}

/// The first seed in `seeds` whose run with `plant` fails, with what it reported.
fn first_caught(plant: &str, seeds: Range<u64>) -> Option<SeedReport> {
    seeds.map(|seed| run(seed, Some(plant))).find(|report| !report.passed())
}

#[test]
fn clean_seeds_pass() {
    for seed in 0..4 {
        let report = run(seed, None);
        assert!(report.passed(), "seed {seed}: {:?}", report.violation);
        assert!(report.stats.max_applied > 0, "seed {seed} applied nothing");
        assert!(report.stats.clients.completed > 0, "seed {seed} completed no operation");
    }
}

#[test]
fn a_seed_replays_bit_for_bit() {
    assert_eq!(run(7, None).fingerprint, run(7, None).fingerprint);
}

// Reference: Totem §3.2 — safe delivery waits until every member of the ring has the message;
// committing on agreed order while claiming safe delivery is caught.
#[test]
fn acking_agreed_as_safe_is_caught() {
    let report = first_caught("ack-agreed-as-safe", 0..20)
        .expect("some seed catches agreed delivery passed off as safe");
    let violation = report.violation.expect("a failed seed has a violation");
    assert!(
        violation.check.contains("totem invariant")
            || violation.check.contains("state machine safety")
            || violation.check.contains("linearizability"),
        "seed {}: {violation}",
        report.seed
    );
}

// The primary-component rule: a ring without a majority of the configured members must not
// accept writes.
#[test]
fn a_minority_accepting_writes_is_caught() {
    let report = first_caught("minority-accepts-writes", 0..20)
        .expect("some seed catches a minority ring accepting writes");
    let violation = report.violation.expect("a failed seed has a violation");
    assert!(
        violation.check.contains("totem invariant")
            || violation.check.contains("state machine safety")
            || violation.check.contains("linearizability"),
        "seed {}: {violation}",
        report.seed
    );
}
