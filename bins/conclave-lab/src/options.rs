//! The `ab` command's options, their parsing and their validation.

use crate::faults::{FaultKind, FaultMode};
use crate::workload::{KeyDistribution, LoopMode, OpMix, WorkloadConfig};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The longest run the lab accepts: every process it starts lives at most about this long.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Parses `20s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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

/// `conclave-lab ab`: the same workload and faults against each target, then a comparison.
#[derive(Clone, Debug, Args)]
pub struct AbOptions {
    /// Protocols to compare, comma-separated (default: every protocol this build runs).
    #[arg(long, value_delimiter = ',')]
    pub protocols: Option<Vec<String>>,
    /// Also run a real 3-node etcd 3.4 (`etcd` on the PATH) as the baseline.
    #[arg(long)]
    pub etcd: bool,
    /// The etcd executable (default: `etcd` on the PATH).
    #[arg(long, value_name = "FILE")]
    pub etcd_binary: Option<PathBuf>,
    /// Use a cluster that is already running at these client endpoints (host:port, comma-
    /// separated) instead of starting one; no process or network faults can be injected.
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub endpoints: Option<Vec<String>>,
    /// Where the --endpoints target serves Prometheus metrics (host:port, comma-separated, one
    /// per node), to count its messages, bytes and fsyncs; Conclave and etcd names are both
    /// recognised.
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub endpoints_metrics: Option<Vec<std::net::SocketAddr>>,
    /// Name of the --endpoints target in the report.
    #[arg(long, default_value = "external")]
    pub endpoints_name: String,
    /// Judge the --endpoints target as `linearizable` or `eventual`.
    #[arg(long, default_value = "linearizable")]
    pub endpoints_consistency: String,
    /// Nodes per lab-started cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the workload runs on each target.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Size of the key space.
    #[arg(long, default_value_t = 16)]
    pub keys: usize,
    /// Key distribution: uniform, zipf or zipf:EXPONENT.
    #[arg(long, default_value = "uniform", value_parser = KeyDistribution::parse)]
    pub distribution: KeyDistribution,
    /// Value size in bytes.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Weights of reads, writes and compare-and-swaps, READ:WRITE:CAS.
    #[arg(long, default_value = "50:40:10", value_parser = OpMix::parse)]
    pub mix: OpMix,
    /// Open loop at this many requests per second in total (default: closed loop).
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// A request unanswered after this long is abandoned (a write then counts as possibly
    /// applied).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// Seed for the workload and the fault plan (run i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults, comma-separated: kill, leader-kill, leader-stop, pause, leader-pause, partition,
    /// partition-asym, isolate-leader, split-halves, delay, drop; `all`; or `none`.
    #[arg(long, default_value = "leader-kill,partition")]
    pub faults: String,
    /// `schedule`: each listed fault once, evenly spaced; `random`: drawn at random times.
    #[arg(long, default_value = "schedule")]
    pub fault_mode: String,
    /// How long each fault lasts before it is healed.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub fault_hold: Duration,
    /// Repeat the whole comparison this many times (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Report folder (default: lab-out/<UTC timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the nodes' data directories in the report folder.
    #[arg(long)]
    pub keep_data: bool,
    /// How long a target may take to accept its first write.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// How long to wait for replicas to converge after the workload.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub convergence_timeout: Duration,
    /// Linearizability search budget per key, in configurations.
    #[arg(long, default_value_t = 2_000_000)]
    pub check_budget: usize,
    /// A checker self-test: every read goes, serializable, to the node the first partition
    /// isolates, yet is recorded as linearizable. The checker must report violations.
    #[arg(long)]
    pub plant_stale_reads: bool,
    /// Skip the PNG/SVG plots.
    #[arg(long)]
    pub no_plots: bool,
}

impl AbOptions {
    pub fn fault_kinds(&self) -> Result<Vec<FaultKind>, String> {
        FaultKind::parse_list(&self.faults)
    }

    pub fn fault_mode(&self) -> Result<FaultMode, String> {
        match self.fault_mode.as_str() {
            "schedule" => Ok(FaultMode::Schedule),
            "random" => Ok(FaultMode::Random),
            other => Err(format!("`--fault-mode {other}`: expected schedule or random")),
        }
    }

    pub fn workload(&self, seed: u64) -> WorkloadConfig {
        WorkloadConfig {
            clients: self.clients,
            keys: self.keys,
            distribution: self.distribution,
            value_bytes: self.value_size,
            mix: self.mix,
            mode: match self.rate {
                Some(rate_per_s) => LoopMode::Open { rate_per_s },
                None => LoopMode::Closed,
            },
            op_timeout_ms: self.op_timeout.as_millis() as u64,
            max_in_flight_per_client: 32,
            seed,
        }
    }

    /// Checks everything that can be checked before starting anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "`--duration {:?}`: expected more than 0 and at most 1h",
                self.duration
            ));
        }
        if !(1..=9).contains(&self.nodes) {
            return Err(format!("`--nodes {}`: expected 1 to 9", self.nodes));
        }
        if !(1..=1000).contains(&self.runs) {
            return Err(format!("`--runs {}`: expected 1 to 1000", self.runs));
        }
        if self.fault_hold.is_zero() {
            return Err("`--fault-hold 0`: expected a positive duration".into());
        }
        if !["linearizable", "eventual"].contains(&self.endpoints_consistency.as_str()) {
            return Err(format!(
                "`--endpoints-consistency {}`: expected linearizable or eventual",
                self.endpoints_consistency
            ));
        }
        self.fault_kinds()?;
        self.fault_mode()?;
        self.workload(self.seed).validate()
    }
}
