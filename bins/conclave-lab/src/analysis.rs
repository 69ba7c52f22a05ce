//! Verdicts on a client history: linearizability per key (conclave-sim's checker), and for
//! eventual targets the anomalies that matter there: stale reads and lost updates.
//!
//! Every written value is unique, so a read names the write it observed. With that:
//!
//! - A **stale read** returned a value older than a write that completed before the read
//!   started: the read observed write W (or the initial absence), and some acknowledged write
//!   W' on the key completed before the read was invoked, while W completed before W' was
//!   invoked (so W' is certainly newer than W).
//! - A **lost update** is an acknowledged write that vanished: either two compare-and-swaps on
//!   a key both succeeded from the same expected value (one overwrote the other unseen), or the
//!   key's converged final value comes from a write W while an acknowledged write W' on the key
//!   was invoked after W completed (W' certainly came later, yet did not survive).
//!
//! Timed-out writes count as possibly applied: they may be the source of a value, but never
//! prove a read stale or an update lost.

use conclave_sim::linearizability::{
    Call, CheckOptions, History, Operation, Output, Verdict, check_with,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many anomalies are listed in full; all are counted.
pub const LISTED_ANOMALIES: usize = 25;

/// One anomaly, with the operations involved (in the checker's one-line form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// `not-linearizable`, `inconclusive`, `stale-read` or `lost-update`.
    pub kind: String,
    pub key: String,
    pub description: String,
    pub operations: Vec<String>,
}

/// The linearizability checker's findings over every key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearizabilityFindings {
    pub keys_checked: usize,
    /// Keys with no linearization.
    pub violations: usize,
    /// Keys the search gave up on (over its budget).
    pub inconclusive: usize,
    pub anomalies: Vec<Anomaly>,
}

/// Checks every key of `history` on its own (a register history is linearizable iff each
/// key's is), so that every violating key is reported, not just the first.
pub fn check_linearizability(
    history: &History,
    max_configurations_per_key: usize,
) -> LinearizabilityFindings {
    let options = CheckOptions { max_configurations_per_key };
    let mut findings = LinearizabilityFindings::default();
    for (key, ops) in history.by_key() {
        findings.keys_checked += 1;
        let sub = History {
            initial: history
                .initial
                .get(key)
                .map(|v| (key.to_string(), v.clone()))
                .into_iter()
                .collect(),
            operations: ops.into_iter().cloned().collect(),
        };
        match check_with(&sub, &options) {
            Ok(Verdict::Linearizable) => {}
            Ok(Verdict::NotLinearizable(violation)) => {
                findings.violations += 1;
                let mut operations: Vec<String> =
                    violation.prefix_tail.iter().map(|op| format!("prefix: {op}")).collect();
                if let Some(stuck) = &violation.stuck {
                    operations.push(format!("cannot linearize: {stuck}"));
                }
                operations
                    .extend(violation.concurrent.iter().map(|op| format!("concurrent: {op}")));
                findings.anomalies.push(Anomaly {
                    kind: "not-linearizable".into(),
                    key: key.to_string(),
                    description: format!(
                        "after a linearizable prefix of {} ops the value is {}, and the next operation to complete fits no order",
                        violation.linearized_ops, violation.value_after_prefix
                    ),
                    operations,
                });
            }
            Ok(Verdict::Inconclusive { configurations, .. }) => {
                findings.inconclusive += 1;
                findings.anomalies.push(Anomaly {
                    kind: "inconclusive".into(),
                    key: key.to_string(),
                    description: format!(
                        "the search gave up after {configurations} configurations"
                    ),
                    operations: Vec::new(),
                });
            }
            Err(error) => {
                findings.inconclusive += 1;
                findings.anomalies.push(Anomaly {
                    kind: "inconclusive".into(),
                    key: key.to_string(),
                    description: format!("malformed history: {error}"),
                    operations: Vec::new(),
                });
            }
        }
    }
    findings
}

/// A write that took effect for certain, or may have; `value: None` for a delete.
#[derive(Debug)]
struct Write<'a> {
    op: &'a Operation,
    value: Option<&'a str>,
    /// When it completed: [`UNKNOWN`] for a timed-out write.
    completed: i128,
}

/// The completion time of the initial state: before everything.
const INITIAL: i128 = -1;
/// The completion time of a timed-out write: it may take effect at any later time.
const UNKNOWN: i128 = i128::MAX;

fn writes_of<'a>(ops: &[&'a Operation]) -> Vec<Write<'a>> {
    ops.iter()
        .filter_map(|op| {
            let value = match (&op.call, &op.output) {
                (Call::Put { value }, Some(Output::Put) | None) => Some(value.as_str()),
                (Call::Cas { new, .. }, Some(Output::Cas { succeeded: true }) | None) => {
                    Some(new.as_str())
                }
                (Call::Delete, Some(Output::Delete) | None) => None,
                _ => return None,
            };
            let completed = op.completed_at.map_or(UNKNOWN, i128::from);
            Some(Write { op, value, completed })
        })
        .collect()
}

