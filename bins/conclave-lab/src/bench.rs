//! `conclave-lab bench`: put, linearizable get, serializable get and compare-and-swap at several
//! client counts against every protocol and against etcd, with the machine's floor (one
//! `fdatasync`, one loopback round trip) measured alongside.
//!
//! Every target's cluster is started once and stays up for the whole matrix; the cells run
//! interleaved — for each round, for each workload and client count, for each target — so
//! that whatever else the machine does falls on every target alike. Every figure reported is
//! the median over the rounds, and each is also given as a ratio to etcd's. The parts, in the
//! order a run goes through them: [`crate::bench_options`] → [`crate::bench_machine`] →
//! [`crate::bench_target`] (clusters) → [`crate::bench_load`] (clients) →
//! [`crate::bench_report`] (bench.json and the tables) → [`crate::bench_plot`];
//! [`crate::bench_scaling`] adds node counts, gossip convergence and memory.

use crate::bench_load::{self, Dataset, Load, Workload};
use crate::bench_machine::Machine;
use crate::bench_options::BenchOptions;
use crate::bench_report::{self as report, BenchResults, Cell, CellStatus, Figures};
use crate::bench_target::{BenchTarget, Running};
use crate::progress;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything a matrix run needs besides its cells.
#[derive(Debug)]
pub struct BenchContext<'a> {
    pub options: &'a BenchOptions,
    pub exe: &'a Path,
    pub data_root: &'a Path,
}

/// The targets the options ask for: protocols in order, then etcd.
pub fn targets(options: &BenchOptions) -> anyhow::Result<Vec<BenchTarget>> {
    let built = crate::ab::built_protocols();
    let mut targets = Vec::new();
    for protocol in options.protocol_names() {
        if !built.contains(&protocol) {
            anyhow::bail!(
                "protocol `{protocol}` is not built into this conclave-lab (built: {})",
                built.join(", ")
            );
        }
        targets.push(BenchTarget::Conclave(protocol));
    }
    if options.etcd {
        let binary = match &options.etcd_binary {
            Some(path) if path.is_file() => path.clone(),
            Some(path) => anyhow::bail!(
                "--etcd-binary {} does not exist; install Debian's etcd-server with scripts/install-deps.sh",
                path.display()
            ),
            None => crate::etcd::find_binary().context(
                "`etcd` is not on the PATH; run scripts/install-deps.sh (Debian's etcd-server) or pass --etcd-binary",
            )?,
        };
        targets.push(BenchTarget::Etcd(binary));
    }
    Ok(targets)
}

/// The endpoints with the leader's first (unchanged when there is no leader, as on gossip).
pub async fn leader_first(endpoints: Vec<String>) -> Vec<String> {
    let mut endpoints = endpoints;
    if let Some(leader) = crate::target::find_leader(&endpoints).await {
        endpoints.rotate_left(leader);
    }
    endpoints
}

/// One started target of a matrix, or why it could not start.
#[derive(Debug)]
struct Slot {
    target: BenchTarget,
    running: Option<Running>,
    failure: Option<String>,
}

