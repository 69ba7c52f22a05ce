//! The same seed gives the same run, bit for bit; different seeds differ.

use conclave_sim::Simulation;
use conclave_sim::protocols::raft;

#[test]
fn a_seed_replays_bit_for_bit() {
    for seed in [3, 17] {
        let config = super::config();
        let first = Simulation::<raft::Adapter>::new(&config, seed).run();
        let second = Simulation::<raft::Adapter>::new(&config, seed).run();
        assert_eq!(first.fingerprint, second.fingerprint, "seed {seed}");
        assert_eq!(first.history, second.history, "seed {seed}");
        assert_eq!(first.stats, second.stats, "seed {seed}");
        assert_eq!(first.violation, second.violation, "seed {seed}");
        assert!(first.stats.clients.completed > 0, "seed {seed} did some work");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let config = super::config();
    let a = Simulation::<raft::Adapter>::new(&config, 1).run();
    let b = Simulation::<raft::Adapter>::new(&config, 2).run();
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_ne!(a.history, b.history);
}

#[test]
fn verbose_tracing_does_not_change_the_run() {
    let quiet = super::config();
    let verbose = conclave_sim::SimConfig { verbose: true, ..super::config() };
    let a = Simulation::<raft::Adapter>::new(&quiet, 5).run();
    let b = Simulation::<raft::Adapter>::new(&verbose, 5).run();
    assert_eq!(a.fingerprint, b.fingerprint);
}