/// When the write that left `value` completed, taking the latest candidate (absent may come
/// from the initial state or from any delete); `None` if nobody wrote it.
fn source_completed(writes: &[Write], initial: Option<&str>, value: Option<&str>) -> Option<i128> {
    let from_initial = (initial == value).then_some(INITIAL);
    writes.iter().filter(|w| w.value == value).map(|w| w.completed).chain(from_initial).max()
}

/// Counts stale reads; lists the first few.
pub fn stale_reads(history: &History) -> (usize, Vec<Anomaly>) {
    let mut count = 0;
    let mut listed = Vec::new();
    for (key, ops) in history.by_key() {
        let writes = writes_of(&ops);
        let initial = history.initial.get(key).map(String::as_str);
        // Acknowledged writes by completion, with the latest invocation among those completed
        // so far: the newest write known to precede a read invoked after that completion.
        let mut acknowledged: Vec<(u64, u64, &Operation)> = writes
            .iter()
            .filter_map(|w| w.op.completed_at.map(|c| (c, w.op.invoked_at, w.op)))
            .collect();
        acknowledged.sort_by_key(|&(c, _, _)| c);
        let mut newest: Vec<(u64, &Operation)> = Vec::with_capacity(acknowledged.len());
        for &(_, invoked, op) in &acknowledged {
            let best = match newest.last() {
                Some(&(i, o)) if i >= invoked => (i, o),
                _ => (invoked, op),
            };
            newest.push(best);
        }
        for read in &ops {
            let Some(Output::Get { value }) = &read.output else { continue };
            let done_before = acknowledged.partition_point(|&(c, _, _)| c < read.invoked_at);
            if done_before == 0 {
                continue;
            }
            let (newer_invoked, newer) = newest[done_before - 1];
            // A value nobody wrote is the linearizability checker's to report.
            let Some(source) = source_completed(&writes, initial, value.as_deref()) else {
                continue;
            };
            if source < i128::from(newer_invoked) {
                count += 1;
                if listed.len() < LISTED_ANOMALIES {
                    listed.push(Anomaly {
                        kind: "stale-read".into(),
                        key: key.to_string(),
                        description: "a read returned a value older than a write that completed before it started".into(),
                        operations: vec![format!("read: {read}"), format!("newer write: {newer}")],
                    });
                }
            }
        }
    }
    (count, listed)
}

/// Counts lost updates; `final_state` is the converged state (key → value), if the replicas
/// converged. Lists the first few.
pub fn lost_updates(
    history: &History,
    final_state: Option<&BTreeMap<String, String>>,
) -> (usize, Vec<Anomaly>) {
    let mut count = 0;
    let mut listed = Vec::new();
    let mut note = |anomaly: Anomaly, n: usize| {
        count += n;
        if listed.len() < LISTED_ANOMALIES {
            listed.push(anomaly);
        }
    };
    for (key, ops) in history.by_key() {
        // Two successful compare-and-swaps from one expected value.
        let mut from: BTreeMap<Option<&str>, Vec<&Operation>> = BTreeMap::new();
        for op in &ops {
            if let (Call::Cas { expected, .. }, Some(Output::Cas { succeeded: true })) =
                (&op.call, &op.output)
            {
                from.entry(expected.as_deref()).or_default().push(op);
            }
        }
        for swaps in from.values().filter(|s| s.len() > 1) {
            note(
                Anomaly {
                    kind: "lost-update".into(),
                    key: key.to_string(),
                    description: format!(
                        "{} compare-and-swaps succeeded from the same value",
                        swaps.len()
                    ),
                    operations: swaps.iter().map(|op| format!("cas: {op}")).collect(),
                },
                swaps.len() - 1,
            );
        }
        // Acknowledged writes certainly newer than the one that survived.
        let Some(state) = final_state else { continue };
        let writes = writes_of(&ops);
        let survivor = state.get(key).map(String::as_str);
        let initial = history.initial.get(key).map(String::as_str);
        let Some(survivor_completed) = source_completed(&writes, initial, survivor) else {
            continue;
        };
        let lost: Vec<&Write> = writes
            .iter()
            .filter(|w| w.completed != UNKNOWN && i128::from(w.op.invoked_at) > survivor_completed)
            .filter(|w| w.value != survivor)
            .collect();
        if !lost.is_empty() {
            let mut operations: Vec<String> =
                lost.iter().take(8).map(|w| format!("lost: {}", w.op)).collect();
            operations.push(format!("final value: {}", survivor.unwrap_or("<absent>")));
            note(
                Anomaly {
                    kind: "lost-update".into(),
                    key: key.to_string(),
                    description: format!(
                        "{} acknowledged writes came after the write that survived",
                        lost.len()
                    ),
                    operations,
                },
                lost.len(),
            );
        }
    }
    (count, listed)
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