/// Runs `workloads` × `clients` × targets for `rounds`, every target a cluster of `nodes`
/// started once. Errors of single targets land in their cells and in `errors`.
pub async fn run_matrix(
    ctx: &BenchContext<'_>,
    targets: &[BenchTarget],
    nodes: usize,
    workloads: &[Workload],
    clients: &[usize],
    errors: &mut Vec<String>,
    mut checkpoint: impl FnMut(&[Cell]),
) -> Vec<Cell> {
    let o = ctx.options;
    let data = Arc::new(Dataset::new(o.keys, o.value_size));
    let mut slots = Vec::new();
    for target in targets {
        let root = ctx.data_root.join(format!("{}-{nodes}", target.name()));
        progress::note(&format!("starting {} ({nodes} nodes)", target.name()));
        let started = Running::start(target, nodes, ctx.exe, root, o.ready_timeout).await;
        let (running, failure) = match started {
            Ok(running) => {
                let needs_keys = workloads.iter().any(|w| *w != Workload::Put);
                match (needs_keys, preload(&running, &data, o).await) {
                    (true, Err(error)) => (Some(running), Some(format!("{error:#}"))),
                    _ => (Some(running), None),
                }
            }
            Err(error) => (None, Some(format!("{error:#}"))),
        };
        if let Some(failure) = &failure {
            errors.push(format!("{} ({nodes} nodes): {failure}", target.name()));
            progress::note(&format!("{}: {failure}", target.name()));
        }
        slots.push(Slot { target: target.clone(), running, failure });
    }
    let mut cells = Vec::new();
    for workload in workloads {
        for &c in clients {
            for slot in &slots {
                let (status, note) = if workload.needs_linearizable() && !slot.target.linearizable()
                {
                    (
                        CellStatus::Unsupported,
                        Some(format!("{} offers no {}", slot.target.name(), workload.as_str())),
                    )
                } else if let Some(failure) = &slot.failure {
                    (CellStatus::Failed, Some(failure.lines().next().unwrap_or("").to_string()))
                } else {
                    (CellStatus::Ok, None)
                };
                cells.push(Cell {
                    nodes,
                    workload: workload.as_str().into(),
                    clients: c,
                    target: slot.target.name(),
                    status,
                    note,
                    rounds: Vec::new(),
                    median: None,
                    vs_etcd: None,
                });
            }
        }
    }
    let runnable = cells.iter().filter(|c| c.status == CellStatus::Ok).count() * o.rounds;
    let mut done = 0;
    for round in 0..o.rounds {
        let mut index = 0;
        for workload in workloads {
            for &c in clients {
                for slot in slots.iter_mut() {
                    let cell = &mut cells[index];
                    index += 1;
                    if cell.status != CellStatus::Ok {
                        continue;
                    }
                    done += 1;
                    let running = slot.running.as_mut().expect("a runnable cell has a cluster");
                    let load = Load {
                        workload: *workload,
                        clients: c,
                        warmup: o.warmup,
                        duration: o.duration,
                        seed: 0x5eed ^ (round as u64) << 32 ^ c as u64,
                    };
                    let outcome = run_cell(running, &load, &data, o.op_timeout).await;
                    match outcome {
                        Ok((figures, first_error)) => {
                            progress::note(&format!(
                                "[{done:>3}/{runnable}] round {} {:<16} {c:>4} clients {:<7} {:>9.0} op/s  p50 {:>7.3} ms  p99 {:>7.3} ms{}",
                                round + 1,
                                workload.as_str(),
                                cell.target,
                                figures.throughput_ops_per_s,
                                figures.p50_ms,
                                figures.p99_ms,
                                if figures.errors > 0 {
                                    format!("  errors {}", figures.errors)
                                } else {
                                    String::new()
                                },
                            ));
                            cell.rounds.push(figures);
                            // Every error of the cell so far, by kind, over its rounds.
                            let all = Figures::median(&cell.rounds).unwrap_or_default();
                            if let Some(summary) = all.error_summary() {
                                cell.note = Some(summary);
                            } else if all.errors > 0 && cell.note.is_none() {
                                cell.note = first_error;
                            }
                        }
                        Err(error) => {
                            progress::note(&format!(
                                "[{done:>3}/{runnable}] round {} {} {c} clients {}: {error:#}",
                                round + 1,
                                workload.as_str(),
                                cell.target
                            ));
                            cell.note = Some(format!("{error:#}"));
                        }
                    }
                    if !running.all_running() {
                        let message = format!(
                            "{}: a node exited during {} at {c} clients\n{}",
                            slot.target.name(),
                            workload.as_str(),
                            running.log_tails(10)
                        );
                        progress::note(&message);
                        errors.push(message);
                    }
                }
            }
        }
        report::finish(&mut cells);
        checkpoint(&cells);
    }
    for cell in cells.iter_mut() {
        if cell.status == CellStatus::Ok && cell.rounds.iter().all(|f| f.ops == 0) {
            cell.status = CellStatus::Failed;
        }
    }
    report::finish(&mut cells);
    for slot in slots.iter_mut() {
        if let Some(running) = slot.running.as_mut() {
            running.stop().await;
        }
    }
    cells
}

/// Writes every key once, 64 requests at a time.
async fn preload(running: &Running, data: &Arc<Dataset>, o: &BenchOptions) -> anyhow::Result<()> {
    let endpoints = running.endpoints();
    let channels = bench_load::connect(&endpoints, endpoints.len(), o.op_timeout).await?;
    bench_load::preload(&channels, data, 0..data.keys.len(), 64)
        .await
        .with_context(|| format!("preloading {} keys into {}", data.keys.len(), running.name))
}

/// One round of one cell: connect (leader first), load, figures.
async fn run_cell(
    running: &Running,
    load: &Load,
    data: &Arc<Dataset>,
    op_timeout: Duration,
) -> anyhow::Result<(Figures, Option<String>)> {
    let endpoints = leader_first(running.endpoints()).await;
    let count = bench_load::channel_count(load.clients, endpoints.len());
    let channels = bench_load::connect(&endpoints, count, op_timeout).await?;
    let cap = load.warmup + load.duration + op_timeout + Duration::from_secs(30);
    let (tally, window) = tokio::time::timeout(cap, bench_load::run(load, &channels, data))
        .await
        .map_err(|_| anyhow::anyhow!("the cell did not finish within {cap:?}"))?;
    Ok((Figures::of(&tally, window.as_secs_f64()), tally.first_error))
}

