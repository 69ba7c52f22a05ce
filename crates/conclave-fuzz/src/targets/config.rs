//! conclaved's configuration loader: any bytes as `conclave.toml`.
//!
//! [`Config::load`] must return the configuration or an error whose message says what is
//! wrong; it must not panic on any file. A configuration that loads must also survive what
//! `conclaved --check-config` does with it: printed as TOML, that text loads again to the same
//! configuration.
//!
//! The loader also reads `CONCLAVE_*` environment variables, and refuses unknown keys — so it
//! refuses `CONCLAVE_FUZZ_SECONDS` too. The test therefore runs this target in a child process
//! whose environment holds no `CONCLAVE_*` variable; [`fuzz`] refuses to run otherwise, since
//! every input would then fail for the same reason and nothing would be tested.

use crate::corpus;
use crate::mutate::Mutator;
use crate::runner::{self, CheckResult, Failure, Input, Report, Verdict};
use crate::settings::FuzzSettings;
use clap::Parser;
use conclaved::cli::Flags;
use conclaved::config::Config;
use std::path::Path;

pub const TARGET: &str = "config";

/// Mutants are cut to this length.
pub const MAX_INPUT_BYTES: usize = 8 * 1024;

/// Keys, tables and values of conclave.toml, and numbers and strings on the edges.
const DICTIONARY: &[&str] = &[
    "node_id",
    "protocol",
    "data_dir",
    "client_listen",
    "peer_listen",
    "metrics_listen",
    "members",
    "cluster_id",
    "log_level",
    "[server]",
    "[raft]",
    "[[members]]",
    "request_timeout_ms",
    "max_request_bytes",
    "snapshot_interval_entries",
    "max_pending_requests",
    "downgrade_unsupported",
    "election_timeout_ms_min",
    "heartbeat_interval_ms",
    " = ",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "0",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e309",
    "nan",
    "inf",
    "true",
    "\"raft\"",
    "\"gossip\"",
    "\"[::1]:0\"",
    "\"1=127.0.0.1:2380,127.0.0.1:2379\"",
    "{ id = 2, peer = \"127.0.0.1:1\", client = \"127.0.0.1:2\" }",
    "1979-05-27T07:32:00Z",
    "\\u0000",
    "\u{feff}",
];

/// The variables the loader would read besides the file; none may be set while fuzzing.
pub fn conclave_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CONCLAVE_"))
        .collect()
}

/// Loads `bytes` as the config file (written to `dir`), with no flags.
pub fn check(dir: &Path, bytes: &[u8]) -> CheckResult {
    let path = dir.join("conclave.toml");
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write the config file: {e}"))?;
    let flags = Flags::try_parse_from(["conclaved"]).map_err(|e| format!("no flags: {e}"))?;
    let config = match Config::load(Some(&path), &flags) {
        Ok(config) => config,
        Err(error) => {
            let message = error.to_string();
            let detail = message.trim_start_matches("configuration error:").trim();
            if detail.is_empty() {
                return Err(format!("a refused config says nothing about why: {message:?}"));
            }
            return Ok(Verdict::Rejected);
        }
    };
    // What --check-config prints must load back to the same configuration.
    let printed = toml::to_string_pretty(&config)
        .map_err(|e| format!("a loaded config cannot be printed as TOML: {e}"))?;
    std::fs::write(&path, &printed).map_err(|e| format!("cannot write the config file: {e}"))?;
    let again = Config::load(Some(&path), &flags)
        .map_err(|e| format!("the printed config does not load: {e}\n{printed}"))?;
    let reprinted = toml::to_string_pretty(&again)
        .map_err(|e| format!("a reloaded config cannot be printed: {e}"))?;
    if reprinted != printed {
        return Err(format!(
            "printing and reloading changed the config:\n{printed}\n---\n{reprinted}"
        ));
    }
    Ok(Verdict::Accepted)
}

pub fn fuzz(settings: &FuzzSettings) -> Result<Report, Failure> {
    let set = conclave_variables();
    if !set.is_empty() {
        return Err(Failure {
            target: TARGET.into(),
            seed: settings.seed_for(TARGET),
            iteration: 0,
            reason: format!(
                "CONCLAVE_* variables are set ({}); the config loader would read them, so run \
                 this target in a clean environment (the test does that in a child process)",
                set.join(", ")
            ),
            input: Input { origin: 0, bytes: Vec::new() },
            saved: None,
        });
    }
    let dir = tempfile::tempdir().map_err(|e| Failure {
        target: TARGET.into(),
        seed: 0,
        iteration: 0,
        reason: format!("no temporary directory: {e}"),
        input: Input { origin: 0, bytes: Vec::new() },
        saved: None,
    })?;
    let mutator = Mutator::new(MAX_INPUT_BYTES).with_dictionary(DICTIONARY);
    runner::run(TARGET, &corpus::load(TARGET), &mutator, settings, |input| {
        check(dir.path(), &input.bytes)
    })
}
