//! Runs that must pass: a healthy cluster, and Raft under every fault but duplication.

use conclave_sim::protocols::raft;
use conclave_sim::run::{self, RunOptions};
use conclave_sim::{SimConfig, Simulation};

#[test]
fn a_healthy_cluster_passes_and_serves_clients() {
    for nodes in [1, 3, 5] {
        let config = SimConfig { nodes: Some(nodes), faults: false, ..SimConfig::default() };
        let report = Simulation::<raft::Adapter>::new(&config, 11).run();
        assert!(report.passed(), "{nodes} nodes: {:?}", report.violation);
        let clients = report.stats.clients;
        assert!(clients.completed > 500, "{nodes} nodes: {clients:?}");
        assert_eq!(report.stats.nemesis.crashes, 0);
        assert_eq!(report.stats.network.dropped + report.stats.network.duplicated, 0);
    }
}

#[test]
fn raft_passes_seeds_under_faults() {
    // Fewer seeds in debug builds, which run the simulation several times slower.
    let seeds = if cfg!(debug_assertions) { 8 } else { 24 };
    let summary = run::run_seeds(
        "raft",
        &super::config(),
        0..seeds,
        RunOptions { jobs: 2, stop_at_first_failure: false },
        &|_, _| {},
    )
    .expect("raft is known");
    let failures: Vec<String> = summary
        .failed
        .iter()
        .map(|r| format!("seed {}: {}", r.seed, r.violation.as_ref().expect("failed")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(summary.passed, seeds);
}
