//! `bench.json`, its schema, the medians and ratios to etcd, and the text tables.
//!
//! Schema (version [`BENCH_SCHEMA_VERSION`]); times in the cells are milliseconds, the machine
//! probes are microseconds, memory is bytes:
//!
//! ```text
//! { schema_version, tool, tool_version, started_at, command: [argv...],
//!   options: { targets, workloads, clients, rounds, duration_s, warmup_s, keys, value_bytes,
//!              nodes, clients_per_channel },
//!   machine: { cores, fdatasync: {samples, p50_us, p99_us, max_us}, loopback_rtt: {...} },
//!   machine_after: null | { the same probes, taken again once the matrix is done },
//!   cells: [ { nodes, workload, clients, target, status: "ok"|"unsupported"|"failed", note,
//!              rounds: [figures...], median: figures|null, vs_etcd: ratios|null } ],
//!   scaling: null | { put: [cell...], gossip_convergence: [ {nodes, samples, failed,
//!                                                              p50_ms, max_ms} ] },
//!   memory: null | [ { target, keys, value_bytes, rss_bytes: [per node], max_rss_bytes,
//!                      vs_etcd } ],
//!   errors: [ "what failed to start or run" ] }
//! figures = { throughput_ops_per_s, p50_ms, p99_ms, p999_ms, ops, errors, cas_misses,
//!             error_kinds?: { "Code: message": count } }
//! ratios  = { throughput, p50, p99, p999 }   (target ÷ etcd; > 1 is faster for throughput,
//!                                             < 1 is faster for latency)
//! ```
//!
//! A cell's median takes, figure by figure, the median over its rounds; its counts are summed
//! over the rounds.

use crate::bench_machine::Machine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const BENCH_SCHEMA_VERSION: u32 = 1;

/// What one cell measured in one round (or the median over rounds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub throughput_ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub ops: u64,
    pub errors: u64,
    pub cas_misses: u64,
    /// The errors by kind (gRPC code and message).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
}

impl Figures {
    /// Figures of one round from the clients' tally over a window of `window_s` seconds.
    pub fn of(tally: &crate::bench_load::Tally, window_s: f64) -> Self {
        let mut lat = tally.latencies_us.clone();
        lat.sort_unstable();
        let at = |p: f64| {
            if lat.is_empty() {
                return 0.0;
            }
            // Less a hair, so that 99.9% of 1000 is rank 999 despite floating point.
            let rank = ((p / 100.0) * lat.len() as f64 - 1e-9).ceil() as usize;
            f64::from(lat[rank.clamp(1, lat.len()) - 1]) / 1000.0
        };
        Self {
            throughput_ops_per_s: tally.ops as f64 / window_s.max(1e-9),
            p50_ms: at(50.0),
            p99_ms: at(99.0),
            p999_ms: at(99.9),
            ops: tally.ops,
            errors: tally.errors,
            cas_misses: tally.cas_misses,
            error_kinds: tally.error_kinds.clone(),
        }
    }

    /// The error kinds, most frequent first: "Unavailable: leader changed ×485; ...".
    pub fn error_summary(&self) -> Option<String> {
        let mut kinds: Vec<(&String, &u64)> = self.error_kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = kinds.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Figure by figure, the median over `rounds`; counts summed.
    pub fn median(rounds: &[Figures]) -> Option<Self> {
        if rounds.is_empty() {
            return None;
        }
        let med = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
        };
        Some(Self {
            throughput_ops_per_s: med(|f| f.throughput_ops_per_s),
            p50_ms: med(|f| f.p50_ms),
            p99_ms: med(|f| f.p99_ms),
            p999_ms: med(|f| f.p999_ms),
            ops: rounds.iter().map(|f| f.ops).sum(),
            errors: rounds.iter().map(|f| f.errors).sum(),
            cas_misses: rounds.iter().map(|f| f.cas_misses).sum(),
            error_kinds: rounds.iter().fold(BTreeMap::new(), |mut all, f| {
                for (kind, n) in &f.error_kinds {
                    *all.entry(kind.clone()).or_default() += n;
                }
                all
            }),
        })
    }
}

