//! The clusters `conclave-lab bench` measures: a Conclave cluster of one protocol, or Debian's
//! etcd 3.4, each with direct peer links on loopback (no proxy: the bench measures the systems,
//! not the lab's fault injection).

use crate::cluster::{Cluster, ClusterSpec};
use crate::etcd::{EtcdCluster, EtcdSpec};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to start: a protocol by name, or etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchTarget {
    Conclave(String),
    Etcd(PathBuf),
}

impl BenchTarget {
    pub fn name(&self) -> String {
        match self {
            Self::Conclave(protocol) => protocol.clone(),
            Self::Etcd(_) => "etcd".into(),
        }
    }

    pub fn is_etcd(&self) -> bool {
        matches!(self, Self::Etcd(_))
    }

    /// Whether the target offers linearizable reads and atomic compare-and-swap (Gossip does
    /// not, and says so with FAILED_PRECONDITION).
    pub fn linearizable(&self) -> bool {
        !matches!(self, Self::Conclave(p) if p == "gossip")
    }
}

#[derive(Debug)]
enum Processes {
    Conclave(Cluster),
    Etcd(EtcdCluster),
}

/// A started cluster of a [`BenchTarget`].
#[derive(Debug)]
pub struct Running {
    pub name: String,
    processes: Processes,
}

impl Running {
    /// Starts `nodes` members of `target` under `data_root` (emptied first) and waits until a
    /// write succeeds. `exe` is the lab's own executable: it runs Conclave nodes (`node`) and
    /// wraps etcd (`guard`) so that every process dies with the lab.
    pub async fn start(
        target: &BenchTarget,
        nodes: usize,
        exe: &Path,
        data_root: PathBuf,
        ready_timeout: Duration,
    ) -> anyhow::Result<Self> {
        if data_root.exists() {
            std::fs::remove_dir_all(&data_root)
                .with_context(|| format!("cannot empty {}", data_root.display()))?;
        }
        let processes = match target {
            BenchTarget::Conclave(protocol) => {
                let mut spec = ClusterSpec::new(protocol, nodes, exe, data_root);
                spec.node_args = vec!["node".into()];
                spec.log_level = "warn".into();
                Processes::Conclave(Cluster::start(spec)?)
            }
            BenchTarget::Etcd(binary) => {
                let wrapper = vec![exe.display().to_string(), "guard".into(), "--".into()];
                let spec = EtcdSpec { binary: binary.clone(), nodes, data_root, wrapper };
                let mut cluster = EtcdCluster::create(spec)?;
                let peers: Vec<_> = cluster.members.iter().map(|m| m.peer).collect();
                cluster.launch(&peers)?;
                Processes::Etcd(cluster)
            }
        };
        let running = Self { name: target.name(), processes };
        if let Err(error) = crate::target::wait_ready(&running.endpoints(), ready_timeout).await {
            anyhow::bail!("{} did not start: {error:#}\n{}", running.name, running.log_tails(15));
        }
        Ok(running)
    }

    pub fn endpoints(&self) -> Vec<String> {
        match &self.processes {
            Processes::Conclave(c) => c.endpoints(),
            Processes::Etcd(e) => e.endpoints(),
        }
    }

    /// The process id of every member, in member order (None for one that is not running).
    pub fn pids(&self) -> Vec<Option<u32>> {
        match &self.processes {
            Processes::Conclave(c) => c.nodes.iter().map(|n| n.pid()).collect(),
            Processes::Etcd(e) => (0..e.members.len()).map(|i| e.pid_of(i)).collect(),
        }
    }

    /// Whether every member still runs.
    pub fn all_running(&mut self) -> bool {
        match &mut self.processes {
            Processes::Conclave(c) => c.nodes.iter_mut().all(|n| n.is_running()),
            Processes::Etcd(e) => (0..e.members.len()).all(|i| e.is_running(i)),
        }
    }

    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let count = self.endpoints().len();
        for i in 0..count {
            let tail = match &self.processes {
                Processes::Conclave(c) => c.log_tail(i as u64 + 1, lines),
                Processes::Etcd(e) => e.log_tail(i, lines),
            };
            out.push_str(&format!("--- {} node {} ---\n{tail}\n", self.name, i + 1));
        }
        out
    }

    /// Stops every member gracefully (SIGTERM), killing whichever has not exited within
    /// [`STOP_GRACE`].
    ///
    /// A member's graceful stop ends its clients' HTTP/2 connections with GOAWAY and a PING
    /// that the client must answer; the bench's connections run on the bench's own runtime, so
    /// this waits asynchronously, letting them answer, rather than blocking the thread (which
    /// would leave every member waiting on its clients until it is killed).
    pub async fn stop(&mut self) {
        for pid in self.pids().into_iter().flatten() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.any_running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !self.any_running() {
            return;
        }
        // Kills the rest.
        match &mut self.processes {
            Processes::Conclave(c) => {
                if let Err(error) = c.stop_all(Duration::ZERO) {
                    crate::progress::note(&format!("{}: {error}", self.name));
                }
            }
            Processes::Etcd(e) => e.stop_all(Duration::ZERO),
        }
    }

    /// Whether any member still runs.
    fn any_running(&mut self) -> bool {
        match &mut self.processes {
            Processes::Conclave(c) => c.nodes.iter_mut().any(|n| n.is_running()),
            Processes::Etcd(e) => (0..e.members.len()).any(|i| e.is_running(i)),
        }
    }
}

/// How long a stopping member may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Resident memory of a process in bytes (VmRSS in /proc/PID/status).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
