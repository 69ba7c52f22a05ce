//! The fuzz loop: mutate, run the target's check, watch for panics, hangs and allocations.
//!
//! [`run`] feeds a target its seeds unchanged first, then mutants of a pool that starts as the
//! seeds and grows with mutants the target accepted (a cheap stand-in for coverage feedback:
//! inputs that got past the decoder make better parents than ones that did not). Every input
//! runs under `catch_unwind` and a per-thread allocation counter, on a thread with a large
//! stack; a watchdog aborts the process, after saving the input, if one input runs too long.
//! The first failure stops the run and is saved to a file that [`run`] replays when
//! `CONCLAVE_FUZZ_REPLAY` names it.

use crate::mutate::Mutator;
use crate::settings::FuzzSettings;
use conclave_core::DetRng;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The fuzz thread's stack. Large, so that a decoder's recursion shows up as an allocation or
/// time problem with the input saved, rather than as a stack overflow that takes the whole
/// test binary down with no input to show. The one unbounded recursion found (nested txns in
/// `Command::decode`) is bounded now, and tested at ordinary stack sizes in `regressions.rs`.
const STACK_BYTES: usize = 256 * 1024 * 1024;
/// Mutants kept beside the seeds as parents for later mutants.
const POOL_EXTRA_MAX: usize = 512;

/// A named valid input, produced by a real encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// One input handed to a target's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The index of the seed this input descends from (targets whose inputs are parts of a
    /// larger whole, like one file of a write-ahead log, use it to find the rest).
    pub origin: usize,
    pub bytes: Vec<u8>,
}

/// What the code under test made of an input that broke none of the target's properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Decoded (or opened, or loaded) successfully.
    Accepted,
    /// Refused with an error, as garbage should be.
    Rejected,
}

/// A target's check: `Ok` with the verdict, or `Err` naming the property the input broke.
pub type CheckResult = Result<Verdict, String>;

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub iterations: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    /// The most bytes any one input made the code under test hold at once.
    pub peak_alloc_bytes: u64,
    /// The longest any one input ran.
    pub slowest_input: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz {}: {} inputs in {:.1} s ({} accepted, {} rejected), seed {:#x}, \
             peak allocation {} bytes, slowest input {} ms",
            self.target,
            self.iterations,
            self.elapsed.as_secs_f64(),
            self.accepted,
            self.rejected,
            self.seed,
            self.peak_alloc_bytes,
            self.slowest_input.as_millis()
        )
    }
}

/// The input that broke a property, and where it was saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub target: String,
    pub seed: u64,
    pub iteration: u64,
    pub reason: String,
    pub input: Input,
    pub saved: Option<PathBuf>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fuzz target {} failed on input {} (seed {:#x}): {}",
            self.target, self.iteration, self.seed, self.reason
        )?;
        writeln!(
            f,
            "input ({} bytes, from seed #{}): {}",
            self.input.bytes.len(),
            self.input.origin,
            hex_preview(&self.input.bytes)
        )?;
        match &self.saved {
            Some(path) => write!(
                f,
                "saved to {}; replay with: CONCLAVE_FUZZ_REPLAY={} cargo test --release -p conclave-fuzz -- {}",
                path.display(),
                path.display(),
                self.target
            ),
            None => write!(f, "(the input could not be saved)"),
        }
    }
}

/// The first bytes of an input as hex, for failure messages.
pub fn hex_preview(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(96).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 96 { format!("{shown}...") } else { shown }
}

/// What the watchdog sees of the input running now.
#[derive(Default)]
struct Running {
    started: Option<Instant>,
    iteration: u64,
    input: Option<Input>,
}

/// Fuzzes `target` with mutants of `seeds` made by `mutator` until the budget in `settings`
/// runs out, or replays the saved input it names.
pub fn run<F>(
    target: &str,
    seeds: &[Seed],
    mutator: &Mutator,
    settings: &FuzzSettings,
    check: F,
) -> Result<Report, Failure>
where
    F: FnMut(&Input) -> CheckResult + Send,
{
    let seed = settings.seed_for(target);
    let running = Arc::new(Mutex::new(Running::default()));
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let watchdog = {
            let running = running.clone();
            let done = done.clone();
            let hang = Duration::from_secs(settings.hang_secs);
            let dir = settings.failures_dir.clone();
            let target = target.to_string();
            scope.spawn(move || watch(&target, seed, &dir, hang, &running, &done))
        };
        let worker = std::thread::Builder::new()
            .name(format!("fuzz-{target}"))
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || {
                let mut fuzz =
                    Fuzz { target, seed, settings, check, running: &running, report: None };
                let result = fuzz.go(seeds, mutator);
                done.store(true, Ordering::SeqCst);
                result
            })
            .expect("cannot spawn the fuzz thread");
        let result = worker.join().unwrap_or_else(|_| {
            done.store(true, Ordering::SeqCst);
            panic!("the fuzz loop of {target} itself panicked")
        });
        let _ = watchdog.join();
        result
    })
}

