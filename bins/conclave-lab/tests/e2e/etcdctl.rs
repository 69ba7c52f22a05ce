//! The real etcdctl 3.4 against a local cluster: every command users run day to day.

use crate::support::{etcdctl, etcdctl_ok, runtime, serial, start, text, tool};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `etcdctl watch PREFIX --prefix` against `endpoint` while `act` runs, and returns the
/// first five lines it printed (one put and one delete), waiting at most 10 s for them.
fn watch_events(endpoint: &str, prefix: &str, act: impl FnOnce()) -> Vec<String> {
    let mut watch = Command::new(tool("etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["watch", prefix, "--prefix"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    act();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 5 && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    seen
}

/// Runs the whole etcdctl suite against a 3-node cluster of `protocol`.
pub fn suite(protocol: &str) {
    let rt = runtime();
    let cluster = start(&rt, protocol, 3, "");
    let all = cluster.endpoints();
    let one = &all[..1];

    // put, get, get --prefix, get --consistency=s
    assert_eq!(etcdctl_ok(one, &["put", "fruit/apple", "red"]).trim(), "OK");
    etcdctl_ok(one, &["put", "fruit/banana", "yellow"]);
    etcdctl_ok(&all[1..2], &["put", "veg/carrot", "orange"]);
    assert_eq!(etcdctl_ok(one, &["get", "fruit/apple"]), "fruit/apple\nred\n");
    assert_eq!(
        etcdctl_ok(&all[2..3], &["get", "fruit/", "--prefix"]),
        "fruit/apple\nred\nfruit/banana\nyellow\n"
    );
    // A serializable read on another node sees the write once it has applied it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = etcdctl_ok(&all[2..3], &["get", "veg/carrot", "--consistency=s"]);
        if got == "veg/carrot\norange\n" {
            break;
        }
        assert!(Instant::now() < deadline, "serializable read never saw the write: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        etcdctl_ok(one, &["get", "fruit/", "--prefix", "--keys-only"]),
        "fruit/apple\n\nfruit/banana\n\n"
    );
    assert_eq!(
        etcdctl_ok(one, &["get", "fruit/", "--prefix", "--limit", "1"]),
        "fruit/apple\nred\n"
    );
    // --rev reads the past: at the revision of the first put, only that key existed.
    let first = etcdctl_ok(one, &["get", "fruit/apple", "-w", "json"]);
    let rev = first
        .split("\"mod_revision\":")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap();
    assert_eq!(
        etcdctl_ok(one, &["get", "fruit/", "--prefix", "--keys-only", &format!("--rev={rev}")]),
        "fruit/apple\n\n"
    );

    // txn: compare-and-swap, both branches.
    etcdctl_ok(one, &["put", "lock", "v1"]);
    let txn = |expect: &str| {
        let input = format!("value(\"lock\") = \"{expect}\"\n\nput lock v2\n\nput lock other\n\n");
        let output = etcdctl(one, &["txn"], Some(&input), Duration::from_secs(20));
        assert!(output.status.success(), "txn failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(txn("v1").starts_with("SUCCESS"), "compare on the current value must succeed");
    assert_eq!(etcdctl_ok(one, &["get", "lock", "--print-value-only"]), "v2\n");
    assert!(txn("v1").starts_with("FAILURE"), "compare on a stale value must fail");
    assert_eq!(etcdctl_ok(one, &["get", "lock", "--print-value-only"]), "other\n");

    // watch --prefix sees later puts and deletes.
    let seen = watch_events(&all[1], "w/", || {
        etcdctl_ok(one, &["put", "w/a", "1"]);
        etcdctl_ok(one, &["del", "w/a"]);
    });
    assert_eq!(seen, ["PUT", "w/a", "1", "DELETE", "w/a"], "watch output");

    // del --prefix
    assert_eq!(etcdctl_ok(one, &["del", "fruit/", "--prefix"]).trim(), "2");
    assert_eq!(etcdctl_ok(one, &["get", "fruit/", "--prefix"]), "");

    // lease grant, put --lease, expiry removes the key.
    let granted = etcdctl_ok(one, &["lease", "grant", "2"]);
    let id = granted.split_whitespace().nth(1).expect("lease id").to_string();
    etcdctl_ok(one, &["put", "ephemeral", "x", &format!("--lease={id}")]);
    assert_eq!(etcdctl_ok(one, &["get", "ephemeral", "--print-value-only"]), "x\n");
    let ttl = etcdctl_ok(one, &["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.contains("ephemeral"), "timetolive lists the attached key: {ttl}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !etcdctl_ok(one, &["get", "ephemeral"]).is_empty() {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(200));
    }

    // member list
    let members = etcdctl_ok(one, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    for endpoint in &all {
        assert!(members.contains(endpoint.as_str()), "member list names {endpoint}: {members}");
    }

    // endpoint status --cluster: exactly one leader.
    let status = etcdctl_ok(one, &["endpoint", "status", "--cluster", "-w", "fields"]);
    let leaders = status.lines().filter(|l| l.starts_with("\"Leader\"")).collect::<Vec<_>>();
    let member_ids = status.lines().filter(|l| l.starts_with("\"MemberID\"")).collect::<Vec<_>>();
    assert_eq!(member_ids.len(), 3, "{status}");
    let leader = leaders[0].rsplit(':').next().unwrap().trim().to_string();
    let is_leader =
        member_ids.iter().filter(|l| l.rsplit(':').next().unwrap().trim() == leader).count();
    assert_eq!(is_leader, 1, "exactly one member is the leader:\n{status}");

    // move-leader: Raft hands the leadership to the member named; Multi-Paxos says it cannot.
    let from: u64 = leader.parse().unwrap();
    let to = cluster.nodes.iter().map(|n| n.id).find(|&id| id != from).unwrap();
    let output = etcdctl(&all, &["move-leader", &format!("{to:x}")], None, Duration::from_secs(20));
    if protocol == "raft" {
        assert!(output.status.success(), "{}", text(&output));
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.contains(&format!("Leadership transferred from {from:x} to {to:x}")),
            "{said}"
        );
        let stranger = etcdctl(&all, &["move-leader", "63"], None, Duration::from_secs(20));
        assert!(!stranger.status.success(), "{}", text(&stranger));
        let said = String::from_utf8_lossy(&stranger.stderr);
        assert!(said.contains("etcdserver: bad leader transferee"), "{said}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = etcdctl_ok(&all, &["endpoint", "status", "-w", "fields"]);
            let named: Vec<&str> = status
                .lines()
                .filter(|l| l.starts_with("\"Leader\""))
                .map(|l| l.rsplit(':').next().unwrap().trim())
                .collect();
            if named.len() == 3 && named.iter().all(|&id| id == to.to_string()) {
                break;
            }
            assert!(Instant::now() < deadline, "every member names {to} leader:\n{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(etcdctl_ok(one, &["put", "moved/leader", "yes"]).trim(), "OK");
    } else {
        assert!(!output.status.success(), "{}", text(&output));
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("does not support leadership transfer"), "{said}");
    }

    // endpoint health --cluster
    let output = etcdctl(one, &["endpoint", "health", "--cluster"], None, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");
    drop(cluster);
}

/// `etcdctl check perf --load s`: 60 s of puts from 50 clients; must report PASS.
pub fn check_perf(protocol: &str) {
    let rt = runtime();
    let cluster = start(&rt, protocol, 3, "");
    let output = etcdctl(
        &cluster.endpoints(),
        &["check", "perf", "--load", "s"],
        None,
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // The progress bar is noise; keep the verdict lines.
    for line in text.split(['\n', '\r']).filter(|l| l.contains("PASS") || l.contains("FAIL")) {
        println!("{}", line.trim_start_matches(|c: char| c != 'P' && c != 'F'));
    }
    assert!(output.status.success(), "check perf failed:\n{text}");
    assert!(text.contains("PASS: Throughput"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn raft_etcdctl() {
    let _serial = serial();
    suite("raft");
}

#[test]
fn raft_check_perf() {
    let _serial = serial();
    check_perf("raft");
}

#[test]
fn paxos_etcdctl() {
    let _serial = serial();
    suite("paxos");
}

/// Gossip serves the everyday commands; what it cannot promise is refused by default, naming
/// the protocol, and served locally with `downgrade_unsupported`.
fn gossip_suite(downgrade: bool) {
    let rt = runtime();
    let extra = if downgrade { "[server]\ndowngrade_unsupported = true\n" } else { "" };
    let cluster = start(&rt, "gossip", 3, extra);
    let all = cluster.endpoints();
    let one = &all[..1];
    assert_eq!(etcdctl_ok(one, &["put", "g/a", "1"]).trim(), "OK");
    assert_eq!(etcdctl_ok(one, &["get", "g/a", "--consistency=s"]), "g/a\n1\n");
    // The write reaches the other replicas by anti-entropy.
    let deadline = Instant::now() + Duration::from_secs(10);
    while etcdctl_ok(&all[2..3], &["get", "g/a", "--consistency=s"]) != "g/a\n1\n" {
        assert!(Instant::now() < deadline, "the write never reached node 3");
        std::thread::sleep(Duration::from_millis(100));
    }
    let linearizable = etcdctl(one, &["get", "g/a"], None, Duration::from_secs(20));
    let txn = etcdctl(
        one,
        &["txn"],
        Some("value(\"g/a\") = \"1\"\n\nput g/a 2\n\nput g/a 3\n\n"),
        Duration::from_secs(20),
    );
    if downgrade {
        assert!(linearizable.status.success(), "{}", String::from_utf8_lossy(&linearizable.stderr));
        assert_eq!(String::from_utf8_lossy(&linearizable.stdout), "g/a\n1\n");
        assert!(
            String::from_utf8_lossy(&txn.stdout).starts_with("SUCCESS"),
            "{}",
            String::from_utf8_lossy(&txn.stderr)
        );
        assert_eq!(
            etcdctl_ok(one, &["get", "g/a", "--print-value-only", "--consistency=s"]),
            "2\n"
        );
    } else {
        for (what, output) in [("linearizable get", &linearizable), ("txn", &txn)] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{what} must be refused under gossip");
            assert!(stderr.contains("gossip"), "{what}: the error names the protocol: {stderr}");
        }
    }
    // delete, watch, member list, endpoint status
    let seen = watch_events(&all[0], "g/", || {
        etcdctl_ok(one, &["put", "g/w", "x"]);
        assert_eq!(etcdctl_ok(one, &["del", "g/w"]).trim(), "1");
    });
    assert_eq!(seen, ["PUT", "g/w", "x", "DELETE", "g/w"], "watch output");
    assert_eq!(etcdctl_ok(one, &["member", "list"]).lines().count(), 3);
    let status = etcdctl_ok(one, &["endpoint", "status", "--cluster", "-w", "fields"]);
    assert_eq!(status.lines().filter(|l| l.starts_with("\"MemberID\"")).count(), 3, "{status}");
}

#[test]
fn gossip_etcdctl_refuses_what_it_cannot_promise() {
    let _serial = serial();
    gossip_suite(false);
}

#[test]
fn gossip_etcdctl_downgraded() {
    let _serial = serial();
    gossip_suite(true);
}

#[test]
fn totem_etcdctl() {
    let _serial = serial();
    suite("totem");
}
