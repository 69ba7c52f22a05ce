//! A target of an A/B run: a Conclave cluster of one protocol, or the etcd baseline, started
//! by the lab behind its proxy, or an already running cluster given by its endpoints.
//!
//! [`Target`] is the one handle the runner and the fault injector hold: client endpoints,
//! metrics addresses, process control (kill, restart, pause, resume) and the proxied network.
//! Leadership is asked the same way of every target, through the etcd Maintenance/Status call
//! (a member leads when its header's `member_id` equals the `leader` it reports).

use crate::cluster::{Cluster, ClusterSpec};
use crate::etcd::{EtcdCluster, EtcdSpec};
use crate::proxy::Network;
use crate::scrape::{self, CostSeries};
use anyhow::{Context, bail};
use conclave_etcd::pb::etcdserverpb::StatusRequest;
use conclave_etcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Endpoint;

/// What a target promises clients, which decides how it is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Linearizable,
    Eventual,
}

impl Consistency {
    /// What a protocol promises, known by name: Gossip is eventual (its `Guarantees` offer no
    /// linearizable reads and no atomic compare-and-swap); the others are linearizable.
    pub fn of_protocol(protocol: &str) -> Self {
        if protocol == "gossip" { Self::Eventual } else { Self::Linearizable }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linearizable => "linearizable",
            Self::Eventual => "eventual",
        }
    }
}

/// Where the processes come from.
#[derive(Debug)]
enum Backend {
    Conclave(Cluster),
    Etcd(EtcdCluster),
    /// Endpoints of a cluster the lab did not start: no process faults, no proxy.
    External,
}

/// One running target.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub consistency: Consistency,
    pub costs: CostSeries,
    backend: Backend,
    pub network: Arc<Network>,
    endpoints: Vec<String>,
    metrics: Vec<SocketAddr>,
}

impl Target {
    /// Starts `nodes` Conclave nodes of `protocol` (`node_binary node_args --config FILE`) with
    /// every peer link through the proxy.
    pub async fn start_conclave(
        protocol: &str,
        nodes: usize,
        node_binary: PathBuf,
        node_args: Vec<String>,
        data_root: PathBuf,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut spec = ClusterSpec::new(protocol, nodes, node_binary, data_root);
        spec.node_args = node_args;
        spec.log_level = "warn".into();
        let mut cluster = Cluster::create(spec)?;
        let network = Network::new(nodes, seed);
        let mut links = BTreeMap::new();
        for (i, from) in cluster.nodes.iter().enumerate() {
            for (j, to) in cluster.nodes.iter().enumerate().filter(|(j, _)| *j != i) {
                let addr = network.listen(Some(i), j, to.peer).await?;
                links.insert((from.id, to.id), addr);
            }
        }
        cluster.launch(|from, to| links[&(from.id, to.id)])?;
        let endpoints = cluster.endpoints();
        let metrics = cluster.nodes.iter().map(|n| n.metrics).collect();
        Ok(Self {
            name: protocol.to_string(),
            consistency: Consistency::of_protocol(protocol),
            costs: scrape::CONCLAVE,
            backend: Backend::Conclave(cluster),
            network,
            endpoints,
            metrics,
        })
    }

    /// Starts a real etcd cluster with a proxy in front of each member's peer port.
    pub async fn start_etcd(spec: EtcdSpec, seed: u64) -> anyhow::Result<Self> {
        let nodes = spec.nodes;
        let mut cluster = EtcdCluster::create(spec)?;
        let network = Network::new(nodes, seed);
        let mut advertised = Vec::new();
        for (i, member) in cluster.members.iter().enumerate() {
            advertised.push(network.listen(None, i, member.peer).await?);
        }
        cluster.launch(&advertised)?;
        let endpoints = cluster.endpoints();
        let metrics = cluster.members.iter().map(|m| m.client).collect();
        Ok(Self {
            name: "etcd".into(),
            consistency: Consistency::Linearizable,
            costs: scrape::ETCD,
            backend: Backend::Etcd(cluster),
            network,
            endpoints,
            metrics,
        })
    }

    /// A cluster already running at `endpoints` (metrics at `metrics`, if known; whether they
    /// are Conclave's or etcd's is found at the first scrape).
    pub fn external(
        name: &str,
        consistency: Consistency,
        endpoints: Vec<String>,
        metrics: Vec<SocketAddr>,
    ) -> Self {
        Self {
            name: name.into(),
            consistency,
            costs: scrape::CONCLAVE,
            network: Network::new(endpoints.len(), 0),
            backend: Backend::External,
            endpoints,
            metrics,
        }
    }

