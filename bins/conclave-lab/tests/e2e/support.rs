//! Shared harness: start a cluster, run etcdctl with a deadline, serialize tests.

use conclave_lab::cluster::{Cluster, ClusterSpec};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test lock for the test's whole life.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The executable that runs a node: the lab, as `conclave-lab node --config FILE`.
pub fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conclave-lab"))
}

/// A running cluster and the temporary directory that holds its data.
pub struct TestCluster {
    pub cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Starts `nodes` nodes of `protocol` and waits until a write succeeds.
pub fn start(
    rt: &tokio::runtime::Runtime,
    protocol: &str,
    nodes: usize,
    extra_config: &str,
) -> TestCluster {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(protocol, nodes, node_binary(), dir.path());
    spec.node_args = vec!["node".into()];
    spec.extra_config = extra_config.into();
    let mut cluster = Cluster::start(spec).expect("cluster starts");
    if let Err(error) = rt.block_on(cluster.wait_ready(Duration::from_secs(30))) {
        for node in &cluster.nodes {
            eprintln!("--- node {} ---\n{}", node.id, cluster.log_tail(node.id, 30));
        }
        panic!("{error:#}");
    }
    TestCluster { cluster, _dir: dir }
}

/// Path of a system tool the tests need; fails the test (never skips it) when missing.
pub fn tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = PathBuf::from(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed; run scripts/install-deps.sh (Debian's etcd-client, etcd-server, prometheus)"
    );
}

/// Runs a command, killing it at `deadline` if it has not finished.
pub fn run_with_deadline(mut command: Command, stdin: Option<&str>, deadline: Duration) -> Output {
    use std::io::Write;
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("command starts");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `etcdctl --endpoints=... <args>` with the v3 API and a deadline.
pub fn etcdctl(
    endpoints: &[String],
    args: &[&str],
    stdin: Option<&str>,
    deadline: Duration,
) -> Output {
    let mut command = Command::new(tool("etcdctl"));
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=5s")
        .args(args);
    run_with_deadline(command, stdin, deadline)
}

/// Runs etcdctl and returns its stdout, failing the test with stderr if it failed.
pub fn etcdctl_ok(endpoints: &[String], args: &[&str]) -> String {
    let output = etcdctl(endpoints, args, None, Duration::from_secs(20));
    assert!(output.status.success(), "etcdctl {args:?} failed: {}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// A finished command's exit code, stdout and stderr, for a failure message.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fetches `http://addr/path` with a plain HTTP/1.1 request.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// The id of the node that `/health` on any running node names as leader.
pub fn leader(cluster: &mut Cluster) -> Option<u64> {
    for node in &mut cluster.nodes {
        if !node.is_running() {
            continue;
        }
        let (_, body) = http_get(node.metrics, "/health");
        let leader = body
            .split("\"leader\":")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|id| id.trim().parse().ok());
        if leader.is_some() {
            return leader;
        }
    }
    None
}
