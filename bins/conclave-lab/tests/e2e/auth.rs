//! etcd authentication with the real etcdctl 3.4 against a 3-node Raft cluster: users, roles,
//! prefix permissions, `auth enable`, `--user`, refusals with etcd's messages, restart, `auth
//! disable`; and no password or hash in any node's log or `/metrics`.

use crate::support::{etcdctl, http_get, node_binary, runtime, serial, text};
use conclave_lab::cluster::{Cluster, ClusterSpec};
use std::process::Output;
use std::time::{Duration, Instant};

const ROOT_PASSWORD: &str = "r00t-Secret-7431";
const ALICE_PASSWORD: &str = "alice-Secret-5519";
const BOB_PASSWORD: &str = "bob-Secret-8812";
const BOB_NEW_PASSWORD: &str = "bob-Changed-2207";

const DEADLINE: Duration = Duration::from_secs(20);

/// etcdctl against one endpoint, as `user` (`name:password`) when given.
fn ctl(endpoint: &str, user: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all: Vec<String> = Vec::new();
    if let Some(user) = user {
        all.push(format!("--user={user}"));
    }
    all.extend(args.iter().map(|a| (*a).to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    etcdctl(&[endpoint.to_string()], &all, stdin, DEADLINE)
}

/// Runs etcdctl and returns its stdout; fails the test if it failed.
fn ok(endpoint: &str, user: Option<&str>, args: &[&str]) -> String {
    let output = ctl(endpoint, user, args, None);
    assert!(output.status.success(), "etcdctl {args:?} as {user:?} failed: {}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// Runs etcdctl, expects it to fail, and checks that its error names `reason`.
fn refused(endpoint: &str, user: Option<&str>, args: &[&str], reason: &str) {
    let output = ctl(endpoint, user, args, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(reason),
        "etcdctl {args:?} as {user:?} should fail with {reason:?}: {}",
        text(&output)
    );
}

fn start(rt: &tokio::runtime::Runtime) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new("raft", 3, node_binary(), dir.path());
    spec.node_args = vec!["node".into()];
    // Debug logging, so that the secrets check below looks at everything the nodes can say.
    spec.log_level = "debug".into();
    let mut cluster = Cluster::start(spec).expect("cluster starts");
    rt.block_on(cluster.wait_ready(Duration::from_secs(30))).expect("cluster ready");
    (cluster, dir)
}

#[test]
fn raft_auth_with_etcdctl() {
    let _serial = serial();
    let rt = runtime();
    let (mut cluster, _dir) = start(&rt);
    let ep = cluster.endpoints();
    let (n1, n2, n3) = (ep[0].as_str(), ep[1].as_str(), ep[2].as_str());
    let root = format!("root:{ROOT_PASSWORD}");
    let alice = format!("alice:{ALICE_PASSWORD}");
    let bob = format!("bob:{BOB_PASSWORD}");
    let (root, alice, bob) = (Some(root.as_str()), Some(alice.as_str()), Some(bob.as_str()));

    // Users and roles, while auth is still off (anyone may manage them then).
    assert_eq!(
        ok(n1, None, &["user", "add", &format!("root:{ROOT_PASSWORD}")]),
        "User root created\n"
    );
    ok(n1, None, &["user", "add", &format!("alice:{ALICE_PASSWORD}"), "--interactive=false"]);
    ok(n2, None, &["user", "add", &format!("bob:{BOB_PASSWORD}"), "--interactive=false"]);
    refused(n1, None, &["user", "add", &format!("bob:{BOB_PASSWORD}")], "user name already exists");
    ok(n1, None, &["role", "add", "reader"]);
    ok(n1, None, &["role", "add", "writer"]);
    ok(n1, None, &["role", "grant-permission", "--prefix", "reader", "read", "app/"]);
    ok(n1, None, &["role", "grant-permission", "--prefix", "writer", "readwrite", "app/"]);
    ok(n1, None, &["user", "grant-role", "alice", "reader"]);
    ok(n3, None, &["user", "grant-role", "bob", "writer"]);
    refused(n1, None, &["user", "grant-role", "bob", "nosuchrole"], "role name not found");
    let reader = ok(n2, None, &["role", "get", "reader"]);
    assert!(reader.contains("Role reader") && reader.contains("[app/, app0)"), "{reader}");
    ok(n1, None, &["put", "app/config", "v1"]);
    ok(n1, None, &["put", "secret/k", "hidden"]);

    // etcdctl's `auth enable` adds the root role and grants it to root when it is missing.
    assert_eq!(ok(n2, None, &["auth", "enable"]), "Authentication Enabled\n");

    // Anonymous: refused on every member, with etcd's message.
    for endpoint in [n1, n2, n3] {
        refused(endpoint, None, &["put", "app/x", "1"], "etcdserver: user name is empty");
        refused(endpoint, None, &["get", "app/config"], "etcdserver: user name is empty");
    }
    refused(n1, None, &["user", "list"], "etcdserver: user name is empty");

    // alice reads app/ but may not write it, nor read anything else.
    refused(n2, alice, &["put", "app/x", "1"], "etcdserver: permission denied");
    assert_eq!(ok(n3, alice, &["get", "app/config"]), "app/config\nv1\n");
    assert_eq!(ok(n1, alice, &["get", "app/", "--prefix"]), "app/config\nv1\n");
    refused(n1, alice, &["get", "secret/k"], "etcdserver: permission denied");
    refused(n1, alice, &["get", "", "--prefix"], "etcdserver: permission denied");
    refused(n1, alice, &["user", "list"], "etcdserver: permission denied");
    refused(n1, alice, &["compaction", "1"], "etcdserver: permission denied");

    // bob reads and writes app/, nothing else.
    assert_eq!(ok(n2, bob, &["put", "app/x", "1"]).trim(), "OK");
    assert_eq!(ok(n3, bob, &["get", "app/x"]), "app/x\n1\n");
    refused(n1, bob, &["put", "secret/k", "mine"], "etcdserver: permission denied");
    refused(n1, bob, &["del", "app/", "--from-key"], "etcdserver: permission denied");
    assert_eq!(ok(n1, bob, &["del", "app/x"]).trim(), "1");

    // root may do anything, including what the others may not.
    assert_eq!(ok(n3, root, &["put", "secret/k", "root-was-here"]).trim(), "OK");
    assert_eq!(ok(n1, root, &["get", "secret/k"]), "secret/k\nroot-was-here\n");
    let users = ok(n2, root, &["user", "list"]);
    assert_eq!(users, "alice\nbob\nroot\n");
    let bob_roles = ok(n2, root, &["user", "get", "bob"]);
    assert!(bob_roles.contains("Roles: writer"), "{bob_roles}");
    refused(n1, root, &["user", "delete", "root"], "etcdserver: invalid auth management");

    // A wrong password, or an unknown user, is refused at authentication.
    let failed = "etcdserver: authentication failed, invalid user ID or password";
    refused(n1, Some("bob:wrong-password"), &["get", "app/config"], failed);
    refused(n2, Some("mallory:whatever"), &["get", "app/config"], failed);

    // A changed password: the old one stops working, the new one works.
    let output =
        ctl(n1, root, &["user", "passwd", "bob", "--interactive=false"], Some(BOB_NEW_PASSWORD));
    assert!(output.status.success(), "user passwd: {}", text(&output));
    refused(n3, bob, &["get", "app/config"], failed);
    let bob_new = format!("bob:{BOB_NEW_PASSWORD}");
    assert_eq!(ok(n3, Some(&bob_new), &["get", "app/config"]), "app/config\nv1\n");

    // Revoking the permission takes effect at once.
    ok(n1, root, &["role", "revoke-permission", "--prefix", "writer", "app/"]);
    refused(n2, Some(&bob_new), &["put", "app/y", "1"], "etcdserver: permission denied");

    // The auth state is replicated state: a restarted member still enforces it.
    cluster.stop(3, Duration::from_secs(10)).expect("node 3 stops");
    cluster.restart(3).expect("node 3 restarts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = ctl(n3, root, &["get", "secret/k"], None);
        if output.status.success() {
            assert_eq!(String::from_utf8_lossy(&output.stdout), "secret/k\nroot-was-here\n");
            break;
        }
        assert!(Instant::now() < deadline, "node 3 never served root again: {}", text(&output));
        std::thread::sleep(Duration::from_millis(200));
    }
    refused(n3, None, &["put", "app/x", "1"], "etcdserver: user name is empty");
    assert_eq!(ok(n3, alice, &["get", "app/config"]), "app/config\nv1\n");

    // Disabling needs root; then access is open again.
    refused(n1, alice, &["auth", "disable"], "etcdserver: permission denied");
    assert_eq!(ok(n1, root, &["auth", "disable"]), "Authentication Disabled\n");
    assert_eq!(ok(n2, None, &["put", "secret/k", "open"]).trim(), "OK");
    assert_eq!(ok(n3, None, &["get", "secret/k"]), "secret/k\nopen\n");
    // With auth off, etcdctl's --user is accepted and ignored, as against etcd.
    assert_eq!(ok(n1, alice, &["get", "secret/k"]), "secret/k\nopen\n");

    // No password, and no password hash, in any log or metric.
    let secrets = [ROOT_PASSWORD, ALICE_PASSWORD, BOB_PASSWORD, BOB_NEW_PASSWORD, "$argon2"];
    for node in &cluster.nodes {
        let log = std::fs::read_to_string(&node.log_path).unwrap();
        assert!(!log.is_empty(), "node {} wrote no log", node.id);
        let (code, metrics) = http_get(node.metrics, "/metrics");
        assert_eq!(code, 200);
        assert!(metrics.contains("conclave_"), "node {} metrics: {metrics}", node.id);
        for secret in secrets {
            assert!(!log.contains(secret), "node {} logged {secret:?}", node.id);
            assert!(!metrics.contains(secret), "node {} metrics show {secret:?}", node.id);
        }
    }
    cluster.stop_all(Duration::from_secs(10)).expect("cluster stops");
}
