//! `conclave-lab ab`: every target, every run, then the comparison written out.
//!
//! Runs are sequential (one cluster at a time on the machine, so targets do not measure each
//! other). After each target the partial `results.json` is rewritten, so an interrupted run
//! still leaves what it measured.

use crate::faults;
use crate::options::AbOptions;
use crate::progress;
use crate::report;
use crate::results::{Results, RunOptions, RunResult, SCHEMA_VERSION, summarize, utc_now};
use crate::run::{RunContext, TargetSpec, run_target};
use crate::stats;
use crate::target::Consistency;
use crate::workload::LoopMode;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The protocols this build of the node can run.
pub fn built_protocols() -> Vec<String> {
    conclaved::protocols::BUILT.iter().map(|p| p.to_string()).collect()
}

/// The targets `options` ask for, in report order: protocols, then etcd, then --endpoints.
pub fn targets(options: &AbOptions) -> anyhow::Result<Vec<TargetSpec>> {
    let mut specs = Vec::new();
    let built = built_protocols();
    let protocols = match (&options.protocols, &options.endpoints) {
        (Some(list), _) => list.clone(),
        // Only an existing cluster: do not start protocols unless asked.
        (None, Some(_)) => Vec::new(),
        (None, None) => built.clone(),
    };
    // `--protocols none` (or an empty list) runs no protocol, e.g. with --etcd alone.
    for protocol in protocols.iter().map(|p| p.trim()).filter(|p| !p.is_empty() && *p != "none") {
        let protocol = protocol.to_string();
        if !built.contains(&protocol) {
            bail!(
                "protocol `{protocol}` is not built into this conclave-lab (built: {})",
                built.join(", ")
            );
        }
        specs.push(TargetSpec::Conclave { protocol });
    }
    if options.etcd {
        let binary = match &options.etcd_binary {
            Some(path) => path.clone(),
            None => crate::etcd::find_binary().context(
                "`etcd` is not on the PATH; install Debian's etcd-server (scripts/install-deps.sh) or pass --etcd-binary",
            )?,
        };
        specs.push(TargetSpec::Etcd { binary });
    }
    if let Some(endpoints) = &options.endpoints {
        let consistency = if options.endpoints_consistency == "eventual" {
            Consistency::Eventual
        } else {
            Consistency::Linearizable
        };
        specs.push(TargetSpec::External {
            name: options.endpoints_name.clone(),
            endpoints: endpoints.clone(),
            metrics: options.endpoints_metrics.clone().unwrap_or_default(),
            consistency,
        });
    }
    if specs.is_empty() {
        bail!("nothing to run: name --protocols, --etcd or --endpoints");
    }
    Ok(specs)
}

fn run_options(options: &AbOptions, specs: &[TargetSpec]) -> RunOptions {
    let workload = options.workload(options.seed);
    RunOptions {
        targets: specs.iter().map(TargetSpec::name).collect(),
        nodes: options.nodes,
        duration_s: options.duration.as_secs_f64(),
        clients: options.clients,
        keys: options.keys,
        distribution: options.distribution.to_string(),
        value_bytes: options.value_size,
        mix: options.mix.to_string(),
        loop_mode: match workload.mode {
            LoopMode::Closed => "closed".into(),
            LoopMode::Open { .. } => "open".into(),
        },
        rate_per_s: options.rate,
        op_timeout_ms: options.op_timeout.as_millis() as u64,
        seed: options.seed,
        faults: options.fault_kinds().unwrap_or_default().iter().map(|k| k.to_string()).collect(),
        fault_mode: options.fault_mode.clone(),
        fault_hold_ms: options.fault_hold.as_millis() as u64,
        runs: options.runs,
        planted_stale_reads: options.plant_stale_reads,
    }
}

/// Writes `results.json` atomically (write, then rename).
pub fn write_results(results: &Results, out: &Path) -> anyhow::Result<()> {
    let path = out.join("results.json");
    let partial = out.join("results.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(results)?)?;
    std::fs::rename(&partial, &path)?;
    Ok(())
}

/// Runs the comparison and writes the report folder. `exe` is the lab's own executable.
pub async fn run_ab(options: AbOptions, exe: PathBuf) -> anyhow::Result<(Results, PathBuf)> {
    options.validate().map_err(anyhow::Error::msg)?;
    let specs = targets(&options)?;
    let kinds = options.fault_kinds().map_err(anyhow::Error::msg)?;
    let mode = options.fault_mode().map_err(anyhow::Error::msg)?;
    let (started_at, stamp) = utc_now();
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("lab-out").join(stamp));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        tool: "conclave-lab".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        options: run_options(&options, &specs),
        runs: Vec::new(),
        summary: Vec::new(),
    };
    progress::note(&format!(
        "conclave-lab ab: {} x {} run(s) of {:?}; report in {}",
        specs.iter().map(TargetSpec::name).collect::<Vec<_>>().join(", "),
        options.runs,
        options.duration,
        out.display()
    ));
    let mut latencies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in 0..options.runs {
        let seed = options.seed.wrapping_add(run as u64);
        let duration_ms = options.duration.as_millis() as u64;
        let hold_ms = options.fault_hold.as_millis() as u64;
        let plans = faults::plan(&kinds, mode, duration_ms, hold_ms, options.nodes, seed);
        results.runs.push(RunResult {
            run: run + 1,
            seed,
            faults_planned: plans.clone(),
            targets: Vec::new(),
        });
        for spec in &specs {
            let ctx =
                RunContext { options: &options, exe: &exe, out: &out, run, seed, plans: &plans };
            let (result, sorted) = run_target(spec, &ctx).await;
            latencies.entry(spec.name()).or_default().extend(sorted);
            results.runs.last_mut().expect("pushed above").targets.push(result);
            write_results(&results, &out)?;
        }
    }
    for spec in &specs {
        let name = spec.name();
        let runs: Vec<_> =
            results.runs.iter().flat_map(|r| r.targets.iter().filter(|t| t.name == name)).collect();
        let all = latencies.entry(name).or_default();
        all.sort_by(f64::total_cmp);
        results.summary.push(summarize(&runs, stats::latency(all)));
    }
    write_results(&results, &out)?;
    let table = report::table(&results.summary);
    std::fs::write(out.join("table.txt"), &table)?;
    std::fs::write(out.join("report.md"), report::markdown(&results, !options.no_plots))?;
    if !options.no_plots {
        let plots_out = out.clone();
        let plotted = results.clone();
        let drawn =
            tokio::task::spawn_blocking(move || crate::plots::draw_all(&plotted, &plots_out))
                .await?;
        if let Err(error) = drawn {
            progress::note(&format!("plots: {error:#}"));
        }
    }
    Ok((results, out))
}
