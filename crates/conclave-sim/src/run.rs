//! Running many seeds: the report of each, a parallel runner over a range of seeds, and the
//! command that replays a failed one.
//!
//! Each seed is a self-contained deterministic run, so seeds can be spread over threads without
//! any effect on what each one does. A panic inside a run (a protocol's broken assertion) is
//! caught and reported as that seed's violation.

use crate::clients::ClientStats;
use crate::linearizability::Operation;
use crate::nemesis::NemesisStats;
use crate::network::NetworkStats;
use crate::{SimConfig, Violation};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What one seed did.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub protocol: &'static str,
    pub nodes: usize,
    /// The fault mix the seed drew, in one line.
    pub faults: String,
    /// The protocol configuration the seed drew.
    pub protocol_config: String,
    /// The first violation; `None` if the seed passed.
    pub violation: Option<Violation>,
    pub stats: RunStats,
    /// A hash of every event and of the outcome: equal for equal runs.
    pub fingerprint: u64,
    /// Every client operation, as given to the linearizability checker.
    pub history: Vec<Operation>,
}

/// Counts from one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub virtual_ms: u64,
    pub events: u64,
    pub clients: ClientStats,
    pub network: NetworkStats,
    pub nemesis: NemesisStats,
    /// The highest index any replica applied.
    pub max_applied: u64,
    /// State-machine snapshots taken by replicas, and installed from peers.
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
}

impl SeedReport {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

/// The exact command that replays `seed` with the settings that differ from the defaults.
pub fn replay_command(protocol: &str, seed: u64, config: &SimConfig) -> String {
    let mut command = String::from("cargo run --release -p conclave-sim");
    if protocol != "raft" {
        command.push_str(&format!(" --features {protocol}"));
    }
    command.push_str(&format!(" -- --protocol {protocol} --seed {seed}"));
    let defaults = SimConfig::default();
    if let Some(nodes) = config.nodes {
        command.push_str(&format!(" --nodes {nodes}"));
    }
    if config.clients != defaults.clients {
        command.push_str(&format!(" --clients {}", config.clients));
    }
    if config.keys != defaults.keys {
        command.push_str(&format!(" --keys {}", config.keys));
    }
    if config.fault_period_ms != defaults.fault_period_ms {
        command.push_str(&format!(" --fault-period-ms {}", config.fault_period_ms));
    }
    if !config.faults {
        command.push_str(" --no-faults");
    }
    if !config.duplicate_messages {
        command.push_str(" --no-duplicates");
    }
    if let Some(plant) = &config.plant {
        command.push_str(&format!(" --plant {plant}"));
    }
    command
}

/// Runs one seed, turning a panic into a violation. `None` if the protocol is unknown.
pub fn run_one(protocol: &str, config: &SimConfig, seed: u64) -> Option<SeedReport> {
    match catch_unwind(AssertUnwindSafe(|| crate::protocols::run_seed(protocol, config, seed))) {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            Some(SeedReport {
                seed,
                protocol: crate::protocols::names()
                    .into_iter()
                    .find(|name| *name == protocol)
                    .unwrap_or("unknown"),
                nodes: config.nodes.unwrap_or(0),
                faults: String::new(),
                protocol_config: String::new(),
                violation: Some(Violation::new(0, "panic", message)),
                stats: RunStats::default(),
                fingerprint: 0,
                history: Vec::new(),
            })
        }
    }
}

/// How to run a range of seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Worker threads.
    pub jobs: usize,
    /// Stop taking new seeds once one failed.
    pub stop_at_first_failure: bool,
}

/// The outcome of a range of seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub passed: u64,
    /// The failed seeds, in seed order, without their histories.
    pub failed: Vec<SeedReport>,
    /// Totals over every seed run.
    pub events: u64,
    pub virtual_ms: u64,
}

/// Runs `seeds` of `protocol` on `options.jobs` threads. `progress` is called after each seed
/// with the number of seeds done and failed so far. `None` if the protocol is unknown.
pub fn run_seeds(
    protocol: &str,
    config: &SimConfig,
    seeds: Range<u64>,
    options: RunOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Option<Summary> {
    crate::protocols::plants(protocol)?;
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let mut report = run_one(protocol, config, seed).expect("protocol is known");
                    report.history = Vec::new();
                    let failed = !report.passed();
                    if failed {
                        failures.fetch_add(1, Ordering::Relaxed);
                        if options.stop_at_first_failure {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    {
                        let mut summary = summary.lock().expect("no worker panics holding it");
                        summary.events += report.stats.events;
                        summary.virtual_ms += report.stats.virtual_ms;
                        if failed {
                            summary.failed.push(report);
                        } else {
                            summary.passed += 1;
                        }
                    }
                    let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(done, failures.load(Ordering::Relaxed));
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("no worker panics holding it");
    summary.failed.sort_by_key(|r| r.seed);
    Some(summary)
}
