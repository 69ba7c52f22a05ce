//! The bench's extra sections: put throughput and latency at several cluster sizes, the time
//! gossip takes to spread a write to every node of 3 to 15 real processes, and resident memory
//! per node after loading many keys.

use crate::bench::{BenchContext, run_matrix};
use crate::bench_load::{self, Dataset, Workload};
use crate::bench_report::{Convergence, Memory, Scaling};
use crate::bench_target::{BenchTarget, Running, resident_bytes};
use crate::progress;
use bytes::Bytes;
use conclave_etcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long one write may take to reach every gossip node before it counts as failed.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(10);

/// Put at every node count (all targets of one count up together, cells interleaved), then
/// gossip convergence at every `--gossip-sizes` count if gossip is among the targets.
pub async fn run_scaling(
    ctx: &BenchContext<'_>,
    targets: &[BenchTarget],
    nodes: &[usize],
    errors: &mut Vec<String>,
) -> Scaling {
    let mut scaling = Scaling::default();
    for &n in nodes {
        progress::note(&format!("scaling: put at {n} nodes"));
        let cells =
            run_matrix(ctx, targets, n, &[Workload::Put], &ctx.options.clients, errors, |_| {})
                .await;
        scaling.put.extend(cells);
    }
    crate::bench_report::finish(&mut scaling.put);
    if targets.iter().any(|t| t.name() == "gossip") {
        for &n in &ctx.options.gossip_sizes {
            match convergence(ctx, n).await {
                Ok(c) => {
                    progress::note(&format!(
                        "gossip convergence at {n} nodes: p50 {:.1} ms, max {:.1} ms, {} of {} not converged",
                        c.p50_ms, c.max_ms, c.failed, c.samples
                    ));
                    scaling.gossip_convergence.push(c);
                }
                Err(error) => {
                    let message = format!("gossip convergence at {n} nodes: {error:#}");
                    progress::note(&message);
                    errors.push(message);
                }
            }
        }
    }
    scaling
}

/// Writes through one node (in turn) and times until every node serves the value locally.
async fn convergence(ctx: &BenchContext<'_>, n: usize) -> anyhow::Result<Convergence> {
    let o = ctx.options;
    let target = BenchTarget::Conclave("gossip".into());
    let root = ctx.data_root.join(format!("gossip-converge-{n}"));
    let mut running = Running::start(&target, n, ctx.exe, root, o.ready_timeout).await?;
    let endpoints = running.endpoints();
    let channels = bench_load::connect(&endpoints, endpoints.len(), o.op_timeout).await?;
    let mut times = Vec::new();
    let mut failed = 0;
    for sample in 0..o.convergence_samples {
        let key = Bytes::from(format!("bench/converge/{sample}"));
        let value = Bytes::from(format!("v{sample}-{}", n));
        let writer = sample % n;
        let started = Instant::now();
        channels[writer]
            .put(&PutRequest { key: key.clone(), value: value.clone(), ..Default::default() })
            .await?;
        let mut waiting: Vec<usize> = (0..n).filter(|&i| i != writer).collect();
        while !waiting.is_empty() && started.elapsed() < CONVERGENCE_LIMIT {
            let mut still = Vec::new();
            for &i in &waiting {
                let response = channels[i]
                    .range(&RangeRequest {
                        key: key.clone(),
                        serializable: true,
                        ..Default::default()
                    })
                    .await;
                let seen = response
                    .ok()
                    .is_some_and(|r| r.kvs.first().is_some_and(|kv| kv.value == value));
                if !seen {
                    still.push(i);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        if waiting.is_empty() {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            failed += 1;
        }
    }
    running.stop().await;
    times.sort_by(f64::total_cmp);
    Ok(Convergence {
        nodes: n,
        samples: o.convergence_samples,
        failed,
        p50_ms: times.get(times.len().saturating_sub(1) / 2).copied().unwrap_or(0.0),
        max_ms: times.last().copied().unwrap_or(0.0),
    })
}

/// Starts each target alone, writes `--memory-keys` distinct keys of `--value-size` bytes, lets
/// it settle, and reads every node's resident memory.
pub async fn run_memory(
    ctx: &BenchContext<'_>,
    targets: &[BenchTarget],
    errors: &mut Vec<String>,
) -> Vec<Memory> {
    let o = ctx.options;
    let nodes = o.node_counts()[0];
    let data = Arc::new(Dataset::new(o.memory_keys, o.value_size));
    let mut memory = Vec::new();
    for target in targets {
        progress::note(&format!(
            "memory: loading {} keys of {} B into {}",
            o.memory_keys,
            o.value_size,
            target.name()
        ));
        let root = ctx.data_root.join(format!("{}-memory", target.name()));
        let measured = async {
            let mut running = Running::start(target, nodes, ctx.exe, root, o.ready_timeout).await?;
            let endpoints = running.endpoints();
            let channels = bench_load::connect(&endpoints, endpoints.len(), o.op_timeout).await?;
            let started = Instant::now();
            bench_load::preload(&channels, &data, 0..data.keys.len(), 64).await?;
            let load_s = started.elapsed().as_secs_f64();
            // Let replication, compaction of the log and gossip finish before reading.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let rss: Vec<u64> =
                running.pids().iter().map(|p| p.and_then(resident_bytes).unwrap_or(0)).collect();
            running.stop().await;
            Ok::<_, anyhow::Error>((rss, load_s))
        };
        match measured.await {
            Ok((rss, load_s)) => {
                let max = rss.iter().copied().max().unwrap_or(0);
                progress::note(&format!(
                    "memory: {} max {:.1} MiB per node (loaded in {load_s:.1} s)",
                    target.name(),
                    max as f64 / 1048576.0
                ));
                memory.push(Memory {
                    target: target.name(),
                    keys: o.memory_keys,
                    value_bytes: o.value_size,
                    rss_bytes: rss,
                    max_rss_bytes: max,
                    vs_etcd: None,
                });
            }
            Err(error) => {
                let message = format!("memory of {}: {error:#}", target.name());
                progress::note(&message);
                errors.push(message);
            }
        }
    }
    let etcd = memory.iter().find(|m| m.target == "etcd").map(|m| m.max_rss_bytes);
    if let Some(etcd) = etcd.filter(|&e| e > 0) {
        for m in &mut memory {
            m.vs_etcd = Some(m.max_rss_bytes as f64 / etcd as f64);
        }
    }
    memory
}
