//! Backups with the real etcdctl: `etcdctl snapshot save` from one member of a live cluster,
//! `conclaved snapshot restore` of every member's data directory from that file, and the new
//! cluster serves every key with its value, versions and revisions, the store's revision, the
//! history below it, the compaction point and the leases. A damaged, truncated or foreign file
//! is refused with exit code 2 and a message naming the file and what is wrong.
//!
//! [`snapshot_round_trip`] is a function over the protocol; each protocol's test calls it.

use crate::support::{etcdctl, node_binary, run_with_deadline, runtime, serial, start, text, tool};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `conclaved` (the lab's `node` command) with `args` and no `CONCLAVE_*` environment.
fn conclaved(args: &[&str]) -> Output {
    let mut command = Command::new(node_binary());
    command.arg("node").args(args).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CONCLAVE_") {
            command.env_remove(key);
        }
    }
    run_with_deadline(command, None, Duration::from_secs(60))
}

/// etcdctl that must succeed, with a 20 s deadline.
fn ctl(endpoint: &str, args: &[&str]) -> String {
    let output = etcdctl(&[endpoint.to_string()], args, None, Duration::from_secs(20));
    assert!(output.status.success(), "etcdctl {args:?} against {endpoint}: {}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// `etcdctl get --prefix "" -w json` (serializable under gossip, which has no other read).
fn dump(endpoint: &str, protocol: &str) -> Result<Value, String> {
    let mut args = vec!["get", "--prefix", "", "-w", "json"];
    if protocol == "gossip" {
        args.push("--consistency=s");
    }
    let output = etcdctl(&[endpoint.to_string()], &args, None, Duration::from_secs(10));
    if !output.status.success() {
        return Err(text(&output));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{e}: {}", text(&output)))
}

/// Waits until `endpoint` answers a (linearizable, where offered) read; the lab's own
/// readiness check writes a key, which would move the revision this test checks.
fn wait_serving(endpoint: &str, protocol: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match dump(endpoint, protocol) {
            Ok(value) => return value,
            Err(error) if Instant::now() > deadline => {
                panic!("{endpoint} serves no reads 40 s after the restore: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn revision(dump: &Value) -> i64 {
    dump["header"]["revision"].as_i64().expect("a header revision")
}

fn kvs(dump: &Value) -> Vec<Value> {
    dump["kvs"].as_array().cloned().unwrap_or_default()
}

/// The value of `key` as `etcdctl get KEY --print-value-only` shows it, at `rev` if given.
fn value_at(endpoint: &str, protocol: &str, key: &str, rev: Option<i64>) -> Output {
    let rev = rev.map(|r| format!("--rev={r}"));
    let mut args = vec!["get", key, "--print-value-only"];
    if let Some(rev) = &rev {
        args.push(rev);
    }
    if protocol == "gossip" {
        args.push("--consistency=s");
    }
    etcdctl(&[endpoint.to_string()], &args, None, Duration::from_secs(20))
}

/// Write, delete, overwrite, compact, lease; snapshot one member; write more; stop everything;
/// restore every member from the file into an empty data directory; start again; the new
/// cluster holds exactly the snapshot's state on every member, and serves writes.
pub fn snapshot_round_trip(protocol: &str) {
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let mut cluster = start(&rt, protocol, 3, "");
    let endpoints = cluster.endpoints();
    let gossip = protocol == "gossip";
    // Gossip's revisions are each member's own: write and snapshot through one member so the
    // snapshot holds every write. The others spread writes over the members and snapshot a
    // follower, whose read barrier makes it hold everything acknowledged before.
    let writer = |i: usize| if gossip { &endpoints[0] } else { &endpoints[i % 3] };
    let source = if gossip { &endpoints[0] } else { &endpoints[1] };

    for i in 0..120 {
        ctl(writer(i), &["put", &format!("app/{i:03}"), &format!("value {i}\nline two")]);
    }
    ctl(writer(0), &["put", "--", "-dash", "--not-a-flag"]);
    ctl(writer(1), &["put", "app/000", "rewritten"]);
    ctl(writer(2), &["del", "app/001"]);
    let first_write = {
        let v = dump(writer(0), protocol).unwrap();
        kvs(&v).iter().find(|kv| kv["key"] == "YXBwLzAwMg==").unwrap()["mod_revision"]
            .as_i64()
            .unwrap()
    };
    ctl(writer(0), &["put", "app/002", "second"]);
    let before_third = revision(&dump(writer(0), protocol).unwrap());
    ctl(writer(0), &["put", "app/002", "third"]);
    let mut lease = None;
    if !gossip {
        // Compaction below app/002's first write, then history above it stays readable.
        ctl(writer(0), &["compaction", &(first_write - 1).to_string()]);
        let granted = ctl(writer(0), &["lease", "grant", "3600"]);
        let id = granted.split_whitespace().nth(1).expect("lease id").to_string();
        ctl(writer(1), &["put", "leased", "yes", "--lease", &id]);
        lease = Some(id);
    }

    let file = work.path().join("backup.db");
    let file = file.to_str().unwrap();
    let expected = dump(source, protocol).unwrap();
    let saved = ctl(source, &["snapshot", "save", file]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    // Nothing was written in between, so the snapshot is exactly `expected`.
    assert_eq!(revision(&dump(source, protocol).unwrap()), revision(&expected));
    // The same through deploy/scripts/conclave-backup, which also checks the file.
    let scripted = work.path().join("scripted.db");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/scripts/conclave-backup");
    let mut command = Command::new(tool("python3"));
    command
        .arg(script)
        .arg("--etcdctl")
        .arg(tool("etcdctl"))
        .args(["snapshot", "--endpoint", source, "-o", scripted.to_str().unwrap()])
        .arg("--conclaved")
        .arg(format!("{} node", node_binary().display()));
    let out = run_with_deadline(command, None, Duration::from_secs(60));
    assert!(out.status.success(), "conclave-backup snapshot: {}", text(&out));
    let wanted = format!(
        "saved a snapshot of {} keys at revision {}",
        kvs(&expected).len(),
        revision(&expected)
    );
    assert!(text(&out).contains(&wanted), "{}", text(&out));
    ctl(writer(0), &["put", "after/save", "not in the backup"]);

    let status = conclaved(&["snapshot", "status", file]);
    let status_text = text(&status);
    assert!(status.status.success(), "{status_text}");
    assert!(
        status_text.contains(&format!("revision:          {}", revision(&expected))),
        "{status_text}"
    );
    assert!(status_text.contains(&format!("protocol:          {protocol}")), "{status_text}");
    let size = std::fs::metadata(file).unwrap().len();
    println!(
        "{protocol}: snapshot of {} keys at revision {} is {size} bytes",
        kvs(&expected).len(),
        revision(&expected)
    );

    // A new cluster: every member stopped, its data directory moved away, restored from the
    // file with its own configuration.
    cluster.stop_all(Duration::from_secs(10)).expect("clean stop");
    for node in &cluster.nodes {
        let old = node.data_dir.with_extension("old");
        std::fs::rename(&node.data_dir, &old).unwrap();
        let config = node.config_path.to_str().unwrap();
        let started = Instant::now();
        let restored = conclaved(&["snapshot", "restore", "--config", config, file]);
        let restored_text = text(&restored);
        assert!(restored.status.success(), "restore of node {}: {restored_text}", node.id);
        assert!(
            restored_text.contains(&format!(
                "restored {} keys at revision {}",
                kvs(&expected).len(),
                revision(&expected)
            )),
            "{restored_text}"
        );
        println!("{protocol}: node {} restored in {:?}", node.id, started.elapsed());
        // A second restore into the now initialised directory is refused, changing nothing.
        let again = conclaved(&["snapshot", "restore", "--config", config, file]);
        let again_text = text(&again);
        assert_eq!(again.status.code(), Some(2), "{again_text}");
        assert!(again_text.contains("is not empty"), "{again_text}");
    }
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    for id in ids {
        cluster.restart(id).unwrap();
    }

    // Every member serves exactly the snapshot: keys, values, create and mod revisions,
    // versions, leases, and the store's revision.
    for endpoint in &endpoints {
        let got = wait_serving(endpoint, protocol);
        assert_eq!(revision(&got), revision(&expected), "revision on {endpoint}");
        assert_eq!(kvs(&got), kvs(&expected), "keys on {endpoint}");
    }
    let restored_keys = kvs(&expected).len();
    println!("{protocol}: every member serves the {restored_keys} restored keys");
    let missing = value_at(&endpoints[0], protocol, "after/save", None);
    assert!(missing.status.success() && missing.stdout.is_empty(), "{}", text(&missing));

    // The history survives: app/002 as it was before its last write.
    let old = value_at(&endpoints[2], protocol, "app/002", Some(before_third));
    assert_eq!(String::from_utf8_lossy(&old.stdout).trim(), "second", "{}", text(&old));
    if let Some(lease) = &lease {
        // And so do the compaction point and the lease.
        let compacted = value_at(&endpoints[1], protocol, "app/002", Some(first_write - 2));
        assert!(!compacted.status.success(), "{}", text(&compacted));
        assert!(text(&compacted).contains("compacted"), "{}", text(&compacted));
        // etcdctl prints lease ids in hex, as `lease grant` did.
        let leases = ctl(&endpoints[0], &["lease", "list"]);
        assert!(leases.contains(lease.as_str()), "lease {lease} after the restore: {leases}");
    }

    // The restored cluster takes writes, and they continue the revision.
    ctl(&endpoints[0], &["put", "after/restore", "new"]);
    let later = wait_serving(&endpoints[0], protocol);
    assert_eq!(revision(&later), revision(&expected) + 1);
    if !gossip {
        let seen = value_at(&endpoints[2], protocol, "after/restore", None);
        assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), "new");
    } else {
        // Gossip spreads it to the others.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = value_at(&endpoints[2], protocol, "after/restore", None);
            if String::from_utf8_lossy(&seen.stdout).trim() == "new" {
                break;
            }
            assert!(Instant::now() < deadline, "the write after the restore never spread");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Every member stamped the restored keys alike, so several Merkle rounds (one a
        // second) later no member has repaired, that is rewritten, any of them: each holds the
        // snapshot's keys at their revisions, plus the one new write.
        std::thread::sleep(Duration::from_secs(3));
        for endpoint in &endpoints {
            let got = wait_serving(endpoint, protocol);
            assert_eq!(revision(&got), revision(&expected) + 1, "revision on {endpoint}");
            let restored: Vec<Value> = kvs(&got)
                .into_iter()
                .filter(|kv| kv["key"] != "YWZ0ZXIvcmVzdG9yZQ==") // after/restore
                .collect();
            assert_eq!(restored, kvs(&expected), "keys on {endpoint}");
        }
    }
}

/// Restores `file` into a fresh data directory under `dir`; returns (exit code, stderr).
fn restore_into_fresh(dir: &Path, file: &Path) -> (Option<i32>, String, bool) {
    let data = dir.join("fresh-node");
    let output = conclaved(&[
        "snapshot",
        "restore",
        "--node-id",
        "1",
        "--protocol",
        "raft",
        "--member",
        "1=127.0.0.1:1,127.0.0.1:2",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr, data.exists())
}

#[test]
fn damaged_snapshots_are_refused() {
    let _serial = serial();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good.db");
    {
        let cluster = start(&rt, "raft", 1, "");
        let endpoint = cluster.endpoints()[0].clone();
        for i in 0..20 {
            ctl(&endpoint, &["put", &format!("k{i}"), "some value that takes a few bytes"]);
        }
        ctl(&endpoint, &["snapshot", "save", good.to_str().unwrap()]);
    }
    let bytes = std::fs::read(&good).unwrap();
    let (code, stderr, _) = restore_into_fresh(&work.path().join("ok"), &good);
    assert_eq!(code, Some(0), "the undamaged file restores: {stderr}");

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    let mut foreign = vec![0u8; 8192];
    foreign[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("flipped.db", flipped, "checksum mismatch"),
        ("truncated.db", bytes[..bytes.len() - 100].to_vec(), "truncated"),
        ("padded.db", [&bytes[..], b"junk"].concat(), "unexpected bytes after the checksum"),
        ("empty.db", Vec::new(), "truncated"),
        ("backup.json", b"{\"header\": {}, \"kvs\": []}".to_vec(), "not a Conclave snapshot"),
        ("etcd.db", foreign, "an etcd snapshot"),
    ];
    for (name, contents, complaint) in cases {
        let path = work.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let (code, stderr, created) =
            restore_into_fresh(&work.path().join(format!("{name}-dir")), &path);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(complaint), "{name}: {stderr}");
        assert!(!created, "{name}: a refused file creates no data directory");
        let status = conclaved(&["snapshot", "status", path.to_str().unwrap()]);
        assert_eq!(status.status.code(), Some(2), "{name}: {}", text(&status));
    }
    let (code, stderr, _) = restore_into_fresh(work.path(), &work.path().join("missing.db"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("missing.db") && stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn raft_snapshot_round_trip() {
    let _serial = serial();
    snapshot_round_trip("raft");
}

#[test]
fn paxos_snapshot_round_trip() {
    let _serial = serial();
    snapshot_round_trip("paxos");
}

#[test]
fn totem_snapshot_round_trip() {
    let _serial = serial();
    snapshot_round_trip("totem");
}

#[test]
fn gossip_snapshot_round_trip() {
    let _serial = serial();
    snapshot_round_trip("gossip");
}