    pub fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.metrics.clone()
    }

    /// Whether the lab controls the processes (and so can inject faults).
    pub fn controllable(&self) -> bool {
        !matches!(self.backend, Backend::External)
    }

    pub fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Conclave(c) => c.kill(node as u64 + 1),
            Backend::Etcd(e) => e.kill(node),
            Backend::External => bail!("the lab did not start {}; it cannot kill it", self.name),
        }
    }

    pub fn restart(&mut self, node: usize) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Conclave(c) => c.restart(node as u64 + 1),
            Backend::Etcd(e) => e.restart(node),
            Backend::External => bail!("the lab did not start {}", self.name),
        }
    }

    pub fn is_running(&mut self, node: usize) -> bool {
        match &mut self.backend {
            Backend::Conclave(c) => c.nodes.get_mut(node).is_some_and(|n| n.is_running()),
            Backend::Etcd(e) => e.is_running(node),
            Backend::External => true,
        }
    }

    pub fn pause(&mut self, node: usize) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Conclave(c) => c.pause(node as u64 + 1),
            Backend::Etcd(e) => e.pause(node),
            Backend::External => bail!("the lab did not start {}", self.name),
        }
    }

    /// SIGTERM: the node stops by itself; poll [`Target::is_running`] for when it has.
    pub fn terminate(&mut self, node: usize) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Conclave(c) => c.terminate(node as u64 + 1),
            Backend::Etcd(e) => e.terminate(node),
            Backend::External => bail!("the lab did not start {}", self.name),
        }
    }

    pub fn resume(&mut self, node: usize) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Conclave(c) => c.resume(node as u64 + 1),
            Backend::Etcd(e) => e.resume(node),
            Backend::External => bail!("the lab did not start {}", self.name),
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after `grace`) and the proxy.
    pub fn stop(&mut self, grace: Duration) {
        match &mut self.backend {
            Backend::Conclave(c) => {
                let _ = c.stop_all(grace);
            }
            Backend::Etcd(e) => e.stop_all(grace),
            Backend::External => {}
        }
        self.network.shutdown();
    }

    /// The last lines of every node's log, for error messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for i in 0..self.nodes() {
            let tail = match &self.backend {
                Backend::Conclave(c) => c.log_tail(i as u64 + 1, lines),
                Backend::Etcd(e) => e.log_tail(i, lines),
                Backend::External => continue,
            };
            out.push_str(&format!("--- {} node {} ---\n{tail}\n", self.name, i + 1));
        }
        out
    }

    /// After the cluster is up: tells the proxy which etcd member id is which node.
    pub async fn learn_member_ids(&self) {
        if !matches!(self.backend, Backend::Etcd(_)) {
            return;
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if let Some((member, _)) = status(endpoint).await {
                self.network.register_sender(&format!("{member:x}"), i);
            }
        }
    }
}

/// `(member_id, leader)` as one endpoint reports them, within half a second.
pub async fn status(endpoint: &str) -> Option<(u64, u64)> {
    let ask = async {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .ok()?
            .connect_timeout(Duration::from_millis(300))
            .connect()
            .await
            .ok()?;
        let response =
            MaintenanceClient::new(channel).status(StatusRequest {}).await.ok()?.into_inner();
        Some((response.header.map(|h| h.member_id).unwrap_or_default(), response.leader))
    };
    tokio::time::timeout(Duration::from_millis(500), ask).await.ok().flatten()
}

/// The index of the endpoint that reports itself leader, if any does.
pub async fn find_leader(endpoints: &[String]) -> Option<usize> {
    let answers =
        futures_join_all(endpoints.iter().cloned().map(|e| async move { status(&e).await })).await;
    answers
        .iter()
        .position(|a| matches!(a, Some((member, leader)) if *leader != 0 && member == leader))
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("status task panicked"));
    }
    out
}

/// Waits until a put through some endpoint succeeds.
pub async fn wait_ready(endpoints: &[String], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for endpoint in endpoints {
            let put = crate::client::put(endpoint, "conclave-lab/ready", "1");
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), put).await {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!("no write succeeded within {timeout:?}"))
                .context("the target did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
