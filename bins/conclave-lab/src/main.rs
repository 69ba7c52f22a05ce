//! `conclave-lab`: start local clusters, and compare protocols under the same workload and faults.

use anyhow::Context;
use clap::{Parser, Subcommand};
use conclave_lab::bench_options::BenchOptions;
use conclave_lab::cluster::{Cluster, ClusterSpec};
use conclave_lab::options::{AbOptions, MAX_DURATION, parse_duration};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "conclave-lab", version, about = "Local Conclave clusters, A/B runs and reports")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a local cluster of conclaved processes on loopback and keep it running until
    /// Ctrl-C or SIGTERM.
    Up {
        /// raft, paxos, totem or gossip.
        #[arg(long, default_value = "raft")]
        protocol: String,
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where node data, configs and logs go. Emptied first unless --reuse.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Keep existing data: restart a cluster from its data directories.
        #[arg(long)]
        reuse: bool,
        /// Node log level.
        #[arg(long, default_value = "info")]
        log_level: String,
        /// How long to wait for the first successful write.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ready_timeout: Duration,
    },
    /// Run the same workload and faults against each protocol (and etcd), check the client
    /// histories, and write a comparison report.
    Ab(Box<AbOptions>),
    /// Throughput and latency of put, linearizable and serializable get and compare-and-swap
    /// at several client counts, every protocol next to etcd, with the machine's fdatasync and
    /// loopback round trip; writes bench.json, bench.txt and a plot.
    Bench(Box<BenchOptions>),
    /// Check a recorded client history (history-<target>.json) for linearizability, stale
    /// reads and lost updates. Exit code 0: linearizable; 1: not; 2: unreadable.
    Check {
        file: PathBuf,
        /// Search budget per key, in configurations.
        #[arg(long, default_value_t = 2_000_000)]
        check_budget: usize,
    },
    /// Run one node (what `up` starts in each child process; same as `conclaved`).
    #[command(hide = true)]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a command that dies with the lab (used to start etcd).
    #[command(hide = true)]
    Guard {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// Makes this process die when the lab that started it does, however the lab ends.
fn die_with_parent() {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
}

/// The allocator of `conclaved`, for the nodes this binary runs (and its own load generator).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Cmd::Node { args } => {
            die_with_parent();
            conclaved::main_with_args(std::iter::once("conclaved".to_string()).chain(args))
        }
        Cmd::Guard { command } => {
            use std::os::unix::process::CommandExt;
            die_with_parent();
            let error = std::process::Command::new(&command[0]).args(&command[1..]).exec();
            eprintln!("conclave-lab guard: cannot run {}: {error}", command[0]);
            ExitCode::from(127)
        }
        Cmd::Check { file, check_budget } => {
            match conclave_lab::check::check_file(&file, check_budget) {
                Ok(report) => {
                    print!("{}", report.render());
                    if report.linearizable() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(error) => {
                    eprintln!("conclave-lab: {error:#}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Ab(options) => {
            tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
            let runtime = tokio::runtime::Runtime::new().expect("cannot start the runtime");
            match runtime.block_on(ab(*options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("conclave-lab: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Bench(options) => {
            tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
            // The load generator shares the cores with the clusters it measures, so it runs on
            // one thread: no work stealing, and no wake-ups of another worker for every
            // request and answer. Serializable get at 64 clients against Raft: 15.5 µs of the
            // generator's CPU per request on tokio's multi-threaded runtime, 10.1 µs on this one
            // (docs/benchmarks.md).
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cannot start the runtime");
            match runtime.block_on(bench(*options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("conclave-lab: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Up { protocol, nodes, data_dir, reuse, log_level, ready_timeout } => {
            tracing_subscriber::fmt().with_env_filter("warn").init();
            let runtime = tokio::runtime::Runtime::new().expect("cannot start the runtime");
            match runtime.block_on(up(protocol, nodes, data_dir, reuse, log_level, ready_timeout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("conclave-lab: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn ab(options: AbOptions) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lab's own executable")?;
    // Every run is capped: the workload, startup, convergence and a margin, per target and run.
    let targets = conclave_lab::ab::targets(&options)?.len() as u32;
    let per_target = options.duration.min(MAX_DURATION)
        + options.ready_timeout
        + options.convergence_timeout
        + Duration::from_secs(120);
    let cap = per_target * targets * options.runs.max(1) as u32;
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(cap, conclave_lab::ab::run_ab(options, exe)) => outcome,
        _ = conclaved::server::shutdown_signal() => {
            eprintln!("\ninterrupted: stopping every process the lab started");
            anyhow::bail!("interrupted");
        }
    };
    let (results, out) =
        outcome.map_err(|_| anyhow::anyhow!("the A/B run passed its time cap of {cap:?}"))??;
    println!("{}", conclave_lab::report::table(&results.summary));
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

async fn bench(options: BenchOptions) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the lab's own executable")?;
    let command: Vec<String> = std::env::args().skip(1).collect();
    let outcome = tokio::select! {
        outcome = conclave_lab::bench::run_bench(options, exe, command) => outcome,
        _ = conclaved::server::shutdown_signal() => {
            eprintln!("\ninterrupted: stopping every process the lab started");
            anyhow::bail!("interrupted");
        }
    };
    let (results, out) = outcome?;
    print!("{}", conclave_lab::bench_report::render(&results));
    println!("results: {}", out.join("bench.json").display());
    Ok(())
}

async fn up(
    protocol: String,
    nodes: usize,
    data_dir: Option<PathBuf>,
    reuse: bool,
    log_level: String,
    ready_timeout: Duration,
) -> anyhow::Result<()> {
    let data_root =
        data_dir.unwrap_or_else(|| PathBuf::from("lab-data").join(format!("up-{protocol}")));
    if !reuse && data_root.exists() {
        std::fs::remove_dir_all(&data_root)
            .with_context(|| format!("cannot empty {}", data_root.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find the lab's own executable")?;
    let mut spec = ClusterSpec::new(&protocol, nodes, exe, &data_root);
    spec.node_args = vec!["node".into()];
    spec.log_level = log_level;
    let mut cluster = Cluster::start(spec)?;
    for node in &cluster.nodes {
        println!(
            "node {} client={} peer={} metrics={} data={}",
            node.id,
            node.client,
            node.peer,
            node.metrics,
            node.data_dir.display()
        );
    }
    let ready = tokio::select! {
        ready = cluster.wait_ready(ready_timeout) => ready,
        _ = conclaved::server::shutdown_signal() => {
            cluster.stop_all(Duration::from_secs(10))?;
            return Ok(());
        }
    };
    if let Err(error) = ready {
        for node in &cluster.nodes {
            eprintln!("--- node {} log tail ---\n{}", node.id, cluster.log_tail(node.id, 10));
        }
        cluster.stop_all(Duration::from_secs(10))?;
        return Err(error);
    }
    println!("ready");
    eprintln!(
        "try: ETCDCTL_API=3 etcdctl --endpoints={} put hello world   (Ctrl-C stops the cluster)",
        cluster.endpoints().join(",")
    );
    conclaved::server::shutdown_signal().await;
    eprintln!("stopping {} nodes", cluster.nodes.len());
    cluster.stop_all(Duration::from_secs(10))?;
    eprintln!("stopped");
    Ok(())
}