/// Aborts the process, after saving the input, if one input runs longer than `hang`.
fn watch(
    target: &str,
    seed: u64,
    dir: &Path,
    hang: Duration,
    running: &Mutex<Running>,
    done: &AtomicBool,
) {
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        let now = running.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(started) = now.started else { continue };
        if started.elapsed() < hang {
            continue;
        }
        let input = now.input.clone().unwrap_or(Input { origin: 0, bytes: Vec::new() });
        let failure = Failure {
            target: target.to_string(),
            seed,
            iteration: now.iteration,
            reason: format!("hang: one input ran for more than {} s", hang.as_secs()),
            saved: save(dir, target, seed, now.iteration, &input),
            input,
        };
        eprintln!("{failure}");
        std::process::abort();
    }
}

struct Fuzz<'a, F> {
    target: &'a str,
    seed: u64,
    settings: &'a FuzzSettings,
    check: F,
    running: &'a Mutex<Running>,
    report: Option<Report>,
}

impl<F: FnMut(&Input) -> CheckResult> Fuzz<'_, F> {
    fn go(&mut self, seeds: &[Seed], mutator: &Mutator) -> Result<Report, Failure> {
        self.report = Some(Report {
            target: self.target.to_string(),
            seed: self.seed,
            iterations: 0,
            accepted: 0,
            rejected: 0,
            elapsed: Duration::ZERO,
            peak_alloc_bytes: 0,
            slowest_input: Duration::ZERO,
        });
        let start = Instant::now();
        if let Some(path) = self.settings.replay.clone() {
            self.replay(&path)?;
        } else {
            self.explore(seeds, mutator, start)?;
        }
        let mut report = self.report.take().expect("set above");
        report.elapsed = start.elapsed();
        Ok(report)
    }

    fn replay(&mut self, path: &Path) -> Result<(), Failure> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // A saved input belongs to the target its file name starts with; the others skip.
        if !name.starts_with(&format!("{}-", self.target)) {
            return Ok(());
        }
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let origin = name
            .rsplit_once("-o")
            .and_then(|(_, rest)| rest.trim_end_matches(".bin").parse().ok())
            .unwrap_or(0);
        self.execute(0, Input { origin, bytes })
    }

    fn explore(
        &mut self,
        seeds: &[Seed],
        mutator: &Mutator,
        start: Instant,
    ) -> Result<(), Failure> {
        assert!(!seeds.is_empty(), "fuzz target {} has no seeds", self.target);
        let mut pool: Vec<Input> = seeds
            .iter()
            .enumerate()
            .map(|(origin, s)| Input { origin, bytes: s.bytes.clone() })
            .collect();
        let budget = self.settings.budget();
        let max_iterations = self.settings.max_iterations.unwrap_or(u64::MAX);
        let mut iteration = 0u64;
        while iteration < max_iterations
            && (iteration < seeds.len() as u64 || start.elapsed() < budget)
        {
            // Each input's randomness depends only on the seed and its number, so a run is
            // the same every time for the same seed.
            let mut rng =
                DetRng::new(self.seed ^ (iteration + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let input = if let Some(seed) =
                pool.get(iteration as usize).filter(|_| iteration < seeds.len() as u64)
            {
                seed.clone()
            } else if rng.chance(1.0 / 32.0) {
                Input {
                    origin: rng.below(seeds.len() as u64) as usize,
                    bytes: mutator.noise(&mut rng),
                }
            } else {
                let parent = &pool[rng.below(pool.len() as u64) as usize];
                let other = &pool[rng.below(pool.len() as u64) as usize];
                Input {
                    origin: parent.origin,
                    bytes: mutator.mutate(&mut rng, &parent.bytes, &other.bytes),
                }
            };
            let accepted_before = self.report.as_ref().map_or(0, |r| r.accepted);
            self.execute(iteration, input.clone())?;
            let accepted = self.report.as_ref().map_or(0, |r| r.accepted) > accepted_before;
            if accepted && iteration >= seeds.len() as u64 && rng.chance(0.25) {
                if pool.len() < seeds.len() + POOL_EXTRA_MAX {
                    pool.push(input);
                } else {
                    let at = seeds.len() + rng.below(POOL_EXTRA_MAX as u64) as usize;
                    pool[at] = input;
                }
            }
            iteration += 1;
        }
        Ok(())
    }

    fn execute(&mut self, iteration: u64, input: Input) -> Result<(), Failure> {
        {
            let mut now = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            now.started = Some(Instant::now());
            now.iteration = iteration;
            now.input = Some(input.clone());
        }
        let started = Instant::now();
        let mut outcome = None;
        let check = &mut self.check;
        let alloc = allocation_counter::measure(|| {
            outcome = Some(catch_unwind(AssertUnwindSafe(|| check(&input))));
        });
        let took = started.elapsed();
        self.running.lock().unwrap_or_else(PoisonError::into_inner).started = None;

        let report = self.report.as_mut().expect("set before the loop");
        report.iterations += 1;
        report.peak_alloc_bytes = report.peak_alloc_bytes.max(alloc.bytes_max);
        report.slowest_input = report.slowest_input.max(took);
        let reason = match outcome.expect("measure ran the closure") {
            Err(payload) => Some(format!("panic: {}", panic_message(payload.as_ref()))),
            Ok(Err(reason)) => Some(reason),
            Ok(Ok(_)) if alloc.bytes_max > self.settings.max_alloc_bytes => Some(format!(
                "one input made the code under test hold {} bytes at once (limit {})",
                alloc.bytes_max, self.settings.max_alloc_bytes
            )),
            Ok(Ok(Verdict::Accepted)) => {
                report.accepted += 1;
                None
            }
            Ok(Ok(Verdict::Rejected)) => {
                report.rejected += 1;
                None
            }
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(Failure {
                target: self.target.to_string(),
                seed: self.seed,
                iteration,
                reason,
                saved: save(&self.settings.failures_dir, self.target, self.seed, iteration, &input),
                input,
            }),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".into()
    }
}

/// Writes a failing input where `CONCLAVE_FUZZ_REPLAY` can find it.
fn save(dir: &Path, target: &str, seed: u64, iteration: u64, input: &Input) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{target}-s{seed:016x}-i{iteration}-o{}.bin", input.origin));
    std::fs::write(&path, &input.bytes).ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(iterations: u64, dir: &Path) -> FuzzSettings {
        FuzzSettings {
            max_iterations: Some(iterations),
            failures_dir: dir.to_path_buf(),
            ..FuzzSettings::default()
        }
    }

    fn seeds() -> Vec<Seed> {
        vec![Seed { name: "a".into(), bytes: b"hello world".to_vec() }]
    }

    #[test]
    fn a_quiet_target_runs_its_iterations() {
        let dir = tempfile::tempdir().unwrap();
        let report =
            run("quiet", &seeds(), &Mutator::new(64), &settings(200, dir.path()), |input| {
                Ok(if input.bytes.starts_with(b"hello") {
                    Verdict::Accepted
                } else {
                    Verdict::Rejected
                })
            })
            .unwrap();
        assert_eq!(report.iterations, 200);
        assert_eq!(report.accepted + report.rejected, 200);
        assert!(report.accepted >= 1, "the seed itself is accepted");
    }

    #[test]
    fn a_panic_is_caught_saved_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let boom = |input: &Input| -> CheckResult {
            assert!(!input.bytes.contains(&b'!'), "found a bang");
            Ok(Verdict::Accepted)
        };
        let seeds = vec![Seed { name: "bang".into(), bytes: b"ok!".to_vec() }];
        let failure =
            run("boom", &seeds, &Mutator::new(64), &settings(10, dir.path()), boom).unwrap_err();
        assert!(failure.reason.contains("found a bang"), "{failure}");
        let saved = failure.saved.clone().unwrap();
        assert_eq!(std::fs::read(&saved).unwrap(), b"ok!");
        assert!(failure.to_string().contains("CONCLAVE_FUZZ_REPLAY="), "{failure}");

        let replay = FuzzSettings { replay: Some(saved), ..settings(10, dir.path()) };
        assert!(run("boom", &seeds, &Mutator::new(64), &replay, boom).is_err());
        // Another target skips a saved input that is not its own.
        let other = run("other", &seeds, &Mutator::new(64), &replay, boom).unwrap();
        assert_eq!(other.iterations, 0);
    }

    #[test]
    fn an_allocation_past_the_limit_fails() {
        let dir = tempfile::tempdir().unwrap();
        let tight = FuzzSettings { max_alloc_bytes: 1 << 20, ..settings(5, dir.path()) };
        let failure = run("greedy", &seeds(), &Mutator::new(64), &tight, |_| {
            let big = std::hint::black_box(vec![1u8; 2 << 20]);
            Ok(if big.len() > 1 { Verdict::Accepted } else { Verdict::Rejected })
        })
        .unwrap_err();
        assert!(failure.reason.contains("hold"), "{failure}");
    }
}
