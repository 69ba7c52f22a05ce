//! The `bench` command's options and their validation.

use crate::bench_load::Workload;
use crate::options::parse_duration;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `conclave-lab bench`: throughput and latency of every protocol next to etcd's.
#[derive(Clone, Debug, Args)]
pub struct BenchOptions {
    /// Protocols to measure, comma-separated (`none` for etcd alone).
    #[arg(long, value_delimiter = ',', default_value = "raft,paxos,totem,gossip")]
    pub protocols: Vec<String>,
    /// Also measure a real 3-node etcd 3.4 (`etcd` on the PATH), the baseline of the ratios.
    #[arg(long)]
    pub etcd: bool,
    /// The etcd executable (default: `etcd` on the PATH).
    #[arg(long, value_name = "FILE")]
    pub etcd_binary: Option<PathBuf>,
    /// Workloads, comma-separated: put, get-linearizable, get-serializable, cas.
    #[arg(long, value_delimiter = ',', default_value = "put,get-linearizable,get-serializable,cas", value_parser = Workload::parse)]
    pub workloads: Vec<Workload>,
    /// Concurrent client counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub clients: Vec<usize>,
    /// Rounds; every figure reported is the median over the rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// How long each cell (workload × clients × target) is measured, per round.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Untimed load before each cell's measurement.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A cheap run for smoke tests: 1 round of 1 s cells at 1 and 16 clients, 1,000 keys.
    #[arg(long)]
    pub quick: bool,
    /// Keys, written before the first cell so that reads and compare-and-swaps find them.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Nodes per cluster, comma-separated. The workload matrix uses the first; `--scaling`
    /// measures put at each (default with --scaling: 3,5,7).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Option<Vec<usize>>,
    /// Also measure put at each `--nodes` count, and gossip convergence at `--gossip-sizes`.
    #[arg(long)]
    pub scaling: bool,
    /// Gossip cluster sizes for the convergence measurement of `--scaling`.
    #[arg(long, value_delimiter = ',', default_value = "3,5,7,9,11,13,15")]
    pub gossip_sizes: Vec<usize>,
    /// Writes timed per gossip cluster size.
    #[arg(long, default_value_t = 20)]
    pub convergence_samples: usize,
    /// Also measure resident memory per node after loading `--memory-keys` keys.
    #[arg(long)]
    pub memory: bool,
    #[arg(long, default_value_t = 100_000)]
    pub memory_keys: usize,
    /// Skip the workload matrix (e.g. only `--scaling` or `--memory`).
    #[arg(long)]
    pub no_matrix: bool,
    /// fdatasync samples of the machine probe.
    #[arg(long, default_value_t = 200)]
    pub fsync_samples: usize,
    /// Loopback round trips of the machine probe.
    #[arg(long, default_value_t = 2000)]
    pub rtt_samples: usize,
    /// A request unanswered after this long fails.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// How long a cluster may take to accept its first write.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Where bench.json, bench.txt and the plot go (default: lab-out/bench-<UTC time>); cluster
    /// data goes to its `data` folder, removed at the end unless --keep-data.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub keep_data: bool,
    #[arg(long)]
    pub no_plots: bool,
}

impl BenchOptions {
    /// Applies `--quick` to every option left at its default.
    pub fn apply_quick(&mut self) {
        if !self.quick {
            return;
        }
        let defaults = Self::defaults();
        if self.rounds == defaults.rounds {
            self.rounds = 1;
        }
        if self.duration == defaults.duration {
            self.duration = Duration::from_secs(1);
        }
        if self.warmup == defaults.warmup {
            self.warmup = Duration::from_millis(200);
        }
        if self.clients == defaults.clients {
            self.clients = vec![1, 16];
        }
        if self.keys == defaults.keys {
            self.keys = 1000;
        }
        if self.memory_keys == defaults.memory_keys {
            self.memory_keys = 5000;
        }
        if self.gossip_sizes == defaults.gossip_sizes {
            self.gossip_sizes = vec![3, 5];
        }
        if self.convergence_samples == defaults.convergence_samples {
            self.convergence_samples = 5;
        }
        if self.fsync_samples == defaults.fsync_samples {
            self.fsync_samples = 50;
        }
        if self.rtt_samples == defaults.rtt_samples {
            self.rtt_samples = 500;
        }
    }

    /// Every option at its default.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            options: BenchOptions,
        }
        <Wrap as clap::Parser>::parse_from(["bench"]).options
    }

    /// Node counts: as given, else 3 (and 3,5,7 with --scaling).
    pub fn node_counts(&self) -> Vec<usize> {
        match &self.nodes {
            Some(n) if !n.is_empty() => n.clone(),
            _ if self.scaling => vec![3, 5, 7],
            _ => vec![3],
        }
    }

    /// Protocol names, without `none` and blanks.
    pub fn protocol_names(&self) -> Vec<String> {
        self.protocols
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty() && p != "none")
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if self.clients.is_empty() || self.clients.contains(&0) {
            return Err(format!("--clients must list positive counts, got {:?}", self.clients));
        }
        if self.clients.iter().any(|&c| c > 4096) {
            return Err(format!("--clients: at most 4096 clients, got {:?}", self.clients));
        }
        if self.workloads.is_empty() {
            return Err("--workloads is empty".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.value_size == 0 || self.value_size > 1 << 20 {
            return Err(format!("--value-size must be 1..=1048576 bytes, got {}", self.value_size));
        }
        if self.duration < Duration::from_millis(100) || self.duration > Duration::from_secs(600) {
            return Err(format!("--duration must be 100ms..=10m, got {:?}", self.duration));
        }
        if let Some(bad) = self.node_counts().iter().find(|&&n| n == 0 || n > 15) {
            return Err(format!("--nodes must be 1..=15, got {bad}"));
        }
        if let Some(bad) = self.gossip_sizes.iter().find(|&&n| !(2..=31).contains(&n)) {
            return Err(format!("--gossip-sizes must be 2..=31, got {bad}"));
        }
        if self.protocol_names().is_empty() && !self.etcd {
            return Err("nothing to measure: name --protocols or --etcd".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        options: BenchOptions,
    }

    fn parse(args: &[&str]) -> BenchOptions {
        Wrap::parse_from(std::iter::once("bench").chain(args.iter().copied())).options
    }

    #[test]
    fn defaults_are_the_issue_matrix() {
        let o = parse(&[]);
        assert_eq!(o.clients, vec![1, 16, 64, 256]);
        assert_eq!(o.workloads, Workload::ALL.to_vec());
        assert_eq!((o.rounds, o.keys, o.value_size), (3, 10_000, 256));
        assert_eq!(o.node_counts(), vec![3]);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn quick_shrinks_only_what_was_left_at_default() {
        let mut o = parse(&["--quick", "--clients", "4"]);
        o.apply_quick();
        assert_eq!((o.rounds, o.keys), (1, 1000));
        assert_eq!(o.clients, vec![4]);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(parse(&["--rounds", "0"]).validate().unwrap_err().contains("--rounds"));
        assert!(parse(&["--clients", "0"]).validate().unwrap_err().contains("--clients"));
        assert!(parse(&["--protocols", "none"]).validate().unwrap_err().contains("--etcd"));
        assert!(parse(&["--nodes", "0"]).validate().unwrap_err().contains("--nodes"));
        assert!(parse(&["--scaling"]).node_counts() == vec![3, 5, 7]);
    }
}
