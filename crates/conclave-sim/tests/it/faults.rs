//! Every kind of fault is exercised across a handful of seeds, and the end-of-run checks
//! (liveness, convergence) hold after them.

use conclave_sim::protocols::raft;
use conclave_sim::{RunStats, Simulation};

#[test]
fn faults_of_every_kind_strike_across_seeds() {
    let mut total = RunStats::default();
    let mut plans = Vec::new();
    for seed in 0..12 {
        let sim = Simulation::<raft::Adapter>::new(&super::config(), seed);
        plans.push(sim.setup().faults.clone());
        let report = sim.run();
        assert!(report.passed(), "seed {seed}: {:?}", report.violation);
        let s = report.stats;
        total.nemesis.partitions += s.nemesis.partitions;
        total.nemesis.crashes += s.nemesis.crashes;
        total.nemesis.torn_writes += s.nemesis.torn_writes;
        total.network.dropped += s.network.dropped;
        total.network.blocked += s.network.blocked;
        total.clients.timed_out += s.clients.timed_out;
        total.clients.refused += s.clients.refused;
        total.snapshots_installed += s.snapshots_installed;
    }
    assert!(plans.iter().any(|p| p.partitions) && plans.iter().any(|p| p.isolate_leader));
    assert!(plans.iter().any(|p| p.one_way) && plans.iter().any(|p| p.crashes));
    assert!(plans.iter().any(|p| p.torn_writes) && plans.iter().any(|p| p.leader_churn));
    assert!(total.nemesis.partitions > 0, "{total:?}");
    assert!(total.nemesis.crashes > 0 && total.nemesis.torn_writes > 0, "{total:?}");
    assert!(total.network.dropped > 0 && total.network.blocked > 0, "{total:?}");
    assert!(total.clients.timed_out > 0 && total.clients.refused > 0, "{total:?}");
    assert!(total.snapshots_installed > 0, "{total:?}");
}

#[test]
fn duplicated_messages_are_injected_when_enabled() {
    let config = conclave_sim::SimConfig::default();
    let duplicated: u64 = (0..6)
        .map(|seed| Simulation::<raft::Adapter>::new(&config, seed).run().stats.network.duplicated)
        .sum();
    assert!(duplicated > 0);
}
