//! `conclave-lab`: start local clusters, and compare protocols under the same workload and faults.

use anyhow::Context;
use clap::{Parser, Subcommand};
use conclave_lab::cluster::{Cluster, ClusterSpec};
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
    /// Run one node (what `up` starts in each child process; same as `conclaved`).
    #[command(hide = true)]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len()));
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}`; use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Cmd::Node { args } => {
            conclaved::main_with_args(std::iter::once("conclaved".to_string()).chain(args))
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