/// A target's figures divided by etcd's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Ratios {
    pub fn of(target: &Figures, etcd: &Figures) -> Option<Self> {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        if etcd.ops == 0 || target.ops == 0 {
            return None;
        }
        Some(Self {
            throughput: div(target.throughput_ops_per_s, etcd.throughput_ops_per_s),
            p50: div(target.p50_ms, etcd.p50_ms),
            p99: div(target.p99_ms, etcd.p99_ms),
            p999: div(target.p999_ms, etcd.p999_ms),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    Ok,
    /// The target does not offer the operation (Gossip: linearizable reads, compare-and-swap).
    Unsupported,
    Failed,
}

/// One workload at one client count against one target, over every round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub nodes: usize,
    pub workload: String,
    pub clients: usize,
    pub target: String,
    pub status: CellStatus,
    pub note: Option<String>,
    pub rounds: Vec<Figures>,
    pub median: Option<Figures>,
    pub vs_etcd: Option<Ratios>,
}

/// Fills in every cell's median and its ratios to the etcd cell of the same nodes, workload
/// and clients.
pub fn finish(cells: &mut [Cell]) {
    for cell in cells.iter_mut() {
        cell.median = Figures::median(&cell.rounds);
    }
    let etcd: Vec<Cell> = cells.iter().filter(|c| c.target == "etcd").cloned().collect();
    for cell in cells.iter_mut() {
        let base = etcd.iter().find(|e| {
            e.nodes == cell.nodes && e.workload == cell.workload && e.clients == cell.clients
        });
        cell.vs_etcd = match (&cell.median, base.and_then(|b| b.median.as_ref())) {
            (Some(mine), Some(theirs)) => Ratios::of(mine, theirs),
            _ => None,
        };
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchOptions {
    pub targets: Vec<String>,
    pub workloads: Vec<String>,
    pub clients: Vec<usize>,
    pub rounds: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub keys: usize,
    pub value_bytes: usize,
    pub nodes: usize,
    pub clients_per_channel: usize,
}

/// Time for a write through one gossip node to be served by every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    pub nodes: usize,
    pub samples: usize,
    /// Writes not seen everywhere within the limit.
    pub failed: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub put: Vec<Cell>,
    pub gossip_convergence: Vec<Convergence>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub target: String,
    pub keys: usize,
    pub value_bytes: usize,
    pub rss_bytes: Vec<u64>,
    pub max_rss_bytes: u64,
    /// max_rss_bytes ÷ etcd's.
    pub vs_etcd: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub started_at: String,
    pub command: Vec<String>,
    pub options: BenchOptions,
    pub machine: Machine,
    /// The same probes once the matrix is done (absent from files written before they were
    /// taken, and without a matrix).
    #[serde(default)]
    pub machine_after: Option<Machine>,
    pub cells: Vec<Cell>,
    pub scaling: Option<Scaling>,
    pub memory: Option<Vec<Memory>>,
    pub errors: Vec<String>,
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(x) if x.is_finite() => format!("{x:.2}x"),
        _ => "-".into(),
    }
}

/// A table of `cells` (one workload, or the scaling cells), one row per clients × target.
pub fn table(title: &str, cells: &[&Cell], by_nodes: bool) -> String {
    let mut out = format!("{title}\n");
    let first = if by_nodes { "nodes" } else { "clients" };
    let _ = writeln!(
        out,
        "{first:>7}  {:<8} {:>10} {:>7} {:>8} {:>7} {:>8} {:>7} {:>9} {:>7} {:>7}",
        "target",
        "op/s",
        "×etcd",
        "p50 ms",
        "×etcd",
        "p99 ms",
        "×etcd",
        "p99.9 ms",
        "×etcd",
        "errors"
    );
    for cell in cells {
        let lead = if by_nodes { cell.nodes } else { cell.clients };
        let Some(m) = &cell.median else {
            let why = match cell.status {
                CellStatus::Unsupported => "not offered",
                _ => "failed",
            };
            let note = cell.note.as_deref().unwrap_or("");
            let _ = writeln!(out, "{lead:>7}  {:<8} {why}: {note}", cell.target);
            continue;
        };
        let v = cell.vs_etcd.as_ref();
        let _ = writeln!(
            out,
            "{lead:>7}  {:<8} {:>10.0} {:>7} {:>8.3} {:>7} {:>8.3} {:>7} {:>9.3} {:>7} {:>7}",
            cell.target,
            m.throughput_ops_per_s,
            ratio(v.map(|r| r.throughput)),
            m.p50_ms,
            ratio(v.map(|r| r.p50)),
            m.p99_ms,
            ratio(v.map(|r| r.p99)),
            m.p999_ms,
            ratio(v.map(|r| r.p999)),
            m.errors,
        );
    }
    for cell in cells {
        if let Some(summary) = cell.median.as_ref().and_then(Figures::error_summary) {
            let lead = if by_nodes { cell.nodes } else { cell.clients };
            let _ = writeln!(out, "{lead:>7}  {:<8} errors: {summary}", cell.target);
        }
    }
    out
}

/// The machine probes in one line.
pub fn machine_line(m: &Machine) -> String {
    format!(
        "{} cores; fdatasync 4 KiB p50 {:.0} µs p99 {:.0} µs; loopback TCP round trip p50 {:.0} µs p99 {:.0} µs",
        m.cores,
        m.fdatasync.p50_us,
        m.fdatasync.p99_us,
        m.loopback_rtt.p50_us,
        m.loopback_rtt.p99_us
    )
}

/// Every table of a result: the machine, one per workload, scaling, memory.
pub fn render(results: &BenchResults) -> String {
    let o = &results.options;
    let m = &results.machine;
    let mut out = String::new();
    let _ = writeln!(out, "machine: {}", machine_line(m));
    if let Some(after) = &results.machine_after {
        let _ = writeln!(out, "machine after the matrix: {}", machine_line(after));
    }
    let _ = writeln!(
        out,
        "{} nodes per target; {} B values; {} keys; medians of {} round(s) of {:.1} s per cell\n",
        o.nodes, o.value_bytes, o.keys, o.rounds, o.duration_s
    );
    for workload in &o.workloads {
        let cells: Vec<&Cell> = results.cells.iter().filter(|c| &c.workload == workload).collect();
        if !cells.is_empty() {
            out.push_str(&table(workload, &cells, false));
            out.push('\n');
        }
    }
    if let Some(scaling) = &results.scaling {
        let mut clients: Vec<usize> = scaling.put.iter().map(|c| c.clients).collect();
        clients.dedup();
        clients.sort_unstable();
        clients.dedup();
        for c in clients {
            let cells: Vec<&Cell> = scaling.put.iter().filter(|x| x.clients == c).collect();
            out.push_str(&table(&format!("scaling: put at {c} clients"), &cells, true));
            out.push('\n');
        }
        if !scaling.gossip_convergence.is_empty() {
            out.push_str(
                "gossip convergence (a write through one node, until every node serves it)\n",
            );
            let _ = writeln!(
                out,
                "{:>7} {:>8} {:>9} {:>9} {:>7}",
                "nodes", "samples", "p50 ms", "max ms", "failed"
            );
            for c in &scaling.gossip_convergence {
                let _ = writeln!(
                    out,
                    "{:>7} {:>8} {:>9.1} {:>9.1} {:>7}",
                    c.nodes, c.samples, c.p50_ms, c.max_ms, c.failed
                );
            }
            out.push('\n');
        }
    }
    if let Some(memory) = &results.memory {
        out.push_str("resident memory per node (VmRSS) after loading the keys\n");
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>12} {:>7}  per node MiB",
            "target", "keys", "max MiB", "×etcd"
        );
        for m in memory {
            let per: Vec<String> =
                m.rss_bytes.iter().map(|b| format!("{:.1}", *b as f64 / 1048576.0)).collect();
            let _ = writeln!(
                out,
                "{:<8} {:>8} {:>12.1} {:>7}  {}",
                m.target,
                m.keys,
                m.max_rss_bytes as f64 / 1048576.0,
                ratio(m.vs_etcd),
                per.join(" ")
            );
        }
        out.push('\n');
    }
    for error in &results.errors {
        let _ = writeln!(out, "error: {error}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(throughput: f64, p50: f64) -> Figures {
        Figures {
            throughput_ops_per_s: throughput,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            p999_ms: p50 * 3.0,
            ops: 10,
            ..Default::default()
        }
    }

    fn cell(target: &str, rounds: Vec<Figures>) -> Cell {
        Cell {
            nodes: 3,
            workload: "put".into(),
            clients: 16,
            target: target.into(),
            status: CellStatus::Ok,
            note: None,
            rounds,
            median: None,
            vs_etcd: None,
        }
    }

    #[test]
    fn medians_per_figure_and_ratios_to_etcd() {
        let mut cells = vec![
            cell("raft", vec![figures(100.0, 1.0), figures(300.0, 3.0), figures(200.0, 9.0)]),
            cell("etcd", vec![figures(50.0, 2.0), figures(100.0, 6.0), figures(150.0, 4.0)]),
        ];
        finish(&mut cells);
        let raft = cells[0].median.clone().unwrap();
        assert_eq!((raft.throughput_ops_per_s, raft.p50_ms, raft.ops), (200.0, 3.0, 30));
        let v = cells[0].vs_etcd.clone().unwrap();
        assert_eq!((v.throughput, v.p50), (2.0, 0.75));
        assert_eq!(cells[1].vs_etcd.clone().unwrap().throughput, 1.0);
    }

    #[test]
    fn error_kinds_add_up_over_rounds_most_frequent_first() {
        let with = |kinds: &[(&str, u64)]| Figures {
            errors: kinds.iter().map(|(_, n)| n).sum(),
            error_kinds: kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            ..figures(100.0, 1.0)
        };
        let rounds = [
            with(&[("Unavailable: leader changed", 400)]),
            with(&[]),
            with(&[("Unavailable: leader changed", 85), ("DeadlineExceeded: timed out", 2)]),
        ];
        let all = Figures::median(&rounds).unwrap();
        assert_eq!(all.errors, 487);
        assert_eq!(
            all.error_summary().as_deref(),
            Some("Unavailable: leader changed ×485; DeadlineExceeded: timed out ×2")
        );
        assert_eq!(Figures::median(&[with(&[])]).unwrap().error_summary(), None);
    }

    #[test]
    fn percentiles_from_a_tally() {
        let tally = crate::bench_load::Tally {
            ops: 1000,
            latencies_us: (1..=1000).rev().collect(),
            ..Default::default()
        };
        let f = Figures::of(&tally, 2.0);
        assert_eq!(f.throughput_ops_per_s, 500.0);
        assert_eq!((f.p50_ms, f.p99_ms, f.p999_ms), (0.5, 0.99, 0.999));
    }
}
