//! The real `etcdctl` (3.4, Debian's etcd-client) against the API. A missing `etcdctl` fails
//! these tests (scripts/install-deps.sh installs it); they are never skipped. Every command runs with bounded dial and command timeouts and is
//! killed if it overruns.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Builder, TestServer, gossip_like};

/// Fails the test, naming the fix, when etcdctl is missing.
fn require_etcdctl() {
    assert!(
        etcdctl_installed(),
        "etcdctl is not installed: run scripts/install-deps.sh (Debian's etcd-client)"
    );
}

fn etcdctl_installed() -> bool {
    std::process::Command::new("etcdctl")
        .arg("version")
        .env("ETCDCTL_API", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn etcdctl(server: &TestServer, args: &[&str]) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.addr))
        .args(["--dial-timeout=3s", "--command-timeout=5s"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs etcdctl and returns (success, stdout, stderr).
async fn run_with(
    server: &TestServer,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut command = etcdctl(server, args);
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("etcdctl starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("etcdctl {args:?} finished within 20 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stdout, stderr)
}

async fn ok(server: &TestServer, args: &[&str]) -> String {
    let (success, stdout, stderr) = run_with(server, args, None).await;
    assert!(success, "etcdctl {args:?} failed: {stderr}");
    stdout
}

/// etcdctl 3.4 prints the health verdict on stderr.
async fn assert_healthy(server: &TestServer) {
    let (success, _, stderr) = run_with(server, &["endpoint", "health"], None).await;
    assert!(success && stderr.contains("is healthy: successfully committed proposal"), "{stderr}");
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("watch output within 10 s")
        .unwrap()
        .expect("watch still running")
}

#[tokio::test]
async fn etcdctl_kv_txn_watch_lease_member_and_endpoint_commands() {
    require_etcdctl();
    let server = TestServer::start().await;

    // put / get, prev-kv, revisions, prefix, keys-only, count-only, serializable.
    assert_eq!(ok(&server, &["put", "foo", "bar"]).await, "OK\n");
    assert_eq!(ok(&server, &["get", "foo"]).await, "foo\nbar\n");
    assert_eq!(ok(&server, &["put", "foo", "baz", "--prev-kv"]).await, "OK\nfoo\nbar\n");
    assert_eq!(ok(&server, &["get", "foo", "--rev=2"]).await, "foo\nbar\n");
    ok(&server, &["put", "fox", "1"]).await;
    assert_eq!(ok(&server, &["get", "fo", "--prefix"]).await, "foo\nbaz\nfox\n1\n");
    assert_eq!(ok(&server, &["get", "fo", "--prefix", "--keys-only"]).await, "foo\n\nfox\n\n");
    assert_eq!(ok(&server, &["get", "fo", "--prefix", "--limit=1"]).await, "foo\nbaz\n");
    assert!(ok(&server, &["get", "fo", "--prefix", "-w", "json"]).await.contains("\"count\":2"));
    assert_eq!(ok(&server, &["get", "foo", "--consistency=s"]).await, "foo\nbaz\n");

    // txn from stdin: compares, blank line, success ops, blank line, failure ops.
    let txn = "value(\"foo\") = \"baz\"\n\nput foo qux\n\nput foo nope\n\n";
    let (success, stdout, stderr) = run_with(&server, &["txn"], Some(txn)).await;
    assert!(success, "txn failed: {stderr}");
    assert_eq!(stdout, "SUCCESS\n\nOK\n");
    assert_eq!(ok(&server, &["get", "foo"]).await, "foo\nqux\n");

    // watch --prefix sees a put made by another client.
    let mut watch: Child = etcdctl(&server, &["watch", "w/", "--prefix"]).spawn().unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The watch is registered once the server has answered `created`; etcdctl prints nothing
    // then, so retry the put until an event shows up.
    let mut seen = false;
    for attempt in 0..20 {
        ok(&server, &["put", &format!("w/{attempt}"), "v"]).await;
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
        {
            assert_eq!(line, "PUT");
            assert!(next_line(&mut lines).await.starts_with("w/"));
            assert_eq!(next_line(&mut lines).await, "v");
            seen = true;
            break;
        }
    }
    assert!(seen, "etcdctl watch printed an event");
    watch.kill().await.unwrap();

    // del --prefix, with the count of deleted keys.
    assert_eq!(ok(&server, &["del", "fo", "--prefix"]).await, "2\n");

    // lease grant / put --lease / timetolive / list / keep-alive / revoke.
    let granted = ok(&server, &["lease", "grant", "60"]).await;
    let hex =
        granted.split_whitespace().nth(1).expect("lease <id> granted with TTL(60s)").to_string();
    assert!(granted.contains("granted with TTL(60s)"), "{granted}");
    ok(&server, &["put", "leased", "v", &format!("--lease={hex}")]).await;
    let ttl = ok(&server, &["lease", "timetolive", &hex, "--keys"]).await;
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    assert!(ok(&server, &["lease", "list"]).await.contains(&hex));
    let kept = ok(&server, &["lease", "keep-alive", "--once", &hex]).await;
    assert!(kept.contains("keepalived with TTL(60)"), "{kept}");
    assert!(ok(&server, &["lease", "revoke", &hex]).await.contains("revoked"));
    assert_eq!(ok(&server, &["get", "leased"]).await, "");

    // compaction, member list, endpoint status / health / hashkv.
    let revision = ok(&server, &["get", "w/", "--prefix", "-w", "fields"]).await;
    assert!(revision.contains("\"Revision\""), "{revision}");
    assert!(ok(&server, &["compaction", "3"]).await.contains("compacted revision 3"));
    let members = ok(&server, &["member", "list"]).await;
    assert_eq!(
        members.trim(),
        format!("1, started, node1, http://127.0.0.1:20001, {}, false", server.url())
    );
    let status = ok(&server, &["endpoint", "status"]).await;
    assert!(status.contains("3.4.0-conclave") && status.contains(", true, false, 7, "), "{status}");
    assert_healthy(&server).await;
    assert!(ok(&server, &["endpoint", "hashkv"]).await.starts_with(&server.addr.to_string()));
}

#[tokio::test]
async fn etcdctl_against_a_protocol_without_linearizable_reads() {
    require_etcdctl();
    let server = Builder { protocol: "gossip", guarantees: gossip_like(), ..Builder::default() }
        .start()
        .await;
    assert_eq!(ok(&server, &["put", "k", "v"]).await, "OK\n");
    assert_eq!(ok(&server, &["get", "k", "--consistency=s"]).await, "k\nv\n");
    let (success, _, stderr) = run_with(&server, &["get", "k"], None).await;
    assert!(!success);
    assert!(stderr.contains("gossip offers no linearizable reads; use serializable"), "{stderr}");
    assert_healthy(&server).await;
    assert!(ok(&server, &["endpoint", "status"]).await.contains(", false, false, 7, "));
}
