//! `conclave-sim`: runs seeds of the deterministic simulator and reports the failed ones, each
//! with the command that replays it.
//!
//! ```text
//! cargo run --release -p conclave-sim -- --protocol raft --seeds 500
//! cargo run --release -p conclave-sim -- --protocol raft --seed 1234 --verbose
//! ```
//!
//! The last line printed is exactly `N passed, M failed`; the exit code is 1 if any seed
//! failed and 2 if the arguments are invalid.

use clap::Parser;
use conclave_sim::run::{self, RunOptions};
use conclave_sim::{SimConfig, protocols};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// Deterministic simulation of Conclave's protocols under faults.
#[derive(Debug, Parser)]
#[command(name = "conclave-sim", version)]
struct Args {
    /// The protocol to simulate.
    #[arg(long, default_value = "raft")]
    protocol: String,
    /// How many seeds to run, from --first-seed on.
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// The first seed of the range.
    #[arg(long, default_value_t = 0, conflicts_with = "seed")]
    first_seed: u64,
    /// Run exactly this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas in the cluster (default: 3 or 5, drawn per seed).
    #[arg(long)]
    nodes: Option<usize>,
    /// Concurrent clients.
    #[arg(long, default_value_t = SimConfig::default().clients)]
    clients: usize,
    /// Keys the clients work on.
    #[arg(long, default_value_t = SimConfig::default().keys)]
    keys: usize,
    /// Virtual milliseconds of faults and client load per seed.
    #[arg(long, default_value_t = SimConfig::default().fault_period_ms)]
    fault_period_ms: u64,
    /// Inject no faults (only message delays and clock drift).
    #[arg(long)]
    no_faults: bool,
    /// Never deliver a message twice.
    #[arg(long)]
    no_duplicates: bool,
    /// A deliberately broken protocol rule, to see the checkers catch it.
    #[arg(long)]
    plant: Option<String>,
    /// Print every event (runs the seeds one at a time).
    #[arg(long)]
    verbose: bool,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Stop at the first failed seed.
    #[arg(long)]
    stop_at_first_failure: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(plants) = protocols::plants(&args.protocol) else {
        eprintln!(
            "error: unknown protocol {:?}; this build knows: {}",
            args.protocol,
            protocols::names().join(", ")
        );
        return ExitCode::from(2);
    };
    if let Some(plant) = &args.plant
        && !plants.contains(&plant.as_str())
    {
        eprintln!(
            "error: {} has no planted bug {plant:?}; it knows: {}",
            args.protocol,
            if plants.is_empty() { "none".to_string() } else { plants.join(", ") }
        );
        return ExitCode::from(2);
    }
    let config = SimConfig {
        nodes: args.nodes,
        clients: args.clients,
        keys: args.keys,
        fault_period_ms: args.fault_period_ms,
        plant: args.plant.clone(),
        verbose: args.verbose,
        faults: !args.no_faults,
        duplicate_messages: !args.no_duplicates,
        ..SimConfig::default()
    };
    if let Err(error) = config.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let seeds = match args.seed {
        Some(seed) => seed..seed + 1,
        None => args.first_seed..args.first_seed.saturating_add(args.seeds),
    };
    let total = seeds.end - seeds.start;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = if args.verbose { 1 } else { args.jobs.unwrap_or(cores) };
    println!(
        "{}: seeds {}..{} on {jobs} thread(s){}",
        args.protocol,
        seeds.start,
        seeds.end,
        args.plant.as_ref().map_or(String::new(), |p| format!(", planted bug {p}"))
    );
    let started = std::time::Instant::now();
    let summary = match args.seed {
        Some(seed) => {
            // One seed: also say what it drew and did, even when it passed.
            let mut report = run::run_one(&args.protocol, &config, seed)
                .expect("the protocol was checked above");
            println!("  {} nodes; faults: {}", report.nodes, report.faults);
            println!("  protocol config: {}", report.protocol_config);
            println!("  {:?}", report.stats);
            report.history = Vec::new();
            let mut summary = run::Summary {
                events: report.stats.events,
                virtual_ms: report.stats.virtual_ms,
                ..run::Summary::default()
            };
            if report.passed() {
                summary.passed = 1;
            } else {
                summary.failed.push(report);
            }
            summary
        }
        None => {
            let step = (total / 10).max(1);
            let printed = AtomicU64::new(0);
            let progress = |done: u64, failed: u64| {
                if (done.is_multiple_of(step) || done == total)
                    && printed.fetch_max(done, Ordering::Relaxed) < done
                {
                    println!("  {done}/{total} seeds run, {failed} failed");
                }
            };
            let options = RunOptions { jobs, stop_at_first_failure: args.stop_at_first_failure };
            run::run_seeds(&args.protocol, &config, seeds, options, &progress)
                .expect("the protocol was checked above")
        }
    };
    println!(
        "simulated {:.0} s in {:.1} s ({} events)",
        summary.virtual_ms as f64 / 1_000.0,
        started.elapsed().as_secs_f64(),
        summary.events
    );
    for report in &summary.failed {
        let violation = report.violation.as_ref().expect("a failed seed has a violation");
        println!();
        println!("FAILED seed {} ({} nodes; faults: {})", report.seed, report.nodes, report.faults);
        println!("  {violation}");
        println!("  replay: {}", run::replay_command(&args.protocol, report.seed, &config));
    }
    println!("{} passed, {} failed", summary.passed, summary.failed.len());
    if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
