//! One target through one run: start it, run the workload with the planned faults, heal,
//! measure convergence, stop it, and judge the history.

use crate::analysis;
use crate::convergence::wait_converged;
use crate::drive::run_clients;
use crate::etcd::EtcdSpec;
use crate::faults::{FaultEvent, FaultKind, FaultPlan, Injector};
use crate::history::{self, Recorder};
use crate::kv::ReadMode;
use crate::options::AbOptions;
use crate::progress::{self, Status};
use crate::results::{Costs, TargetResult, Verdict};
use crate::scrape::{CostSeries, CounterTotals, costs, http_get};
use crate::stats;
use crate::target::{Consistency, Target, wait_ready};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Conclave {
        protocol: String,
    },
    Etcd {
        binary: PathBuf,
    },
    External {
        name: String,
        endpoints: Vec<String>,
        metrics: Vec<SocketAddr>,
        consistency: Consistency,
    },
}

impl TargetSpec {
    pub fn name(&self) -> String {
        match self {
            Self::Conclave { protocol } => protocol.clone(),
            Self::Etcd { .. } => "etcd".into(),
            Self::External { name, .. } => name.clone(),
        }
    }

    pub fn consistency(&self) -> Consistency {
        match self {
            Self::Conclave { protocol } => Consistency::of_protocol(protocol),
            Self::Etcd { .. } => Consistency::Linearizable,
            Self::External { consistency, .. } => *consistency,
        }
    }
}

/// Where things are and which run this is.
#[derive(Debug)]
pub struct RunContext<'a> {
    pub options: &'a AbOptions,
    /// The lab's own executable: runs nodes (`node`) and guards etcd (`guard --`).
    pub exe: &'a Path,
    pub out: &'a Path,
    pub run: usize,
    pub seed: u64,
    pub plans: &'a [FaultPlan],
}

/// Buckets of the throughput series.
pub const SERIES_BUCKET_MS: u64 = 500;

/// Runs `spec` once. Never fails: a target that cannot run gets a result saying why.
/// Also returns the sorted latencies (for summaries over runs).
pub async fn run_target(spec: &TargetSpec, ctx: &RunContext<'_>) -> (TargetResult, Vec<f64>) {
    let name = spec.name();
    let nodes = match spec {
        TargetSpec::External { endpoints, .. } => endpoints.len(),
        _ => ctx.options.nodes,
    };
    match run_inner(spec, ctx).await {
        Ok(done) => done,
        Err(error) => {
            progress::note(&format!("{name}: {error:#}"));
            (
                TargetResult::failed(&name, spec.consistency(), nodes, format!("{error:#}")),
                Vec::new(),
            )
        }
    }
}

async fn start(
    spec: &TargetSpec,
    ctx: &RunContext<'_>,
    data_root: PathBuf,
) -> anyhow::Result<Target> {
    let o = ctx.options;
    Ok(match spec {
        TargetSpec::Conclave { protocol } => {
            Target::start_conclave(
                protocol,
                o.nodes,
                ctx.exe.to_path_buf(),
                vec!["node".into()],
                data_root,
                ctx.seed,
            )
            .await?
        }
        TargetSpec::Etcd { binary } => {
            let wrapper = vec![ctx.exe.display().to_string(), "guard".into(), "--".into()];
            let spec = EtcdSpec { binary: binary.clone(), nodes: o.nodes, data_root, wrapper };
            Target::start_etcd(spec, ctx.seed).await?
        }
        TargetSpec::External { name, endpoints, metrics, consistency } => {
            Target::external(name, *consistency, endpoints.clone(), metrics.clone())
        }
    })
}

