//! SIGKILL the leader: writes resume on the survivors, the killed node restarts from its data
//! directory and catches up, and no acknowledged write is lost.

use crate::support::{http_get, leader, runtime, serial, start};
use conclave_etcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use conclave_lab::client::connect_with_timeout;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Tries one put of `value` through `endpoint`, giving up after `timeout`.
async fn try_put(endpoint: &str, key: &str, value: &[u8], timeout: Duration) -> bool {
    let Ok(mut client) = connect_with_timeout(endpoint, timeout).await else { return false };
    let request = PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.to_vec().into(),
        ..Default::default()
    };
    matches!(tokio::time::timeout(timeout, client.put(request)).await, Ok(Ok(_)))
}

/// Puts `key` (its own value) through any of `endpoints`, retrying until `deadline`; true once
/// acknowledged.
async fn put_any(endpoints: &[String], key: &str, deadline: Instant) -> bool {
    put_value_any(endpoints, key, key.as_bytes(), deadline).await
}

async fn put_value_any(endpoints: &[String], key: &str, value: &[u8], deadline: Instant) -> bool {
    while Instant::now() < deadline {
        for endpoint in endpoints {
            if try_put(endpoint, key, value, Duration::from_millis(300)).await {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Keys under `prefix` as `endpoint` serves them (linearizably unless `serializable`).
async fn keys(
    endpoint: &str,
    prefix: &str,
    serializable: bool,
) -> anyhow::Result<BTreeSet<String>> {
    let mut client = connect_with_timeout(endpoint, Duration::from_secs(5)).await?;
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let response = client
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: end.into(),
            serializable,
            keys_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(response.kvs.into_iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect())
}

/// Whether `endpoint` comes to serve (serializably) every key of `expected` within `patience`.
async fn serves_all(
    endpoint: &str,
    prefix: &str,
    expected: &BTreeSet<String>,
    patience: Duration,
) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(keys) = keys(endpoint, prefix, true).await
            && expected.is_subset(&keys)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The leader-kill scenario for `protocol`. Leaderless protocols lose node 1 instead.
pub fn leader_kill(protocol: &str, resume_within: Duration) {
    let rt = runtime();
    let mut cluster = start(&rt, protocol, 3, "");
    let victim = leader(&mut cluster).unwrap_or(1);
    let survivors: Vec<String> =
        cluster.nodes.iter().filter(|n| n.id != victim).map(|n| n.client.to_string()).collect();
    let all = cluster.endpoints();
    let mut acknowledged = BTreeSet::new();
    rt.block_on(async {
        for i in 0..30 {
            let key = format!("ack/before/{i:03}");
            if put_any(&all, &key, Instant::now() + Duration::from_secs(5)).await {
                acknowledged.insert(key);
            }
        }
    });
    assert_eq!(acknowledged.len(), 30, "a healthy cluster acknowledges every write");

    cluster.kill(victim).unwrap();
    let killed = Instant::now();
    let resumed =
        rt.block_on(put_any(&survivors, "ack/after/000", killed + Duration::from_secs(30)));
    let unavailable = killed.elapsed();
    println!("{protocol}: killed leader node {victim}; writes resumed after {unavailable:?}");
    assert!(resumed, "writes never resumed on the survivors");
    acknowledged.insert("ack/after/000".into());
    assert!(
        unavailable <= resume_within,
        "{protocol}: writes resumed after {unavailable:?}, expected within {resume_within:?}"
    );
    rt.block_on(async {
        for i in 1..30 {
            let key = format!("ack/after/{i:03}");
            if put_any(&survivors, &key, Instant::now() + Duration::from_secs(5)).await {
                acknowledged.insert(key);
            }
        }
    });

    // The killed node comes back from its data directory and catches up.
    cluster.restart(victim).unwrap();
    let restarted = cluster.node(victim).unwrap().client.to_string();
    let caught_up =
        rt.block_on(serves_all(&restarted, "ack/", &acknowledged, Duration::from_secs(20)));
    assert!(
        caught_up,
        "node {victim} did not catch up after restart:\n{}",
        cluster.log_tail(victim, 20)
    );

    // Nothing acknowledged is lost, as every node serves it.
    for endpoint in cluster.endpoints() {
        let present = rt.block_on(keys(&endpoint, "ack/", false)).expect("read after recovery");
        let lost: Vec<_> = acknowledged.difference(&present).collect();
        assert!(lost.is_empty(), "{endpoint} lost acknowledged writes: {lost:?}");
    }
    cluster.stop_all(Duration::from_secs(10)).expect("clean stop");
}

#[test]
fn raft_leader_kill() {
    let _serial = serial();
    leader_kill("raft", Duration::from_secs(2));
}

#[test]
fn paxos_leader_kill() {
    let _serial = serial();
    leader_kill("paxos", Duration::from_secs(2));
}

/// SIGTERM the Raft leader: before it stops it hands the leadership to a follower (as etcd's
/// leader does), and says so in its log; the survivors take writes at once, and nothing
/// acknowledged is lost. The time to the first write after the signal is printed.
#[test]
fn raft_leader_stopped_gracefully_hands_over() {
    let _serial = serial();
    let rt = runtime();
    let mut cluster = start(&rt, "raft", 3, "");
    let victim = leader(&mut cluster).expect("a raft leader");
    let survivors: Vec<String> =
        cluster.nodes.iter().filter(|n| n.id != victim).map(|n| n.client.to_string()).collect();
    let all = cluster.endpoints();
    let acknowledged: BTreeSet<String> = rt.block_on(async {
        let mut acknowledged = BTreeSet::new();
        for i in 0..20 {
            let key = format!("ack/{i:03}");
            if put_any(&all, &key, Instant::now() + Duration::from_secs(5)).await {
                acknowledged.insert(key);
            }
        }
        acknowledged
    });
    assert_eq!(acknowledged.len(), 20, "a healthy cluster acknowledges every write");

    let signalled = Instant::now();
    let code = cluster.stop(victim, Duration::from_secs(10)).expect("the leader stops cleanly");
    assert_eq!(code, Some(0), "{}", cluster.log_tail(victim, 20));
    let resumed =
        rt.block_on(put_any(&survivors, "ack/after", signalled + Duration::from_secs(30)));
    println!(
        "raft: leader node {victim} stopped; writes resumed {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert!(resumed, "writes never resumed on the survivors");
    let log = cluster.log_tail(victim, 50);
    assert!(log.contains("handed the leadership over before stopping"), "{log}");
    let new_leader = leader(&mut cluster).expect("a leader among the survivors");
    assert_ne!(new_leader, victim);
    for endpoint in &survivors {
        let present = rt.block_on(keys(endpoint, "ack/", false)).expect("a linearizable read");
        assert!(acknowledged.is_subset(&present), "{endpoint} lost acknowledged writes");
    }
    cluster.stop_all(Duration::from_secs(10)).expect("clean stop");
}

/// Totem has no leader: node 1 is killed and the ring re-forms without it. With default
/// timeouts this measured 2.25 s (the goal is 3 s: token loss, then gather and commit); the
/// bound here leaves room for a loaded CI machine, and the test prints the figure.
#[test]
fn totem_member_kill() {
    let _serial = serial();
    leader_kill("totem", Duration::from_secs(5));
}

/// A follower down while the others snapshot (on their snapshot threads) and compact past what
/// it has comes back through the leader's snapshot: small intervals make every node snapshot
/// many times during the test. The state grows past 36 MiB, beyond what one peer frame carried
/// before payloads were fragmented, so the InstallSnapshot crosses the link in fragments.
#[test]
fn raft_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let _serial = serial();
    let rt = runtime();
    let config = "[server]\nsnapshot_interval_entries = 100\n[raft]\nsnapshot_keep_entries = 10\n";
    let mut cluster = start(&rt, "raft", 3, config);
    let leader_id = leader(&mut cluster).expect("a raft leader");
    let follower = cluster.nodes.iter().map(|n| n.id).find(|&id| id != leader_id).unwrap();
    let all = cluster.endpoints();
    let mut acknowledged = BTreeSet::new();
    let value = vec![b'v'; 24 * 1024];
    let put_many = |acknowledged: &mut BTreeSet<String>, endpoints: &[String], from, to| {
        rt.block_on(async {
            for i in from..to {
                let key = format!("snap/{i:05}");
                let deadline = Instant::now() + Duration::from_secs(5);
                assert!(
                    put_value_any(endpoints, &key, &value, deadline).await,
                    "{key} was not acknowledged"
                );
                acknowledged.insert(key);
            }
        })
    };
    put_many(&mut acknowledged, &all, 0, 50);

    cluster.kill(follower).unwrap();
    let survivors: Vec<String> =
        cluster.nodes.iter().filter(|n| n.id != follower).map(|n| n.client.to_string()).collect();
    put_many(&mut acknowledged, &survivors, 50, 1500);
    let snapshots = |id: u64| {
        let dir = cluster.data_root().join(format!("node-{id}")).join("snap");
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0)
    };
    assert!(snapshots(leader_id) > 0, "the leader wrote snapshot files");
    // And said so: the snapshot series count them and time both stages.
    let (_, body) = http_get(cluster.node(leader_id).unwrap().metrics, "/metrics");
    let sum = |prefix: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sum("conclave_snapshots_total") >= 1.0, "conclave_snapshots_total: {body}");
    assert!(sum("conclave_snapshot_bytes") > 1e6, "conclave_snapshot_bytes");
    for stage in ["pause", "encode", "write"] {
        let count = body
            .lines()
            .filter(|l| l.starts_with("conclave_snapshot_duration_seconds_count"))
            .filter(|l| l.contains(&format!("stage=\"{stage}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(count >= 1.0, "no {stage} timing in conclave_snapshot_duration_seconds");
    }

    cluster.restart(follower).unwrap();
    let restarted = cluster.node(follower).unwrap().client.to_string();
    let caught_up =
        rt.block_on(serves_all(&restarted, "snap/", &acknowledged, Duration::from_secs(30)));
    assert!(caught_up, "node {follower} did not catch up:\n{}", cluster.log_tail(follower, 20));
    let (_, body) = http_get(cluster.node(follower).unwrap().metrics, "/metrics");
    let installed: f64 = body
        .lines()
        .filter(|l| l.starts_with("conclave_raft_snapshots_installed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(installed >= 1.0, "the follower caught up through a snapshot, not the log");
    println!("node {follower} caught up; snapshots installed: {installed}");
    for endpoint in cluster.endpoints() {
        let present = rt.block_on(keys(&endpoint, "snap/", false)).expect("read after catch-up");
        assert!(acknowledged.is_subset(&present), "{endpoint} lost acknowledged writes");
    }
    cluster.stop_all(Duration::from_secs(10)).expect("clean stop");
}
