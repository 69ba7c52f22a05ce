//! Figures from a run's records: counts, throughput, latency percentiles, errors by kind, the
//! throughput series, and how long writes stayed unavailable after each fault.

use crate::faults::FaultEvent;
use crate::history::OpRecord;
use crate::workload::OpKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Requests by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failed writes whose effect is unknown (kept in the history as possibly applied).
    pub indefinite: u64,
    /// `read`, `write`, `cas` → [total, ok].
    pub by_kind: BTreeMap<String, [u64; 2]>,
}

/// Latency of answered requests, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn counts(records: &[OpRecord]) -> OpCounts {
    let mut counts = OpCounts::default();
    for r in records {
        counts.total += 1;
        let entry = counts.by_kind.entry(r.kind.as_str().to_string()).or_default();
        entry[0] += 1;
        if r.ok() {
            counts.ok += 1;
            entry[1] += 1;
        } else {
            counts.failed += 1;
            if r.is_indefinite_write() {
                counts.indefinite += 1;
            }
        }
    }
    counts
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latencies (ms) of answered requests, sorted.
pub fn sorted_latencies_ms(records: &[OpRecord]) -> Vec<f64> {
    let mut values: Vec<f64> =
        records.iter().filter(|r| r.ok()).map(|r| r.latency_ns() as f64 / 1e6).collect();
    values.sort_by(f64::total_cmp);
    values
}

pub fn latency(sorted_ms: &[f64]) -> Latency {
    let mean = if sorted_ms.is_empty() {
        0.0
    } else {
        sorted_ms.iter().sum::<f64>() / sorted_ms.len() as f64
    };
    Latency {
        p50: percentile(sorted_ms, 50.0),
        p90: percentile(sorted_ms, 90.0),
        p99: percentile(sorted_ms, 99.0),
        p999: percentile(sorted_ms, 99.9),
        max: sorted_ms.last().copied().unwrap_or(0.0),
        mean,
    }
}

/// Up to `points` (latency ms, fraction ≤ it) pairs along the CDF, for plots.
pub fn cdf_points(sorted_ms: &[f64], points: usize) -> Vec<[f64; 2]> {
    if sorted_ms.is_empty() || points == 0 {
        return Vec::new();
    }
    let n = sorted_ms.len();
    let step = (n / points).max(1);
    let mut out: Vec<[f64; 2]> =
        (0..n).step_by(step).map(|i| [sorted_ms[i], (i + 1) as f64 / n as f64]).collect();
    out.push([sorted_ms[n - 1], 1.0]);
    out
}

pub fn errors(records: &[OpRecord]) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for kind in records.iter().filter_map(|r| r.error) {
        *errors.entry(kind.as_str().to_string()).or_default() += 1;
    }
    errors
}

/// Answered requests per bucket of `bucket_ms`, by completion time, over `duration_ms`.
pub fn throughput_series(records: &[OpRecord], duration_ms: u64, bucket_ms: u64) -> Vec<u64> {
    let buckets = duration_ms.div_ceil(bucket_ms).max(1) as usize;
    let mut series = vec![0u64; buckets];
    for r in records.iter().filter(|r| r.ok()) {
        let bucket = (r.completed_ns / 1_000_000 / bucket_ms) as usize;
        if bucket < buckets {
            series[bucket] += 1;
        }
    }
    series
}

/// What a fault cost in availability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultOutcome {
    #[serde(flatten)]
    pub event: FaultEvent,
    /// The longest stretch without a successful write, from the injection to the next fault
    /// (or the end of the workload), in milliseconds.
    pub unavailable_ms: f64,
    /// Whether any write succeeded in that window after the stretch.
    pub recovered: bool,
}

/// Unavailability after each fault: the longest gap between successive answered writes
/// (compare-and-swaps included) from the injection until the next fault or `end_ms`.
pub fn unavailability(
    records: &[OpRecord],
    events: &[FaultEvent],
    end_ms: u64,
) -> Vec<FaultOutcome> {
    let mut done: Vec<u64> = records
        .iter()
        .filter(|r| r.ok() && r.kind != OpKind::Read)
        .map(|r| r.completed_ns / 1_000)
        .collect();
    done.sort_unstable();
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let start_us = event.injected_ms * 1_000;
            let end_us =
                events.get(i + 1).map_or(end_ms, |e| e.injected_ms).max(event.injected_ms) * 1_000;
            let mut last = start_us;
            let mut gap = 0;
            let mut recovered = false;
            for &t in done.iter().filter(|&&t| t >= start_us && t < end_us) {
                gap = gap.max(t - last);
                last = t;
                recovered = true;
            }
            if !recovered {
                gap = end_us - start_us;
            }
            FaultOutcome { event: event.clone(), unavailable_ms: gap as f64 / 1_000.0, recovered }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_sim::linearizability::{Call, Output};

    fn write(done_ms: u64) -> OpRecord {
        OpRecord {
            client: 1,
            kind: OpKind::Write,
            key: "k".into(),
            call: Call::Put { value: "v".into() },
            endpoint: 0,
            invoked_ns: done_ms * 1_000_000 - 1_000,
            completed_ns: done_ms * 1_000_000,
            output: Some(Output::Put),
            error: None,
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = latency(&values);
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(l.p999, 100.0);
    }

    #[test]
    fn unavailability_is_the_longest_gap_after_the_fault() {
        let records: Vec<OpRecord> = [100, 200, 1000, 1010, 1020, 3000, 3010].map(write).to_vec();
        let event = |at| FaultEvent {
            kind: crate::faults::FaultKind::Kill,
            node: Some(0),
            injected_ms: at,
            healed_ms: None,
            note: None,
        };
        let outcomes = unavailability(&records, &[event(250), event(2000)], 4000);
        assert_eq!(outcomes[0].unavailable_ms, 750.0);
        assert_eq!(outcomes[1].unavailable_ms, 1000.0);
        assert!(outcomes[1].recovered);
    }
}
