//! The baseline: a local cluster of real etcd 3.4 processes (Debian's `etcd-server`).
//!
//! Each member listens for clients and peers on its own loopback ports, but advertises as its
//! peer URL the lab's proxy in front of its peer port, so that all peer traffic passes the
//! proxy. etcd runs with its defaults (100 ms heartbeats, 1 s election timeout), as shipped.
//! Like [`crate::cluster::Cluster`], members can be killed, paused and restarted, and dropping
//! an [`EtcdCluster`] kills whatever still runs.

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The executable Debian installs.
pub const ETCD_BINARY: &str = "etcd";

/// What to start.
#[derive(Clone, Debug)]
pub struct EtcdSpec {
    pub binary: PathBuf,
    pub nodes: usize,
    pub data_root: PathBuf,
    /// A command placed before etcd's (the lab's `guard --`), which makes the member die with
    /// the lab; empty to run etcd directly.
    pub wrapper: Vec<String>,
}

/// One member.
#[derive(Debug)]
pub struct EtcdMember {
    pub name: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    /// What the member advertises as its peer URL (the proxy in front of `peer`).
    pub advertised_peer: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    pub spec: EtcdSpec,
    pub members: Vec<EtcdMember>,
}

/// Finds `etcd` on the PATH.
pub fn find_binary() -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| PathBuf::from(dir).join(ETCD_BINARY))
        .find(|candidate| candidate.is_file())
}

impl EtcdCluster {
    /// Picks ports and paths; nothing runs until [`EtcdCluster::launch`].
    pub fn create(spec: EtcdSpec) -> anyhow::Result<Self> {
        if spec.nodes == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        std::fs::create_dir_all(&spec.data_root)
            .with_context(|| format!("cannot create {}", spec.data_root.display()))?;
        let listeners = (0..spec.nodes * 2)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .context("cannot find free loopback ports")?;
        let ports: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr()).collect::<std::io::Result<_>>()?;
        drop(listeners);
        let members = (0..spec.nodes)
            .map(|i| EtcdMember {
                name: format!("etcd-{}", i + 1),
                client: ports[i * 2],
                peer: ports[i * 2 + 1],
                advertised_peer: ports[i * 2 + 1],
                data_dir: spec.data_root.join(format!("etcd-{}", i + 1)),
                log_path: spec.data_root.join(format!("etcd-{}.log", i + 1)),
                child: None,
            })
            .collect();
        Ok(Self { spec, members })
    }

    /// Starts every member, advertising `advertised[i]` as member i's peer address.
    pub fn launch(&mut self, advertised: &[SocketAddr]) -> anyhow::Result<()> {
        for (member, addr) in self.members.iter_mut().zip(advertised) {
            member.advertised_peer = *addr;
        }
        for i in 0..self.members.len() {
            self.spawn(i)?;
        }
        Ok(())
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.advertised_peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let initial_cluster = self.initial_cluster();
        let spec = self.spec.clone();
        let member = &mut self.members[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .with_context(|| format!("cannot open {}", member.log_path.display()))?;
        let (program, prefix) = match spec.wrapper.split_first() {
            Some((program, rest)) => {
                let mut args = rest.to_vec();
                args.push(spec.binary.display().to_string());
                (PathBuf::from(program), args)
            }
            None => (spec.binary.clone(), Vec::new()),
        };
        let child = Command::new(&program)
            .args(prefix)
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", member.data_dir.display()))
            .arg(format!("--listen-client-urls=http://{}", member.client))
            .arg(format!("--advertise-client-urls=http://{}", member.client))
            .arg(format!("--listen-peer-urls=http://{}", member.peer))
            .arg(format!("--initial-advertise-peer-urls=http://{}", member.advertised_peer))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=conclave-lab")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        member.child = Some(child);
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.to_string()).collect()
    }

    fn pid(&self, index: usize) -> anyhow::Result<Pid> {
        let member = self.members.get(index).with_context(|| format!("no member {index}"))?;
        let child =
            member.child.as_ref().with_context(|| format!("{} is not running", member.name))?;
        Ok(Pid::from_raw(child.id() as i32))
    }

    /// The process id of member `index`, if it was started (the guard execs etcd, so this is
    /// etcd's own pid).
    pub fn pid_of(&self, index: usize) -> Option<u32> {
        self.members.get(index)?.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self, index: usize) -> bool {
        match self.members.get_mut(index).and_then(|m| m.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.members.get_mut(index).and_then(|m| m.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts a killed member again from its data directory.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        if self.is_running(index) {
            bail!("{} is still running", self.members[index].name);
        }
        self.spawn(index)
    }

    pub fn pause(&mut self, index: usize) -> anyhow::Result<()> {
        Ok(kill(self.pid(index)?, Signal::SIGSTOP)?)
    }

    pub fn resume(&mut self, index: usize) -> anyhow::Result<()> {
        Ok(kill(self.pid(index)?, Signal::SIGCONT)?)
    }

    /// SIGTERM without waiting: etcd stops on its own (its leader hands over first).
    pub fn terminate(&mut self, index: usize) -> anyhow::Result<()> {
        Ok(kill(self.pid(index)?, Signal::SIGTERM)?)
    }

    /// SIGTERM to all, then SIGKILL whatever has not exited within `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        for member in &self.members {
            if let Some(child) = &member.child {
                let pid = Pid::from_raw(child.id() as i32);
                let _ = kill(pid, Signal::SIGCONT);
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + grace;
        for member in &mut self.members {
            let Some(mut child) = member.child.take() else { continue };
            while std::time::Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of a member's log.
    pub fn log_tail(&self, index: usize, lines: usize) -> String {
        let Some(member) = self.members.get(index) else { return String::new() };
        let text = std::fs::read_to_string(&member.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
