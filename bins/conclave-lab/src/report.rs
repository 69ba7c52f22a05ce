//! The side-by-side table (terminal and `table.txt`) and `report.md`, both printed from the
//! same [`Results`] that go into `results.json`, with one formatting per row.

use crate::results::{Results, TargetResult, TargetSummary};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// `n/a` for figures a target does not have.
pub const NOT_AVAILABLE: &str = "n/a";

fn number(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| NOT_AVAILABLE.to_string(), |v| number(v, decimals))
}

/// The table's rows: a label, then one cell per target. Labels are stable (tests and scripts
/// look rows up by them).
pub fn rows(summary: &[TargetSummary]) -> Vec<(String, Vec<String>)> {
    let each = |f: &dyn Fn(&TargetSummary) -> String| summary.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        ("consistency".to_string(), each(&|s| s.consistency.as_str().to_string())),
        ("runs".into(), each(&|s| format!("{}", s.runs - s.failed_runs))),
        ("ops ok".into(), each(&|s| s.ops_ok.to_string())),
        ("ops total".into(), each(&|s| s.ops_total.to_string())),
        ("throughput op/s".into(), each(&|s| number(s.throughput_ops_per_s, 1))),
        ("latency p50 ms".into(), each(&|s| number(s.latency_ms.p50, 2))),
        ("latency p90 ms".into(), each(&|s| number(s.latency_ms.p90, 2))),
        ("latency p99 ms".into(), each(&|s| number(s.latency_ms.p99, 2))),
        ("latency p99.9 ms".into(), each(&|s| number(s.latency_ms.p999, 2))),
        ("latency max ms".into(), each(&|s| number(s.latency_ms.max, 2))),
        ("errors".into(), each(&|s| s.errors_total.to_string())),
    ];
    let kinds: BTreeSet<&String> = summary.iter().flat_map(|s| s.errors.keys()).collect();
    for kind in kinds {
        rows.push((
            format!("errors: {kind}"),
            each(&|s| s.errors.get(kind).copied().unwrap_or(0).to_string()),
        ));
    }
    rows.extend([
        ("unavailable mean ms".to_string(), each(&|s| optional(s.unavailable_ms_mean, 0))),
        ("unavailable max ms".into(), each(&|s| optional(s.unavailable_ms_max, 0))),
        ("messages/op".into(), each(&|s| optional(s.messages_per_op, 2))),
        ("bytes/op".into(), each(&|s| optional(s.bytes_per_op, 0))),
        ("fsyncs/op".into(), each(&|s| optional(s.fsyncs_per_op, 3))),
        ("linearizability violations".into(), each(&|s| s.violations.to_string())),
        ("inconclusive keys".into(), each(&|s| s.inconclusive.to_string())),
        ("stale reads".into(), each(&|s| s.stale_reads.to_string())),
        ("lost updates".into(), each(&|s| s.lost_updates.to_string())),
        ("convergence ms".into(), each(&|s| optional(s.convergence_ms, 0))),
    ]);
    rows
}

/// The plain-text table: a header of target names, then the rows, columns aligned.
pub fn table(summary: &[TargetSummary]) -> String {
    let rows = rows(summary);
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(6);
    let widths: Vec<usize> = summary
        .iter()
        .enumerate()
        .map(|(i, s)| {
            rows.iter().map(|(_, cells)| cells[i].len()).max().unwrap_or(0).max(s.name.len())
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:label_width$}", "target");
    for (s, w) in summary.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", s.name);
    }
    out.push('\n');
    for (label, cells) in &rows {
        let _ = write!(out, "{label:label_width$}");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {cell:>w$}");
        }
        out.push('\n');
    }
    out
}

