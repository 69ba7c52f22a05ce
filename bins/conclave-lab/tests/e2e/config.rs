//! A bad configuration stops the server before it binds anything: exit code 2 and a message
//! naming the key, the value and what is accepted.

use crate::support::{node_binary, run_with_deadline};
use std::process::Command;
use std::time::Duration;

const MEMBERS: &str = "members = [\"1=127.0.0.1:1,127.0.0.1:2\", \"2=127.0.0.1:3,127.0.0.1:4\"]\n";

/// Runs a node with `toml` as its config file and `args`; returns (exit code, stderr).
fn run(toml: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conclave.toml");
    std::fs::write(&path, toml).unwrap();
    let mut command = Command::new(node_binary());
    command.arg("node").arg("--config").arg(&path).args(args).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CONCLAVE_") {
            command.env_remove(key);
        }
    }
    let output = run_with_deadline(command, None, Duration::from_secs(10));
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn assert_rejected(toml: &str, args: &[&str], mentions: &[&str]) {
    let (code, stderr) = run(toml, args);
    assert_eq!(code, Some(2), "expected exit code 2, got {code:?}; stderr: {stderr}");
    for needle in mentions {
        assert!(stderr.contains(needle), "stderr should mention {needle:?}: {stderr}");
    }
}

#[test]
fn unknown_protocol() {
    assert_rejected(&format!("protocol = \"zab\"\n{MEMBERS}"), &[], &["protocol", "zab", "raft"]);
}

#[test]
fn unknown_protocol_from_a_flag() {
    assert_rejected(MEMBERS, &["--protocol", "viewstamped"], &["protocol", "viewstamped", "raft"]);
}

#[test]
fn malformed_address() {
    assert_rejected(
        &format!("client_listen = \"localhost:notaport\"\n{MEMBERS}"),
        &[],
        &["client_listen", "notaport"],
    );
}

#[test]
fn malformed_member() {
    assert_rejected("members = [\"1=127.0.0.1\"]\n", &[], &["members", "1=127.0.0.1", "ID=PEER"]);
}

#[test]
fn missing_members() {
    assert_rejected("node_id = 1\n", &[], &["members", "empty"]);
}

#[test]
fn node_not_a_member() {
    assert_rejected(&format!("node_id = 7\n{MEMBERS}"), &[], &["node_id", "7"]);
}

#[test]
fn unknown_key() {
    assert_rejected(
        &format!("electon_timeout = 5\n{MEMBERS}"),
        &[],
        &["electon_timeout", "unknown field"],
    );
}

#[test]
fn unknown_protocol_knob() {
    assert_rejected(
        &format!("{MEMBERS}[raft]\nheartbeat_ms = 5\n"),
        &[],
        &["raft", "heartbeat_ms"],
    );
}

#[test]
fn protocol_knob_out_of_range() {
    assert_rejected(
        &format!("{MEMBERS}[raft]\nelection_timeout_ms_min = 300\nelection_timeout_ms_max = 100\n"),
        &[],
        &["election_timeout_ms"],
    );
}

#[test]
fn missing_config_file() {
    let mut command = Command::new(node_binary());
    command.args(["node", "--config", "/nonexistent/conclave.toml"]);
    let output = run_with_deadline(command, None, Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn valid_config_checks_clean() {
    let (code, stderr) = run(MEMBERS, &["--check-config"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn bad_auto_compaction_settings() {
    assert_rejected(
        &format!("{MEMBERS}[server]\nauto_compaction_mode = \"hourly\"\n"),
        &[],
        &["server.auto_compaction_mode", "hourly", "revision or periodic"],
    );
    assert_rejected(
        &format!("{MEMBERS}[server]\nauto_compaction_retention = \"1h\"\n"),
        &[],
        &["server.auto_compaction_retention", "1h", "number of revisions"],
    );
    assert_rejected(
        &format!(
            "{MEMBERS}[server]\nauto_compaction_mode = \"periodic\"\n\
             auto_compaction_retention = \"10 minutes\"\n"
        ),
        &[],
        &["server.auto_compaction_retention", "10 minutes", "30m"],
    );
}

#[test]
fn auto_compaction_retention_reads_as_a_number_or_a_string() {
    for retention in ["5000", "\"5000\"", "0"] {
        let toml = format!("{MEMBERS}[server]\nauto_compaction_retention = {retention}\n");
        let (code, stderr) = run(&toml, &["--check-config"]);
        assert_eq!(code, Some(0), "{retention}: {stderr}");
    }
    let toml = format!(
        "{MEMBERS}[server]\nauto_compaction_mode = \"periodic\"\nauto_compaction_retention = 1\n"
    );
    let (code, stderr) = run(&toml, &["--check-config"]);
    assert_eq!(code, Some(0), "{stderr}");
}
