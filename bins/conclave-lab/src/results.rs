//! `results.json`: the stable, versioned record of an A/B run (documented field by field in
//! docs/ab-testing.md). The terminal table and report.md are printed from these same structs,
//! so they cannot disagree with the file.
//!
//! Compatibility: fields are only added within a schema version; renaming or removing one, or
//! changing its meaning or unit, bumps [`SCHEMA_VERSION`].

use crate::analysis::Anomaly;
use crate::faults::FaultPlan;
use crate::stats::{FaultOutcome, Latency, OpCounts};
use crate::target::Consistency;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

/// The whole file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub tool: String,
    pub tool_version: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started_at: String,
    pub options: RunOptions,
    pub runs: Vec<RunResult>,
    /// One entry per target, over all runs; what the table shows.
    pub summary: Vec<TargetSummary>,
}

/// The options that shaped the runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub nodes: usize,
    pub duration_s: f64,
    pub clients: usize,
    pub keys: usize,
    pub distribution: String,
    pub value_bytes: usize,
    /// `READ:WRITE:CAS` weights.
    pub mix: String,
    /// `closed`, or `open` at `rate_per_s`.
    pub loop_mode: String,
    pub rate_per_s: Option<f64>,
    pub op_timeout_ms: u64,
    pub seed: u64,
    pub faults: Vec<String>,
    /// `schedule` or `random`.
    pub fault_mode: String,
    pub fault_hold_ms: u64,
    pub runs: usize,
    /// The planted stale-read fault was on (a test of the checker, not of the targets).
    pub planted_stale_reads: bool,
}

/// One run: every target under the same planned faults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub run: usize,
    pub seed: u64,
    pub faults_planned: Vec<FaultPlan>,
    pub targets: Vec<TargetResult>,
}

/// Per-operation costs from the nodes' metrics (`None`: the target does not expose it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    pub messages_per_op: Option<f64>,
    pub bytes_per_op: Option<f64>,
    pub fsyncs_per_op: Option<f64>,
    pub messages_total: Option<f64>,
    pub bytes_total: Option<f64>,
    pub fsyncs_total: Option<f64>,
}

/// What the checkers found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub keys_checked: usize,
    /// Keys whose history has no linearization.
    pub violations: usize,
    /// Keys the checker gave up on.
    pub inconclusive: usize,
    pub stale_reads: usize,
    pub lost_updates: usize,
    /// Time from the end of the workload (everything healed) until every node served the
    /// same state; `None` if that did not happen within the limit.
    pub convergence_ms: Option<f64>,
    /// The first few anomalies of each kind, with the operations involved.
    pub anomalies: Vec<Anomaly>,
}

/// One target in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    pub name: String,
    pub consistency: Consistency,
    pub nodes: usize,
    /// Why the target could not be run, if it could not (then the figures are empty).
    pub error: Option<String>,
    pub duration_s: f64,
    pub ops: OpCounts,
    pub throughput_ops_per_s: f64,
    pub latency_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub faults: Vec<FaultOutcome>,
    pub costs: Costs,
    pub verdict: Verdict,
    /// Answered requests per `series_bucket_ms`, by completion time.
    pub throughput_series: Vec<u64>,
    pub series_bucket_ms: u64,
    /// (latency ms, fraction of answered requests at most that slow), thinned.
    pub latency_cdf: Vec<[f64; 2]>,
    /// The client history, relative to the report folder.
    pub history_file: Option<String>,
}

impl TargetResult {
    pub fn failed(name: &str, consistency: Consistency, nodes: usize, error: String) -> Self {
        Self {
            name: name.into(),
            consistency,
            nodes,
            error: Some(error),
            duration_s: 0.0,
            ops: OpCounts::default(),
            throughput_ops_per_s: 0.0,
            latency_ms: Latency::default(),
            errors: BTreeMap::new(),
            faults: Vec::new(),
            costs: Costs::default(),
            verdict: Verdict::default(),
            throughput_series: Vec::new(),
            series_bucket_ms: 1_000,
            latency_cdf: Vec::new(),
            history_file: None,
        }
    }
}

/// A target over all runs: sums of counts, means of rates, the worst of the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub name: String,
    pub consistency: Consistency,
    pub runs: usize,
    /// Runs that could not be carried out.
    pub failed_runs: usize,
    pub ops_total: u64,
    pub ops_ok: u64,
    pub throughput_ops_per_s: f64,
    /// Over every answered request of every run.
    pub latency_ms: Latency,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub violations: usize,
    pub inconclusive: usize,
    pub stale_reads: usize,
    pub lost_updates: usize,
    /// The slowest convergence; `None` if some run did not converge.
    pub convergence_ms: Option<f64>,
    /// The mean over faults of the unavailability after each; `None` without faults.
    pub unavailable_ms_mean: Option<f64>,
    pub unavailable_ms_max: Option<f64>,
    pub messages_per_op: Option<f64>,
    pub bytes_per_op: Option<f64>,
    pub fsyncs_per_op: Option<f64>,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Summarizes one target's runs. `latency` is over all runs' answered requests.
pub fn summarize(runs: &[&TargetResult], latency: Latency) -> TargetSummary {
    let first = runs[0];
    let ok: Vec<&&TargetResult> = runs.iter().filter(|r| r.error.is_none()).collect();
    let mut errors = BTreeMap::new();
    for run in &ok {
        for (kind, n) in &run.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
    }
    let unavailable: Vec<f64> =
        ok.iter().flat_map(|r| r.faults.iter().map(|f| f.unavailable_ms)).collect();
    let convergence = if ok.iter().all(|r| r.verdict.convergence_ms.is_some()) && !ok.is_empty() {
        ok.iter().filter_map(|r| r.verdict.convergence_ms).reduce(f64::max)
    } else {
        None
    };
    TargetSummary {
        name: first.name.clone(),
        consistency: first.consistency,
        runs: runs.len(),
        failed_runs: runs.len() - ok.len(),
        ops_total: ok.iter().map(|r| r.ops.total).sum(),
        ops_ok: ok.iter().map(|r| r.ops.ok).sum(),
        throughput_ops_per_s: mean(ok.iter().map(|r| r.throughput_ops_per_s)).unwrap_or(0.0),
        latency_ms: latency,
        errors_total: errors.values().sum(),
        errors,
        violations: ok.iter().map(|r| r.verdict.violations).sum(),
        inconclusive: ok.iter().map(|r| r.verdict.inconclusive).sum(),
        stale_reads: ok.iter().map(|r| r.verdict.stale_reads).sum(),
        lost_updates: ok.iter().map(|r| r.verdict.lost_updates).sum(),
        convergence_ms: convergence,
        unavailable_ms_mean: mean(unavailable.iter().copied()),
        unavailable_ms_max: unavailable.iter().copied().reduce(f64::max),
        messages_per_op: mean(ok.iter().filter_map(|r| r.costs.messages_per_op)),
        bytes_per_op: mean(ok.iter().filter_map(|r| r.costs.bytes_per_op)),
        fsyncs_per_op: mean(ok.iter().filter_map(|r| r.costs.fsyncs_per_op)),
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ` (UTC), and a folder-friendly `YYYYMMDD-HHMMSS`.
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
    )
}