fn markdown_table(summary: &[TargetSummary]) -> String {
    let mut out = String::from("| |");
    for s in summary {
        let _ = write!(out, " {} |", s.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(summary.len()));
    out.push('\n');
    for (label, cells) in rows(summary) {
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    out
}

fn target_section(out: &mut String, run: usize, t: &TargetResult) {
    let _ = writeln!(out, "### Run {run}: {}\n", t.name);
    if let Some(error) = &t.error {
        let _ = writeln!(out, "Could not run: \n\n```\n{error}\n```\n");
        return;
    }
    let _ = writeln!(
        out,
        "{} ops ({} ok, {} failed, {} writes of unknown outcome) in {:.1} s; history: `{}`.\n",
        t.ops.total,
        t.ops.ok,
        t.ops.failed,
        t.ops.indefinite,
        t.duration_s,
        t.history_file.as_deref().unwrap_or("-")
    );
    if !t.faults.is_empty() {
        out.push_str("| fault | node | injected ms | healed ms | writes unavailable ms |\n|---|---:|---:|---:|---:|\n");
        for f in &t.faults {
            let node = f.event.node.map_or("-".to_string(), |n| (n + 1).to_string());
            let healed = f.event.healed_ms.map_or("-".to_string(), |h| h.to_string());
            let note = f.event.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {}{note} | {node} | {} | {healed} | {:.0}{} |",
                f.event.kind,
                f.event.injected_ms,
                f.unavailable_ms,
                if f.recovered { "" } else { " (not recovered)" }
            );
        }
        out.push('\n');
    }
    let v = &t.verdict;
    let _ = writeln!(
        out,
        "Verdict: {} of {} keys not linearizable, {} inconclusive; {} stale reads; {} lost updates; converged {}.\n",
        v.violations,
        v.keys_checked,
        v.inconclusive,
        v.stale_reads,
        v.lost_updates,
        v.convergence_ms
            .map_or("not within the limit".to_string(), |ms| format!("after {ms:.0} ms"))
    );
    for anomaly in &v.anomalies {
        let _ =
            writeln!(out, "- **{}** on `{}`: {}", anomaly.kind, anomaly.key, anomaly.description);
        for op in &anomaly.operations {
            let _ = writeln!(out, "  - `{op}`");
        }
    }
    if !v.anomalies.is_empty() {
        out.push('\n');
    }
}

/// report.md.
pub fn markdown(results: &Results, plots: bool) -> String {
    let o = &results.options;
    let mut out = String::new();
    let _ = writeln!(out, "# Conclave A/B report\n");
    let _ = writeln!(
        out,
        "Started {} with conclave-lab {}. Targets: {}. {} nodes each, {} run(s) of {:.0} s.\n",
        results.started_at,
        results.tool_version,
        o.targets.join(", "),
        o.nodes,
        o.runs,
        o.duration_s
    );
    let _ = writeln!(
        out,
        "Workload: {} clients, {} loop{}, {} keys ({}), {}-byte values, read:write:cas = {}, request timeout {} ms, seed {}.\n\nFaults: {} ({}, each held {} ms).{}\n",
        o.clients,
        o.loop_mode,
        o.rate_per_s.map(|r| format!(" at {r} op/s")).unwrap_or_default(),
        o.keys,
        o.distribution,
        o.value_bytes,
        o.mix,
        o.op_timeout_ms,
        o.seed,
        if o.faults.is_empty() { "none".to_string() } else { o.faults.join(", ") },
        o.fault_mode,
        o.fault_hold_ms,
        if o.planted_stale_reads {
            "\n\n**Planted stale reads were on**: reads went, serializable, to one node and were recorded as linearizable. Violations are expected; this tests the checker."
        } else {
            ""
        }
    );
    let _ = writeln!(out, "## Summary\n\n{}", markdown_table(&results.summary));
    out.push_str(
        "Latency is over answered requests. Unavailability is the longest stretch without a successful write after each fault. Costs are per answered request, from each node's /metrics (n/a: the target does not count it). Violations count keys whose history has no linearization (the conclave-sim checker); stale reads and lost updates are defined in docs/ab-testing.md.\n\n",
    );
    if plots {
        out.push_str("## Plots\n\n![latency CDF](latency-cdf.svg)\n\n![throughput](throughput.svg)\n\n![unavailability](unavailability.svg)\n\n(PNG versions beside the SVGs.)\n\n");
    }
    out.push_str("## Details\n\n");
    for run in &results.runs {
        if !run.faults_planned.is_empty() {
            let plan: Vec<String> = run
                .faults_planned
                .iter()
                .map(|p| format!("{} at {} ms for {} ms", p.kind, p.at_ms, p.hold_ms))
                .collect();
            let _ = writeln!(
                out,
                "Run {} (seed {}) planned faults: {}.\n",
                run.run,
                run.seed,
                plan.join("; ")
            );
        }
        for target in &run.targets {
            target_section(&mut out, run.run, target);
        }
    }
    out
}