/// Writes `bench.json` atomically (write, then rename).
pub fn write_json(results: &BenchResults, out: &Path) -> anyhow::Result<()> {
    let path = out.join("bench.json");
    let partial = out.join("bench.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path)?;
    Ok(())
}

/// Runs the whole bench and writes bench.json, bench.txt and the plot into the output folder.
pub async fn run_bench(
    mut options: BenchOptions,
    exe: PathBuf,
    command: Vec<String>,
) -> anyhow::Result<(BenchResults, PathBuf)> {
    options.apply_quick();
    options.validate().map_err(anyhow::Error::msg)?;
    let targets = targets(&options)?;
    let (started_at, stamp) = crate::results::utc_now();
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("lab-out").join(format!("bench-{stamp}")));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let data_root = out.join("data");
    let nodes = options.node_counts();
    let machine = probe_machine(&options, &data_root, "machine").await?;
    let mut results = BenchResults {
        schema_version: report::BENCH_SCHEMA_VERSION,
        tool: "conclave-lab".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        command,
        options: report::BenchOptions {
            targets: targets.iter().map(BenchTarget::name).collect(),
            workloads: options.workloads.iter().map(|w| w.as_str().to_string()).collect(),
            clients: options.clients.clone(),
            rounds: options.rounds,
            duration_s: options.duration.as_secs_f64(),
            warmup_s: options.warmup.as_secs_f64(),
            keys: options.keys,
            value_bytes: options.value_size,
            nodes: nodes[0],
            clients_per_channel: bench_load::CLIENTS_PER_CHANNEL,
        },
        machine,
        machine_after: None,
        cells: Vec::new(),
        scaling: None,
        memory: None,
        errors: Vec::new(),
    };
    write_json(&results, &out)?;
    let ctx = BenchContext { options: &options, exe: &exe, data_root: &data_root };
    if !options.no_matrix {
        progress::note(&format!(
            "conclave-lab bench: {} × {} workloads × clients {:?} × {} round(s) of {:?}; results in {}",
            results.options.targets.join(", "),
            options.workloads.len(),
            options.clients,
            options.rounds,
            options.duration,
            out.display()
        ));
        let mut errors = Vec::new();
        let snapshot = results.clone();
        let cells = run_matrix(
            &ctx,
            &targets,
            nodes[0],
            &options.workloads,
            &options.clients,
            &mut errors,
            |cells| {
                let mut partial = snapshot.clone();
                partial.cells = cells.to_vec();
                let _ = write_json(&partial, &out);
            },
        )
        .await;
        results.cells = cells;
        results.errors.extend(errors);
        // Again at the end: a host that slowed down or sped up during the matrix shows here.
        results.machine_after = Some(probe_machine(&options, &data_root, "machine after").await?);
        write_json(&results, &out)?;
    }
    if options.scaling {
        let scaling =
            crate::bench_scaling::run_scaling(&ctx, &targets, &nodes, &mut results.errors).await;
        results.scaling = Some(scaling);
        write_json(&results, &out)?;
    }
    if options.memory {
        let memory = crate::bench_scaling::run_memory(&ctx, &targets, &mut results.errors).await;
        results.memory = Some(memory);
        write_json(&results, &out)?;
    }
    std::fs::write(out.join("bench.txt"), report::render(&results))?;
    if !options.no_plots && !results.cells.is_empty() {
        let plotted = results.clone();
        let plots_out = out.clone();
        let drawn = tokio::task::spawn_blocking(move || {
            crate::bench_plot::draw_throughput(&plotted, &plots_out)
        })
        .await?;
        if let Err(error) = drawn {
            progress::note(&format!("plot: {error:#}"));
        }
    }
    if !options.keep_data {
        let _ = std::fs::remove_dir_all(&data_root);
    }
    Ok((results, out))
}

/// Measures the machine's floor (`fdatasync`, loopback round trip) and says what it found.
async fn probe_machine(
    options: &BenchOptions,
    data_root: &Path,
    label: &str,
) -> anyhow::Result<Machine> {
    let probe_dir = data_root.to_path_buf();
    let (fs, rs) = (options.fsync_samples, options.rtt_samples);
    let machine =
        tokio::task::spawn_blocking(move || crate::bench_machine::measure(&probe_dir, fs, rs))
            .await??;
    progress::note(&format!("{label}: {}", report::machine_line(&machine)));
    Ok(machine)
}
