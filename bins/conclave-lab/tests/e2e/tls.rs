//! TLS on real processes: a three-node Raft cluster with client and peer TLS driven by the real
//! etcdctl; clients without a valid certificate refused; a peer presenting another node's
//! certificate refused by the running nodes; TLS configuration errors stop the server with
//! exit code 2. Certificates come from `scripts/make-test-ca.sh`, the script users run.

use crate::support::{etcdctl, http_get, node_binary, run_with_deadline, serial};
use bytes::Bytes;
use conclave_core::NodeId;
use conclave_lab::cluster::{Cluster, ClusterSpec};
use conclave_node::Transport;
use conclave_transport::{Faults, PeerTls, PeerTransport, TransportConfig};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs the test CA script into `dir` for `nodes` nodes.
fn make_ca(dir: &Path, nodes: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-test-ca.sh");
    let output = run_with_deadline(
        {
            let mut command = Command::new("bash");
            command.arg(script).arg(dir).arg(nodes.to_string());
            command
        },
        None,
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "scripts/make-test-ca.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Which files each node's `[tls]` table names.
#[derive(Clone, Copy)]
struct TlsPlan {
    client_cert_auth: bool,
}

/// A cluster whose nodes each get their own certificates, so the lab's shared `extra_config`
/// does not fit: configs are written here and the nodes started with `Cluster::restart`.
struct TlsCluster {
    cluster: Cluster,
    pki: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsCluster {
    /// Creates `nodes` members with certificates and starts the nodes in `start`.
    fn start(nodes: usize, start: &[u64], plan: TlsPlan) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        make_ca(&pki, nodes);
        let mut spec = ClusterSpec::new("raft", nodes, node_binary(), dir.path().join("data"));
        spec.node_args = vec!["node".into()];
        let mut cluster = Cluster::create(spec).expect("cluster created");
        for node in &cluster.nodes {
            let mut members = String::new();
            for other in &cluster.nodes {
                let _ = writeln!(members, "  \"{}={},{}\",", other.id, other.peer, other.client);
            }
            let n = pki.join(format!("node-{}", node.id));
            let client_ca = if plan.client_cert_auth {
                format!("client_ca = {:?}\n", pki.join("ca.pem"))
            } else {
                String::new()
            };
            let config = format!(
                "node_id = {}\nprotocol = \"raft\"\ndata_dir = {:?}\nclient_listen = \"{}\"\npeer_listen = \"{}\"\nmetrics_listen = \"{}\"\nlog_level = \"info\"\nmembers = [\n{members}]\n\n[tls]\nclient_cert = {:?}\nclient_key = {:?}\n{client_ca}peer_cert = {:?}\npeer_key = {:?}\npeer_ca = {:?}\n",
                node.id,
                node.data_dir,
                node.client,
                node.peer,
                node.metrics,
                n.join("server.pem"),
                n.join("server.key"),
                n.join("peer.pem"),
                n.join("peer.key"),
                pki.join("peer-ca.pem"),
            );
            std::fs::write(&node.config_path, config).unwrap();
        }
        for &id in start {
            cluster.restart(id).expect("node starts");
        }
        let this = Self { cluster, pki, _dir: dir };
        this.wait_ready(start);
        this
    }

    fn endpoint(&self, id: u64) -> String {
        self.cluster.node(id).unwrap().client.to_string()
    }

    /// etcdctl flags of a client trusted by the cluster.
    fn client_flags(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.pki.join("ca.pem").display()),
            format!("--cert={}", self.pki.join("client.pem").display()),
            format!("--key={}", self.pki.join("client.key").display()),
        ]
    }

    /// etcdctl against node `id` with `flags` then `args`.
    fn etcdctl(&self, id: u64, flags: &[String], args: &[&str]) -> Output {
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        etcdctl(&[self.endpoint(id)], &all, None, Duration::from_secs(20))
    }

    fn etcdctl_ok(&self, id: u64, args: &[&str]) -> String {
        let output = self.etcdctl(id, &self.client_flags(), args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} against node {id} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Waits until a put over TLS succeeds through one of `ids`.
    fn wait_ready(&self, ids: &[u64]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for &id in ids {
                if self.etcdctl(id, &self.client_flags(), &["put", "ready", "1"]).status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                for &id in ids {
                    eprintln!("--- node {id} ---\n{}", self.cluster.log_tail(id, 30));
                }
                panic!("TLS cluster not ready within 30 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn etcdctl_over_tls_with_client_certificates_on_a_raft_cluster() {
    let _serial = serial();
    let tls = TlsCluster::start(3, &[1, 2, 3], TlsPlan { client_cert_auth: true });

    // put on one node, get on each: the write went through Raft over mutual-TLS peer links.
    assert_eq!(tls.etcdctl_ok(1, &["put", "secret/a", "1"]).trim(), "OK");
    tls.etcdctl_ok(2, &["put", "secret/b", "2"]);
    for id in 1..=3 {
        assert_eq!(
            tls.etcdctl_ok(id, &["get", "secret/", "--prefix"]),
            "secret/a\n1\nsecret/b\n2\n",
            "node {id}"
        );
    }
    // Cluster-wide commands dial the advertised client URLs (host:port, no scheme) and keep the
    // TLS settings: member list and endpoint status --cluster work over TLS.
    let members = tls.etcdctl_ok(1, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    let status = tls.etcdctl_ok(1, &["endpoint", "status", "--cluster"]);
    assert_eq!(status.lines().count(), 3, "{status}");

    // No client certificate: refused.
    let ca_only = vec![format!("--cacert={}", tls.pki.join("ca.pem").display())];
    let refused = tls.etcdctl(1, &ca_only, &["put", "secret/c", "3"]);
    assert!(!refused.status.success(), "a client without a certificate wrote a key");
    // A client certificate from another CA: refused.
    let other = tempfile::tempdir().unwrap();
    make_ca(other.path(), 1);
    let foreign = vec![
        format!("--cacert={}", tls.pki.join("ca.pem").display()),
        format!("--cert={}", other.path().join("client.pem").display()),
        format!("--key={}", other.path().join("client.key").display()),
    ];
    let refused = tls.etcdctl(1, &foreign, &["put", "secret/c", "3"]);
    assert!(!refused.status.success(), "a client with another CA's certificate wrote a key");
    // Plaintext against the TLS port: refused.
    let plain = tls.etcdctl(1, &[], &["put", "secret/c", "3"]);
    assert!(!plain.status.success(), "a plaintext client wrote a key");
    // A client that does not trust the server's CA refuses the server.
    let wrong_ca = vec![format!("--cacert={}", other.path().join("ca.pem").display())];
    let distrust = tls.etcdctl(1, &wrong_ca, &["get", "secret/a"]);
    assert!(!distrust.status.success(), "etcdctl trusted a server from another CA");
    // None of the refused writes happened, and the trusted client still works.
    assert_eq!(tls.etcdctl_ok(3, &["get", "secret/c"]), "");
    assert_eq!(tls.etcdctl_ok(3, &["get", "secret/a", "--print-value-only"]), "1\n");
}

#[test]
fn server_tls_without_client_certificates_serves_any_client_that_trusts_it() {
    let _serial = serial();
    let tls = TlsCluster::start(1, &[1], TlsPlan { client_cert_auth: false });
    let ca_only = vec![format!("--cacert={}", tls.pki.join("ca.pem").display())];
    let put = tls.etcdctl(1, &ca_only, &["put", "k", "v"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = tls.etcdctl(1, &ca_only, &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout), "v\n", "{}", stderr(&get));
    // Still TLS: plaintext is refused.
    assert!(!tls.etcdctl(1, &[], &["get", "k"]).status.success());
}

/// The value of `name` summed over the series of `/metrics` at `addr`.
fn metric_total(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_peer_presenting_another_nodes_certificate_is_refused() {
    let _serial = serial();
    // Three members configured; nodes 1 and 2 run, and "node 3" is an impostor that holds node
    // 2's valid peer certificate and key and speaks as node 3.
    let tls = TlsCluster::start(3, &[1, 2], TlsPlan { client_cert_auth: true });
    let rt = crate::support::runtime();
    let n2 = tls.pki.join("node-2");
    let stolen = PeerTls::new(
        &std::fs::read(n2.join("peer.pem")).unwrap(),
        &std::fs::read(n2.join("peer.key")).unwrap(),
        &std::fs::read(tls.pki.join("peer-ca.pem")).unwrap(),
    )
    .unwrap();
    let peers: BTreeMap<NodeId, String> = [1, 2]
        .into_iter()
        .map(|id| (NodeId(id), tls.cluster.node(id).unwrap().peer.to_string()))
        .collect();
    let config = TransportConfig {
        reconnect_backoff_ms_min: 20,
        reconnect_backoff_ms_max: 100,
        tls: Some(stolen),
        ..TransportConfig::default()
    };
    let metrics: Vec<_> = [1, 2].iter().map(|&id| tls.cluster.node(id).unwrap().metrics).collect();
    let refused = rt.block_on(async {
        let impostor = PeerTransport::start(NodeId(3), &peers, &config, Faults::default(), "raft");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for id in [1, 2] {
                impostor.send(NodeId(id), Bytes::from_static(b"not a real message"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let refused: f64 = metrics
                .iter()
                .map(|&m| metric_total(m, "conclave_peer_identity_refused_total"))
                .sum();
            // Node 1 refuses the impostor outright; node 2 sees its own certificate claim id 3.
            if refused >= 2.0 || Instant::now() > deadline {
                break refused;
            }
        }
    });
    assert!(refused >= 2.0, "the nodes did not count the impostor's refusals: {refused}");
    for id in [1, 2] {
        let log = tls.cluster.log_tail(id, 400);
        assert!(
            log.contains("peer refused") && log.contains("node-3.conclave"),
            "node {id} did not log the refusal:\n{log}"
        );
    }
    // The cluster of 1 and 2 keeps working; the impostor joined nothing.
    tls.etcdctl_ok(1, &["put", "after", "impostor"]);
    assert_eq!(tls.etcdctl_ok(2, &["get", "after", "--print-value-only"]), "impostor\n");
    let members = tls.etcdctl_ok(1, &["endpoint", "status", "-w", "fields"]);
    assert!(members.contains("\"Leader\""), "{members}");
}

/// Runs `--check-config` on `toml` with only the `env` variables of `CONCLAVE_*`; returns
/// (exit code, stderr).
fn check_config(toml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conclave.toml");
    std::fs::write(&path, toml).unwrap();
    let mut command = Command::new(node_binary());
    command.arg("node").arg("--config").arg(&path).arg("--check-config").env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CONCLAVE_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let output = run_with_deadline(command, None, Duration::from_secs(10));
    (output.status.code(), stderr(&output))
}

fn assert_rejected(toml: &str, mentions: &[&str]) {
    let (code, stderr) = check_config(toml, &[]);
    assert_eq!(code, Some(2), "expected exit code 2, got {code:?}; stderr: {stderr}");
    for needle in mentions {
        assert!(stderr.contains(needle), "stderr should mention {needle:?}: {stderr}");
    }
}

#[test]
fn tls_configuration_errors_stop_the_server() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), 3);
    let p = |rel: &str| format!("{:?}", dir.path().join(rel));
    let members = "members = [\"1=127.0.0.1:1,127.0.0.1:2\", \"2=127.0.0.1:3,127.0.0.1:4\"]\n";

    // A file that does not exist: named with its key.
    assert_rejected(
        &format!(
            "{members}[tls]\nclient_cert = {}\nclient_key = {}\n",
            p("nope.pem"),
            p("node-1/server.key")
        ),
        &["tls.client_cert", "nope.pem", "cannot read"],
    );
    // A key without its certificate, and the other way round.
    assert_rejected(
        &format!("{members}[tls]\nclient_key = {}\n", p("node-1/server.key")),
        &["tls.client_key", "tls.client_cert"],
    );
    assert_rejected(
        &format!(
            "{members}[tls]\npeer_cert = {}\npeer_ca = {}\n",
            p("node-1/peer.pem"),
            p("peer-ca.pem")
        ),
        &["tls.peer_key", "missing"],
    );
    // A key that is not the certificate's.
    assert_rejected(
        &format!(
            "{members}[tls]\nclient_cert = {}\nclient_key = {}\n",
            p("node-1/server.pem"),
            p("node-2/server.key")
        ),
        &["tls.client_key", "does not go with", "tls.client_cert"],
    );
    // Not a certificate at all.
    assert_rejected(
        &format!(
            "{members}[tls]\nclient_cert = {}\nclient_key = {}\n",
            p("node-1/server.key"),
            p("node-1/server.key")
        ),
        &["tls.client_cert", "no certificate"],
    );
    // Node 1 configured with node 2's peer certificate.
    assert_rejected(
        &format!(
            "{members}[tls]\npeer_cert = {}\npeer_key = {}\npeer_ca = {}\n",
            p("node-2/peer.pem"),
            p("node-2/peer.key"),
            p("peer-ca.pem")
        ),
        &["tls.peer_cert", "node-1.conclave"],
    );
    // Plaintext on every interface without `insecure`: refused, naming the key...
    assert_rejected(
        &format!("client_listen = \"0.0.0.0:23790\"\n{members}"),
        &["client_listen", "0.0.0.0:23790", "insecure"],
    );
    assert_rejected(
        &format!("peer_listen = \"0.0.0.0:23800\"\n{members}"),
        &["peer_listen", "insecure"],
    );
    // ...accepted with it (from the file or the environment), and with TLS on that listener.
    let (code, err) = check_config(
        &format!("insecure = true\nclient_listen = \"0.0.0.0:23790\"\n{members}"),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_config(
        &format!("peer_listen = \"0.0.0.0:23800\"\n{members}"),
        &[("CONCLAVE_INSECURE", "true")],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_config(
        &format!(
            "client_listen = \"0.0.0.0:23790\"\n{members}[tls]\nclient_cert = {}\nclient_key = {}\n",
            p("node-1/server.pem"),
            p("node-1/server.key")
        ),
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
}
