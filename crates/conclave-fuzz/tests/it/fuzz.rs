//! One test per fuzz target. Each loops until its budget (`CONCLAVE_FUZZ_SECONDS`, default
//! 10 s) runs out and fails with the saved input and the command that replays it.

use crate::child;
use conclave_fuzz::settings::{self, FuzzSettings};
use conclave_fuzz::targets::{config, etcd, kv, peer, wal};
use conclave_fuzz::{Failure, Report};

/// The settings from the environment, with failures saved under the target directory.
fn settings() -> FuzzSettings {
    let mut settings = FuzzSettings::from_env().unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os(settings::FAILURES_VAR).is_none() {
        settings.failures_dir =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    }
    settings
}

fn expect_clean(result: Result<Report, Failure>) {
    match result {
        Ok(report) => println!("{report}"),
        Err(failure) => panic!("{failure}"),
    }
}

// Reference: every protocol's peer messages arrive unauthenticated (docs/security.md).
#[test]
fn fuzz_raft_message() {
    expect_clean(peer::fuzz_raft(&settings()));
}

#[test]
fn fuzz_paxos_message() {
    expect_clean(peer::fuzz_paxos(&settings()));
}

#[test]
fn fuzz_totem_message() {
    expect_clean(peer::fuzz_totem(&settings()));
}

#[test]
fn fuzz_gossip_message() {
    expect_clean(peer::fuzz_gossip(&settings()));
}

#[test]
fn fuzz_wal() {
    expect_clean(wal::fuzz(&settings()));
}

#[test]
fn fuzz_kv_command() {
    expect_clean(kv::fuzz_command(&settings()));
}

#[test]
fn fuzz_kv_output() {
    expect_clean(kv::fuzz_output(&settings()));
}

#[test]
fn fuzz_kv_snapshot() {
    expect_clean(kv::fuzz_snapshot(&settings()));
}

#[test]
fn fuzz_etcd_request() {
    expect_clean(etcd::fuzz(&settings()));
}

/// The settings' variables under the names the child reads (no `CONCLAVE_` prefix, which the
/// config loader would take for configuration).
const CHILD_NAMES: [(&str, &str); 5] = [
    (settings::SECONDS_VAR, "FUZZ_CHILD_SECONDS"),
    (settings::SEED_VAR, "FUZZ_CHILD_SEED"),
    (settings::ITERATIONS_VAR, "FUZZ_CHILD_ITERATIONS"),
    (settings::REPLAY_VAR, "FUZZ_CHILD_REPLAY"),
    (settings::FAILURES_VAR, "FUZZ_CHILD_FAILURES"),
];

/// The config target runs in a child process without `CONCLAVE_*` variables.
#[test]
fn fuzz_config() {
    let parent = settings();
    let mut env: Vec<(&str, String)> = CHILD_NAMES
        .iter()
        .filter_map(|(ours, theirs)| std::env::var(ours).ok().map(|v| (*theirs, v)))
        .collect();
    env.push(("FUZZ_CHILD_FAILURES", parent.failures_dir.display().to_string()));
    let output = child::run("fuzz::config_child", &env);
    let text = child::describe(&output);
    assert!(output.status.success(), "the config target failed\n{text}");
    let report = String::from_utf8_lossy(&output.stdout);
    let line = report
        .lines()
        .find_map(|l| l.find("fuzz config:").map(|at| &l[at..]))
        .unwrap_or("(no report from the child)");
    println!("{line}");
}

#[test]
#[ignore = "run by fuzz_config in a child process with a clean environment"]
fn config_child() {
    if !child::is_child() {
        return;
    }
    let names: std::collections::BTreeMap<&str, &str> = CHILD_NAMES.into_iter().collect();
    let settings =
        FuzzSettings::from_lookup(|var| names.get(var).and_then(|n| std::env::var(n).ok()))
            .unwrap_or_else(|e| panic!("{e}"));
    expect_clean(config::fuzz(&settings));
}
