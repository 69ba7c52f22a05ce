//! How long and from which seed a fuzz target runs, read from the environment.
//!
//! Every knob has a default that suits CI (ten seconds a target, a fixed seed so a red run
//! replays), and every one can be raised from the shell for a longer hunt:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CONCLAVE_FUZZ_SECONDS` | time budget per target | 10 |
//! | `CONCLAVE_FUZZ_SEED` | a number, or `random` for a seed drawn from the clock | fixed per target |
//! | `CONCLAVE_FUZZ_ITERATIONS` | stop after this many inputs even if time remains | unbounded |
//! | `CONCLAVE_FUZZ_REPLAY` | run only this saved failing input (a file written by a failed run) | none |
//! | `CONCLAVE_FUZZ_FAILURES` | where failing inputs are saved | the system temp dir |

use std::path::PathBuf;
use std::time::Duration;

/// The environment variable holding the time budget per target, in seconds.
pub const SECONDS_VAR: &str = "CONCLAVE_FUZZ_SECONDS";
/// The environment variable holding the seed (a number or `random`).
pub const SEED_VAR: &str = "CONCLAVE_FUZZ_SEED";
/// The environment variable capping the number of inputs per target.
pub const ITERATIONS_VAR: &str = "CONCLAVE_FUZZ_ITERATIONS";
/// The environment variable naming one saved input to replay.
pub const REPLAY_VAR: &str = "CONCLAVE_FUZZ_REPLAY";
/// The environment variable naming the directory failing inputs are saved in.
pub const FAILURES_VAR: &str = "CONCLAVE_FUZZ_FAILURES";

/// Why the environment does not describe a run.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var} = {value:?}: expected {expected}")]
pub struct SettingsError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// One target's run: budget, seed, and what to do with failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzSettings {
    /// Stop generating inputs after this long (the input running then finishes first).
    pub budget_secs: u64,
    /// The seed of the mutation stream; `None` means "derive one from the target's name".
    pub seed: Option<u64>,
    /// Stop after this many inputs even if time remains.
    pub max_iterations: Option<u64>,
    /// Run only this saved input instead of fuzzing.
    pub replay: Option<PathBuf>,
    /// Where a failing input is written so that it can be replayed.
    pub failures_dir: PathBuf,
    /// The most bytes one input may make its decoder allocate (live at once).
    pub max_alloc_bytes: u64,
    /// An input still running after this long is reported as a hang and the process aborts.
    pub hang_secs: u64,
}

impl Default for FuzzSettings {
    fn default() -> Self {
        Self {
            budget_secs: 10,
            seed: None,
            max_iterations: None,
            replay: None,
            failures_dir: std::env::temp_dir().join("conclave-fuzz-failures"),
            max_alloc_bytes: 64 * 1024 * 1024,
            hang_secs: 60,
        }
    }
}

impl FuzzSettings {
    /// The defaults, overridden by the `CONCLAVE_FUZZ_*` variables that are set.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Like [`FuzzSettings::from_env`], reading variables through `lookup` (for tests and for
    /// child processes that receive their settings under other names).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        if let Some(value) = lookup(SECONDS_VAR) {
            settings.budget_secs = parse_u64(SECONDS_VAR, &value, "a whole number of seconds")?;
        }
        if let Some(value) = lookup(SEED_VAR) {
            settings.seed = Some(if value.trim() == "random" {
                clock_seed()
            } else {
                parse_u64(SEED_VAR, &value, "a number (decimal or 0x-hex) or `random`")?
            });
        }
        if let Some(value) = lookup(ITERATIONS_VAR) {
            settings.max_iterations =
                Some(parse_u64(ITERATIONS_VAR, &value, "a whole number of inputs")?);
        }
        if let Some(value) = lookup(REPLAY_VAR).filter(|v| !v.is_empty()) {
            settings.replay = Some(PathBuf::from(value));
        }
        if let Some(value) = lookup(FAILURES_VAR).filter(|v| !v.is_empty()) {
            settings.failures_dir = PathBuf::from(value);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the values that would make a run meaningless.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_alloc_bytes == 0 {
            return Err(SettingsError {
                var: "max_alloc_bytes",
                value: "0".into(),
                expected: "a positive number of bytes",
            });
        }
        if self.hang_secs == 0 {
            return Err(SettingsError {
                var: "hang_secs",
                value: "0".into(),
                expected: "a positive number of seconds",
            });
        }
        Ok(())
    }

    /// The time budget.
    pub fn budget(&self) -> Duration {
        Duration::from_secs(self.budget_secs)
    }

    /// The seed for `target`: the configured one, or a fixed one derived from the name, so
    /// that a CI run is the same every time and a failure replays.
    pub fn seed_for(&self, target: &str) -> u64 {
        self.seed.unwrap_or_else(|| fnv1a(target.as_bytes()))
    }
}

fn parse_u64(var: &'static str, value: &str, expected: &'static str) -> Result<u64, SettingsError> {
    let text = value.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    parsed.ok_or_else(|| SettingsError { var, value: value.to_string(), expected })
}

/// A seed from the wall clock, for runs that should explore something new each time. The
/// fuzz harness is test tooling, not protocol logic, so the clock is fair game here.
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    fnv1a(&nanos.to_le_bytes()) ^ u64::from(std::process::id())
}

/// FNV-1a: a stable hash, so a target's default seed never changes between Rust versions.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |var| map.get(var).cloned()
    }

    #[test]
    fn defaults_suit_ci() {
        let s = FuzzSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.budget_secs, 10);
        assert_eq!(s.seed, None);
        assert_eq!(s.seed_for("wal"), s.seed_for("wal"));
        assert_ne!(s.seed_for("wal"), s.seed_for("raft_message"));
        assert_eq!(s.max_alloc_bytes, 64 << 20);
    }

    #[test]
    fn variables_override_the_defaults() {
        let s = FuzzSettings::from_lookup(lookup(&[
            (SECONDS_VAR, "600"),
            (SEED_VAR, "0x10"),
            (ITERATIONS_VAR, "5"),
            (REPLAY_VAR, "x.bin"),
        ]))
        .unwrap();
        assert_eq!((s.budget_secs, s.seed, s.max_iterations), (600, Some(16), Some(5)));
        assert_eq!(s.replay, Some(PathBuf::from("x.bin")));
        assert!(FuzzSettings::from_lookup(lookup(&[(SEED_VAR, "random")])).unwrap().seed.is_some());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = FuzzSettings::from_lookup(lookup(&[(SECONDS_VAR, "ten")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid CONCLAVE_FUZZ_SECONDS = \"ten\": expected a whole number of seconds"
        );
    }
}
