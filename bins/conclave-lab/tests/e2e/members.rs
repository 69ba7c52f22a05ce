//! Members by DNS name: a cluster whose `members` name every peer and client address as
//! `localhost:PORT` instead of an IP address elects, replicates, lists the names and forwards
//! lease keep-alives to the lease holder through its named client address.

use crate::support::{etcdctl, runtime, serial, start};
use std::time::{Duration, Instant};

/// etcdctl against `endpoint` until it succeeds (the restarted cluster needs an election
/// first), at most 30 s.
fn ctl_eventually(endpoint: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = etcdctl(&[endpoint.to_string()], args, None, Duration::from_secs(10));
        if output.status.success() {
            return String::from_utf8(output.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} against {endpoint}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn raft_members_by_host_name() {
    let _serial = serial();
    let rt = runtime();
    let mut cluster = start(&rt, "raft", 3, "");
    let endpoints = cluster.endpoints();
    ctl_eventually(&endpoints[0], &["put", "before", "by address"]);

    // The same cluster, every member address now a name: only the `members` lines change
    // (listen addresses stay IP addresses).
    cluster.stop_all(Duration::from_secs(10)).expect("clean stop");
    for node in &cluster.nodes {
        let config = std::fs::read_to_string(&node.config_path).unwrap();
        let renamed: Vec<String> = config
            .lines()
            .map(|line| {
                if line.trim_start().starts_with('"') {
                    line.replace("127.0.0.1:", "localhost:")
                } else {
                    line.to_string()
                }
            })
            .collect();
        let renamed = renamed.join("\n");
        assert_eq!(renamed.matches("localhost:").count(), 6, "{renamed}");
        std::fs::write(&node.config_path, renamed).unwrap();
    }
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
    for id in ids {
        cluster.restart(id).unwrap();
    }

    ctl_eventually(&endpoints[2], &["put", "after", "by name"]);
    assert_eq!(ctl_eventually(&endpoints[0], &["get", "after", "--print-value-only"]), "by name\n");
    assert_eq!(
        ctl_eventually(&endpoints[1], &["get", "before", "--print-value-only"]),
        "by address\n"
    );
    let members = ctl_eventually(&endpoints[0], &["member", "list"]);
    for node in &cluster.nodes {
        let named = format!("localhost:{}", node.client.port());
        assert!(members.contains(&named), "{named} in: {members}");
    }

    // A lease lives on one member; a keep-alive sent to any other is forwarded to it through
    // its client address, which is now a name.
    let granted = ctl_eventually(&endpoints[0], &["lease", "grant", "60"]);
    let lease = granted.split_whitespace().nth(1).expect("lease id").to_string();
    for endpoint in &endpoints {
        let kept = ctl_eventually(endpoint, &["lease", "keep-alive", "--once", &lease]);
        assert!(kept.contains("keepalived with TTL"), "keep-alive through {endpoint}: {kept}");
    }
}