async fn run_inner(
    spec: &TargetSpec,
    ctx: &RunContext<'_>,
) -> anyhow::Result<(TargetResult, Vec<f64>)> {
    let o = ctx.options;
    let name = spec.name();
    let label = format!("[run {}/{} {name}]", ctx.run + 1, o.runs);
    let data_root = ctx.out.join("nodes").join(format!("run{}-{name}", ctx.run + 1));
    match spec {
        TargetSpec::External { endpoints, .. } => {
            progress::note(&format!("{label} using {}", endpoints.join(",")));
        }
        _ => progress::note(&format!("{label} starting {} nodes", o.nodes)),
    }
    let mut target = start(spec, ctx, data_root.clone()).await?;
    let endpoints = target.endpoints();
    if let Err(error) = wait_ready(&endpoints, o.ready_timeout).await {
        let tails = target.log_tails(15);
        target.stop(Duration::from_secs(2));
        anyhow::bail!("{error:#}\n{tails}");
    }
    target.learn_member_ids().await;
    let consistency = target.consistency;
    let costs_series = target.costs;
    let metrics_addrs = target.metrics_addrs();
    let controllable = target.controllable();
    let target = Arc::new(Mutex::new(target));

    let reads = if o.plant_stale_reads {
        let isolated = ctx.plans.iter().find(|p| {
            matches!(
                p.kind,
                FaultKind::Partition | FaultKind::PartitionAsym | FaultKind::SplitHalves
            )
        });
        ReadMode::PlantedStaleAt(isolated.map_or(0, |p| p.node))
    } else if consistency == Consistency::Eventual {
        ReadMode::Serializable
    } else {
        ReadMode::Linearizable
    };
    let workload = o.workload(ctx.seed);
    let start = Instant::now();
    let until = start + o.duration;
    let recorder = Arc::new(Recorder::new(start.into_std()));
    let status: Status = Arc::new(Mutex::new(String::new()));
    let (stop_tx, stop_rx) = watch::channel(false);

    let detect = matches!(spec, TargetSpec::External { .. });
    let scraper = tokio::spawn(scrape_loop(metrics_addrs, costs_series, detect, stop_rx.clone()));
    let plans = if controllable { ctx.plans.to_vec() } else { Vec::new() };
    let faults = tokio::spawn(fault_loop(
        plans,
        Injector::new(Arc::clone(&target)),
        start,
        Arc::clone(&status),
        stop_rx,
    ));
    let progress = tokio::spawn(progress::report(
        label.clone(),
        Arc::clone(&recorder),
        Arc::clone(&status),
        o.duration,
        until,
    ));
    let skipped =
        run_clients(&workload, endpoints.clone(), reads, Arc::clone(&recorder), until).await;
    let workload_ms = start.elapsed().as_millis() as u64;
    let _ = stop_tx.send(true);
    let (events, mut injector) = faults.await?;
    let mut events = events;
    let heal_note = injector.heal().err().map(|e| format!("{e:#}"));
    let healed = Instant::now();
    if let Some(note) = heal_note {
        progress::note(&format!("{label} healing: {note}"));
    }
    let _ = progress.await;
    progress::note(&format!("{label} workload done; waiting for the replicas to converge"));
    let converged = wait_converged(&endpoints, healed, o.convergence_timeout).await;
    if converged.is_none() {
        progress::note(&format!(
            "{label} replicas did not converge within {:?}:",
            o.convergence_timeout
        ));
        for line in crate::convergence::describe_divergence(&endpoints).await {
            progress::note(&format!("  {line}"));
        }
    }
    let (totals, costs_series) = scraper.await?;

    let stop_target = Arc::clone(&target);
    tokio::task::spawn_blocking(move || {
        stop_target.lock().unwrap_or_else(|p| p.into_inner()).stop(Duration::from_secs(5));
    })
    .await?;
    if !o.keep_data {
        remove_data_dirs(&data_root);
    }

    // Judge the history.
    let records = recorder.take();
    let history_name = if o.runs == 1 {
        format!("history-{name}.json")
    } else {
        format!("history-{name}-run{}.json", ctx.run + 1)
    };
    let history_path = ctx.out.join(&history_name);
    let budget = o.check_budget;
    let final_state = converged.as_ref().map(|(_, state)| state.clone());
    progress::note(&format!("{label} checking {} operations", records.len()));
    let (records, verdict) = tokio::task::spawn_blocking(move || {
        let history = history::to_history(&records);
        let saved = history::save(&history, &history_path);
        let lin = analysis::check_linearizability(&history, budget);
        let (stale, stale_list) = analysis::stale_reads(&history);
        let (lost, lost_list) = analysis::lost_updates(&history, final_state.as_ref());
        let mut anomalies: Vec<_> =
            lin.anomalies.into_iter().take(analysis::LISTED_ANOMALIES).collect();
        anomalies.extend(stale_list);
        anomalies.extend(lost_list);
        let verdict = Verdict {
            keys_checked: lin.keys_checked,
            violations: lin.violations,
            inconclusive: lin.inconclusive,
            stale_reads: stale,
            lost_updates: lost,
            convergence_ms: None,
            anomalies,
        };
        saved.map(|()| (records, verdict))
    })
    .await??;
    let mut verdict = verdict;
    verdict.convergence_ms = converged.map(|(d, _)| d.as_secs_f64() * 1e3);
    for event in &mut events {
        if event.healed_ms.is_none() {
            event.healed_ms = Some(healed.duration_since(start).as_millis() as u64);
        }
    }

    let sorted = stats::sorted_latencies_ms(&records);
    let ops = stats::counts(&records);
    let duration_s = workload_ms as f64 / 1e3;
    let per_op = |total: f64| (ops.ok > 0).then(|| total / ops.ok as f64);
    let costs = match totals {
        Some(t) => Costs {
            messages_per_op: costs_series.messages.and_then(|_| per_op(t.total.messages)),
            bytes_per_op: costs_series.bytes.and_then(|_| per_op(t.total.bytes)),
            fsyncs_per_op: costs_series.fsyncs.and_then(|_| per_op(t.total.fsyncs)),
            messages_total: costs_series.messages.map(|_| t.total.messages),
            bytes_total: costs_series.bytes.map(|_| t.total.bytes),
            fsyncs_total: costs_series.fsyncs.map(|_| t.total.fsyncs),
        },
        None => Costs::default(),
    };
    let mut errors = stats::errors(&records);
    if skipped > 0 {
        errors.insert("skipped-open-loop".into(), skipped);
    }
    let result = TargetResult {
        name,
        consistency,
        nodes: endpoints.len(),
        error: None,
        duration_s,
        throughput_ops_per_s: ops.ok as f64 / duration_s.max(1e-9),
        latency_ms: stats::latency(&sorted),
        errors,
        faults: stats::unavailability(&records, &events, workload_ms),
        costs,
        verdict,
        throughput_series: stats::throughput_series(
            &records,
            o.duration.as_millis() as u64,
            SERIES_BUCKET_MS,
        ),
        series_bucket_ms: SERIES_BUCKET_MS,
        latency_cdf: stats::cdf_points(&sorted, 200),
        history_file: Some(history_name),
        ops,
    };
    Ok((result, sorted))
}

