//! Multi-Paxos in the simulator: clean seeds pass, and each planted bug is caught.
//!
//! Each test scans a short range of seeds and stops at the first failure; the ranges start at
//! a seed known to catch the bug, so the scan is short unless the protocol changes, and the
//! range leaves room for it to still find one if it does.

#![cfg(feature = "paxos")]

use conclave_sim::SimConfig;
use conclave_sim::run::{SeedReport, run_one};
use std::ops::Range;

fn run(seed: u64, plant: Option<&str>) -> SeedReport {
    let config = SimConfig { plant: plant.map(str::to_string), ..SimConfig::default() };
    run_one("paxos", &config, seed).expect("paxos is compiled in")
}

/// The first seed in `seeds` whose run with `plant` fails, with what it reported.
fn first_caught(plant: &str, seeds: Range<u64>) -> Option<SeedReport> {
    seeds.map(|seed| run(seed, Some(plant))).find(|report| !report.passed())
}

#[test]
fn clean_seeds_pass() {
    for seed in 0..3 {
        let report = run(seed, None);
        assert!(report.passed(), "seed {seed}: {:?}", report.violation);
        assert!(report.stats.max_applied > 0, "seed {seed} applied nothing");
    }
}

// Reference: Paxos Made Simple §2.2, P2c — a new leader must propose the value of the
// highest-numbered proposal its promises report.
#[test]
fn ignoring_accepted_values_in_promises_is_caught() {
    let report = first_caught("ignore-accepted-values-in-promises", 0..20)
        .expect("some seed catches a leader that ignores reported values");
    let violation = report.violation.expect("a failed seed has a violation");
    assert!(
        violation.check.contains("paxos invariant")
            || violation.check.contains("state machine safety")
            || violation.check.contains("linearizability"),
        "seed {}: {violation}",
        report.seed
    );
}

// Reference: Paxos Made Simple §2.2 (P1a) and §2.4 — an acceptor must remember its promise
// across a crash, so it is durable before the promise is sent.
#[test]
fn answering_a_prepare_before_persisting_is_caught() {
    let report = first_caught("answer-prepare-before-persisting", 8..70)
        .expect("some seed catches a promise forgotten in a crash");
    let violation = report.violation.expect("a failed seed has a violation");
    assert!(
        violation.check.contains("paxos invariant")
            || violation.check.contains("state machine safety")
            || violation.check.contains("linearizability"),
        "seed {}: {violation}",
        report.seed
    );
}
