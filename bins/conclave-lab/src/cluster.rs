//! Local clusters of real `conclaved` processes on loopback.
//!
//! Each node gets three loopback ports, its own data directory, a config file written by the
//! lab, and a log file. Nodes can be killed (SIGKILL), paused (SIGSTOP / SIGCONT), restarted
//! from their data directories, and stopped gracefully (SIGTERM). Dropping a [`Cluster`] kills
//! whatever is still running, so a failed test never leaves processes behind.

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub protocol: String,
    pub nodes: usize,
    /// The executable that runs a node: `conclaved`, or the lab itself (see `node_args`).
    pub binary: PathBuf,
    /// Arguments placed before `--config FILE` (the lab runs nodes as `conclave-lab node`).
    pub node_args: Vec<String>,
    /// Each node's data lives in `<data_root>/node-<id>`.
    pub data_root: PathBuf,
    /// Extra TOML appended to every node's config (protocol knobs, server settings).
    pub extra_config: String,
    pub log_level: String,
}

impl ClusterSpec {
    pub fn new(
        protocol: &str,
        nodes: usize,
        binary: impl Into<PathBuf>,
        data_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            protocol: protocol.into(),
            nodes,
            binary: binary.into(),
            node_args: Vec::new(),
            data_root: data_root.into(),
            extra_config: String::new(),
            log_level: "info".into(),
        }
    }
}

/// One node's addresses and process.
#[derive(Debug)]
pub struct NodeProcess {
    pub id: u64,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub metrics: SocketAddr,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl NodeProcess {
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.pid().with_context(|| format!("node {} is not running", self.id))?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("cannot send {signal} to node {}", self.id))
    }
}

/// A running local cluster.
#[derive(Debug)]
pub struct Cluster {
    pub spec: ClusterSpec,
    pub nodes: Vec<NodeProcess>,
}

/// Picks `n` distinct free loopback ports. The listeners are closed before the ports are used,
/// so another process could take one in between; on loopback in a test that is rare, and a
/// node that cannot bind exits with a clear error.
fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot find free loopback ports")?;
    listeners.iter().map(|l| l.local_addr().context("no local address")).collect()
}

