//! The checkers catch Raft's planted bugs within a bounded number of seeds.
//!
//! Each test runs seeds in order and stops at the first failure, which must come from the
//! planted bug (duplicated messages are off, so nothing else fails).

use conclave_sim::run::{self, RunOptions};
use conclave_sim::{SimConfig, Violation};

fn first_violation(config: &SimConfig, seeds: u64) -> Option<(u64, Violation)> {
    let options = RunOptions { jobs: 2, stop_at_first_failure: true };
    let summary = run::run_seeds("raft", config, 0..seeds, options, &|_, _| {}).expect("raft");
    let first = summary.failed.into_iter().next()?;
    Some((first.seed, first.violation.expect("a failed seed has a violation")))
}

// Reference: Raft §5.4.2 and Figure 8. A leader that commits an entry of an earlier term by
// counting replicas can lose it to a later leader. Leader churn (new leaders crashing or being
// cut off moments after their election, some at their first writes) builds the figure; three
// nodes and a long fault period make it come within a few hundred seeds (the first at seed 482
// since followers batch their reads, which changed every schedule; before, within 200).
#[test]
fn committing_a_previous_term_by_counting_is_caught() {
    let config = SimConfig {
        nodes: Some(3),
        fault_period_ms: 30_000,
        plant: Some("commit-previous-term-by-counting".into()),
        ..super::config()
    };
    let (seed, violation) = first_violation(&config, 1000).expect("caught within 1000 seeds");
    let caught_by = ["raft invariant", "state machine safety", "linearizability"];
    assert!(caught_by.contains(&violation.check.as_str()), "seed {seed}: {violation}");
}

// Reference: Raft thesis §6.4. A leader that answers reads without confirming it still leads
// serves stale data once a partition isolates it while clients still reach it.
#[test]
fn reads_from_a_deposed_leader_are_caught() {
    let config = SimConfig { plant: Some("read-from-deposed-leader".into()), ..super::config() };
    let (seed, violation) = first_violation(&config, 200).expect("caught within 200 seeds");
    assert_eq!(violation.check, "linearizability", "seed {seed}: {violation}");
}

// The driver contract (`conclave_core::protocol`): `has_ready` promises a `Ready`. A replica that
// keeps promising one and hands out empty ones would spin a node thread; the simulator names it.
#[test]
fn a_ready_promised_and_never_handed_out_is_caught() {
    let config = SimConfig { plant: Some("phantom-ready".into()), ..super::config() };
    let (seed, violation) = first_violation(&config, 5).expect("caught within 5 seeds");
    assert_eq!(violation.check, "protocol contract", "seed {seed}: {violation}");
}