/// Deletes node data directories under `root`, keeping logs and configs.
fn remove_data_dirs(root: &Path) {
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Sleeps until `at`; false if told to stop first.
async fn sleep_or_stop(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

async fn fault_loop(
    plans: Vec<FaultPlan>,
    mut injector: Injector,
    start: Instant,
    status: Status,
    mut stop: watch::Receiver<bool>,
) -> (Vec<FaultEvent>, Injector) {
    let set = |text: String| *status.lock().unwrap_or_else(|p| p.into_inner()) = text;
    let mut events = Vec::new();
    for plan in plans {
        if !sleep_or_stop(start + Duration::from_millis(plan.at_ms), &mut stop).await {
            break;
        }
        let injected_ms = start.elapsed().as_millis() as u64;
        let (node, note) = match injector.inject(&plan).await {
            Ok(node) => (node, None),
            Err(error) => (None, Some(format!("{error:#}"))),
        };
        let on = node.map(|n| format!(" node {}", n + 1)).unwrap_or_default();
        set(format!("fault: {}{on}", plan.kind));
        events.push(FaultEvent { kind: plan.kind, node, injected_ms, healed_ms: None, note });
        let held =
            sleep_or_stop(start + Duration::from_millis(plan.at_ms + plan.hold_ms), &mut stop)
                .await;
        if !held {
            break;
        }
        let healed = injector.heal();
        let event = events.last_mut().expect("just pushed");
        event.healed_ms = Some(start.elapsed().as_millis() as u64);
        if let Err(error) = healed {
            event.note = Some(format!("heal: {error:#}"));
        }
        set(String::new());
    }
    (events, injector)
}

/// Scrapes every node each second until told to stop, then once more. `None` when the target
/// has no metrics to scrape. With `detect`, the series are Conclave's or etcd's, whichever the
/// first scrape shows.
async fn scrape_loop(
    addrs: Vec<SocketAddr>,
    mut series: CostSeries,
    mut detect: bool,
    mut stop: watch::Receiver<bool>,
) -> (Option<CounterTotals>, CostSeries) {
    if addrs.is_empty() {
        return (None, series);
    }
    let mut totals = CounterTotals::new(addrs.len());
    loop {
        for (i, addr) in addrs.iter().enumerate() {
            if let Ok(text) = http_get(*addr, "/metrics", Duration::from_millis(800)).await {
                if detect {
                    detect = false;
                    if !text.contains("conclave_") && text.contains("etcd_") {
                        series = crate::scrape::ETCD;
                    }
                }
                totals.observe(i, costs(&text, series));
            }
        }
        if *stop.borrow() {
            return (Some(totals), series);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}