impl Cluster {
    /// Writes every node's config and starts them all.
    pub fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let mut cluster = Self::create(spec)?;
        cluster.launch(|_, to| to.peer)?;
        Ok(cluster)
    }

    /// Picks every node's ports and paths without starting anything, so that a caller can put
    /// something (the lab's proxy) between the nodes before [`Cluster::launch`].
    pub fn create(spec: ClusterSpec) -> anyhow::Result<Self> {
        if spec.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        if !spec.binary.exists() {
            bail!("node executable not found at {}", spec.binary.display());
        }
        std::fs::create_dir_all(&spec.data_root)
            .with_context(|| format!("cannot create {}", spec.data_root.display()))?;
        let ports = free_ports(spec.nodes * 3)?;
        let mut nodes = Vec::with_capacity(spec.nodes);
        for i in 0..spec.nodes {
            let id = i as u64 + 1;
            let data_dir = spec.data_root.join(format!("node-{id}"));
            nodes.push(NodeProcess {
                id,
                client: ports[i * 3],
                peer: ports[i * 3 + 1],
                metrics: ports[i * 3 + 2],
                config_path: spec.data_root.join(format!("node-{id}.toml")),
                log_path: spec.data_root.join(format!("node-{id}.log")),
                data_dir,
                child: None,
            });
        }
        Ok(Self { spec, nodes })
    }

    /// Writes every node's config and starts every node. `peer_addr(from, to)` is the address
    /// node `from`'s config gives for member `to` (its own entry included): `to.peer` for a
    /// direct link, or a proxy's listener.
    pub fn launch(
        &mut self,
        peer_addr: impl Fn(&NodeProcess, &NodeProcess) -> SocketAddr,
    ) -> anyhow::Result<()> {
        for node in &self.nodes {
            let mut members = String::new();
            for other in &self.nodes {
                let peer = if other.id == node.id { other.peer } else { peer_addr(node, other) };
                let _ = writeln!(members, "  \"{}={},{}\",", other.id, peer, other.client);
            }
            let spec = &self.spec;
            let config = format!(
                "# Written by conclave-lab.\nnode_id = {}\nprotocol = \"{}\"\ndata_dir = \"{}\"\nclient_listen = \"{}\"\npeer_listen = \"{}\"\nmetrics_listen = \"{}\"\nlog_level = \"{}\"\nmembers = [\n{members}]\n{}\n",
                node.id,
                spec.protocol,
                node.data_dir.display(),
                node.client,
                node.peer,
                node.metrics,
                spec.log_level,
                spec.extra_config,
            );
            std::fs::write(&node.config_path, config)
                .with_context(|| format!("cannot write {}", node.config_path.display()))?;
        }
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        Ok(())
    }

    fn index(&self, id: u64) -> anyhow::Result<usize> {
        self.nodes.iter().position(|n| n.id == id).with_context(|| format!("no node {id}"))
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let binary = self.spec.binary.clone();
        let node_args = self.spec.node_args.clone();
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .with_context(|| format!("cannot open {}", node.log_path.display()))?;
        let child = Command::new(&binary)
            .args(&node_args)
            .arg("--config")
            .arg(&node.config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// Client endpoints (`host:port`) of every node, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client.to_string()).collect()
    }

    pub fn node(&self, id: u64) -> Option<&NodeProcess> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// SIGKILL: the process dies at once, with whatever it had not synced lost.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        let node = &mut self.nodes[index];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts a stopped or killed node again from its data directory.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        if self.nodes[index].is_running() {
            bail!("node {id} is still running");
        }
        self.spawn(index)
    }

    /// SIGSTOP: the process freezes, sockets stay open.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        self.nodes[index].signal(Signal::SIGSTOP)
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        self.nodes[index].signal(Signal::SIGCONT)
    }

    /// SIGTERM without waiting: the node stops on its own (a Raft leader hands its leadership
    /// over first); [`NodeProcess::is_running`] tells when it has.
    pub fn terminate(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self.index(id)?;
        self.nodes[index].signal(Signal::SIGTERM)
    }

    /// SIGTERM, then wait up to `grace` for a clean exit; SIGKILL after that. Returns the exit
    /// code of a clean exit.
    pub fn stop(&mut self, id: u64, grace: Duration) -> anyhow::Result<Option<i32>> {
        let index = self.index(id)?;
        let node = &mut self.nodes[index];
        let Some(mut child) = node.child.take() else { return Ok(None) };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not stop within {grace:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every node gracefully.
    pub fn stop_all(&mut self, grace: Duration) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        // Signal everyone first, so the nodes stop in parallel.
        for pid in self.nodes.iter().filter_map(NodeProcess::pid) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let mut failures = Vec::new();
        for id in ids {
            if let Err(error) = self.stop(id, grace) {
                failures.push(error.to_string());
            }
        }
        if failures.is_empty() { Ok(()) } else { bail!("{}", failures.join("; ")) }
    }

    /// Waits until a write succeeds through some node and every running node answers a read,
    /// or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut written = false;
        loop {
            for node in &mut self.nodes {
                if written || !node.is_running() {
                    continue;
                }
                written = crate::client::put(&node.client.to_string(), "conclave-lab/ready", "1")
                    .await
                    .is_ok();
            }
            // A write went through; now every running member must answer too (a gossip
            // member accepts writes alone, before its peers listen).
            if written {
                let mut all = true;
                for node in &mut self.nodes {
                    if node.is_running() {
                        let endpoint = node.client.to_string();
                        all &=
                            crate::client::get(&endpoint, "conclave-lab/ready", true).await.is_ok();
                    }
                }
                if all {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let logs =
                    self.nodes.iter().map(|n| n.log_path.display().to_string()).collect::<Vec<_>>();
                bail!("cluster not ready within {timeout:?}; see logs: {}", logs.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of a node's log, for error messages.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let Some(node) = self.node(id) else { return String::new() };
        let text = std::fs::read_to_string(&node.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn data_root(&self) -> &Path {
        &self.spec.data_root
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
