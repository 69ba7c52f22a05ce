//! `conclave-lab check FILE`: the verdicts of `ab`, on a recorded history file.
//!
//! The file is the checker's history in JSON (what `ab` writes as `history-<target>.json`, or
//! anything else that follows the format documented in conclave-sim). Linearizability is
//! checked per key, and stale reads and compare-and-swap lost updates are counted; lost updates
//! that need the converged final state are only found by `ab`.

use crate::analysis::{self, Anomaly};
use std::fmt::Write as _;
use std::path::Path;

/// What `check` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub operations: usize,
    pub keys: usize,
    pub violations: usize,
    pub inconclusive: usize,
    pub stale_reads: usize,
    pub lost_updates: usize,
    pub anomalies: Vec<Anomaly>,
}

impl CheckReport {
    /// Whether the history is linearizable (every key decided, none violating).
    pub fn linearizable(&self) -> bool {
        self.violations == 0 && self.inconclusive == 0
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for anomaly in &self.anomalies {
            let _ =
                writeln!(out, "{} on key {:?}: {}", anomaly.kind, anomaly.key, anomaly.description);
            for op in &anomaly.operations {
                let _ = writeln!(out, "    {op}");
            }
        }
        let _ = writeln!(
            out,
            "{} operations on {} keys: {} keys not linearizable, {} inconclusive; {} stale reads; {} lost updates",
            self.operations,
            self.keys,
            self.violations,
            self.inconclusive,
            self.stale_reads,
            self.lost_updates
        );
        out.push_str(if self.linearizable() {
            "verdict: linearizable\n"
        } else {
            "verdict: NOT linearizable\n"
        });
        out
    }
}

/// Checks the history in `path`.
pub fn check_file(path: &Path, max_configurations_per_key: usize) -> anyhow::Result<CheckReport> {
    let history = crate::history::load(path)
        .map_err(|e| anyhow::anyhow!("cannot read a history from {}: {e:#}", path.display()))?;
    history
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: malformed history: {e}", path.display()))?;
    let lin = analysis::check_linearizability(&history, max_configurations_per_key);
    let (stale_reads, stale) = analysis::stale_reads(&history);
    let (lost_updates, lost) = analysis::lost_updates(&history, None);
    let mut anomalies = lin.anomalies;
    anomalies.extend(stale);
    anomalies.extend(lost);
    Ok(CheckReport {
        operations: history.operations.len(),
        keys: lin.keys_checked,
        violations: lin.violations,
        inconclusive: lin.inconclusive,
        stale_reads,
        lost_updates,
        anomalies,
    })
}
