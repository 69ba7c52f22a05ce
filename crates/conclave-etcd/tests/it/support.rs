//! A fake in-process consensus and a server harness for the API tests.
//!
//! `FakeConsensus` applies each proposal straight to the shared `KvStore` under its lock and
//! answers read barriers at once, so the tests see exactly what the API layer does with a
//! store: no replication, no timing.

use async_trait::async_trait;
use bytes::Bytes;
use conclave_core::{
    Consensus, ConsensusError, Guarantees, NodeId, ReadConsistency, Role, StateMachine, Status,
};
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::lease_client::LeaseClient;
use conclave_etcd::pb::etcdserverpb::watch_client::WatchClient;
use conclave_etcd::pb::etcdserverpb::{
    cluster_client::ClusterClient, maintenance_client::MaintenanceClient,
};
use conclave_etcd::{ClusterInfo, EtcdContext, Limits, MemberInfo, Options};
use conclave_kv::KvStore;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const CLUSTER_ID: u64 = 0xc1;
pub const TERM: u64 = 7;

/// What Raft promises, for a fake that plays a leader.
pub fn raft_like() -> Guarantees {
    Guarantees {
        linearizable_writes: true,
        linearizable_reads: true,
        atomic_compare_and_swap: true,
        has_leader: true,
        fault_tolerance: Some(1),
    }
}

/// What gossip promises: no linearizable reads, no atomic compare-and-swap, no leader.
pub fn gossip_like() -> Guarantees {
    Guarantees {
        linearizable_writes: false,
        linearizable_reads: false,
        atomic_compare_and_swap: false,
        has_leader: false,
        fault_tolerance: None,
    }
}

pub struct FakeConsensus {
    pub store: Arc<RwLock<KvStore>>,
    pub id: u64,
    pub protocol: &'static str,
    pub guarantees: Guarantees,
    pub role: Mutex<Role>,
    pub leader: Mutex<Option<NodeId>>,
    pub members: Vec<NodeId>,
    /// Returned by the next proposal instead of applying it.
    pub fail_next: Mutex<Option<ConsensusError>>,
    /// Proposals seen, applied or not.
    pub proposals: Mutex<u64>,
}

impl FakeConsensus {
    pub fn new(
        store: Arc<RwLock<KvStore>>,
        id: u64,
        protocol: &'static str,
        guarantees: Guarantees,
    ) -> Self {
        Self {
            store,
            id,
            protocol,
            guarantees,
            role: Mutex::new(if guarantees.has_leader { Role::Leader } else { Role::Member }),
            leader: Mutex::new(guarantees.has_leader.then_some(NodeId(id))),
            members: vec![NodeId(id)],
            fail_next: Mutex::new(None),
            proposals: Mutex::new(0),
        }
    }
}

#[async_trait]
impl Consensus for FakeConsensus {
    async fn propose(&self, command: Bytes) -> conclave_core::Result<Bytes> {
        *self.proposals.lock().unwrap() += 1;
        if let Some(error) = self.fail_next.lock().unwrap().take() {
            return Err(error);
        }
        let mut store = self.store.write().unwrap();
        let index = store.applied_index() + 1;
        Ok(store.apply(index, Some(&command)))
    }

    async fn read_barrier(&self, consistency: ReadConsistency) -> conclave_core::Result<u64> {
        if consistency == ReadConsistency::Linearizable && !self.guarantees.linearizable_reads {
            return Err(ConsensusError::Unsupported {
                protocol: self.protocol,
                what: "linearizable reads".into(),
            });
        }
        Ok(self.store.read().unwrap().applied_index())
    }

    fn status(&self) -> Status {
        let applied = self.store.read().unwrap().applied_index();
        Status {
            id: NodeId(self.id),
            protocol: self.protocol,
            role: *self.role.lock().unwrap(),
            leader: *self.leader.lock().unwrap(),
            term: TERM,
            commit_index: applied,
            applied_index: applied,
            members: self.members.clone(),
        }
    }

    fn guarantees(&self) -> Guarantees {
        self.guarantees
    }

    async fn shutdown(&self) {}
}

pub fn member(id: u64, addr: SocketAddr) -> MemberInfo {
    MemberInfo {
        id,
        name: format!("node{id}"),
        peer_urls: vec![format!("http://127.0.0.1:{}", 20000 + id)],
        client_urls: vec![format!("http://{addr}")],
    }
}

/// A running etcd API server over a fake consensus, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub ctx: EtcdContext,
    pub consensus: Arc<FakeConsensus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Adjusts the fake before the server starts (role, leader, members).
pub type ConsensusSetup = Box<dyn FnOnce(&mut FakeConsensus)>;

pub struct Builder {
    pub protocol: &'static str,
    pub guarantees: Guarantees,
    pub limits: Limits,
    pub options: Options,
    pub store: Option<Arc<RwLock<KvStore>>>,
    pub id: u64,
    /// Other members, as (id, client address).
    pub peers: Vec<(u64, SocketAddr)>,
    pub consensus_setup: Option<ConsensusSetup>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            protocol: "fake",
            guarantees: raft_like(),
            limits: Limits::default(),
            options: Options {
                lease_check_interval_ms: 100,
                min_lease_ttl_secs: 1,
                ..Options::default()
            },
            store: None,
            id: 1,
            peers: Vec::new(),
            consensus_setup: None,
        }
    }
}

impl Builder {
    pub async fn start(self) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = self.store.unwrap_or_default();
        let mut consensus =
            FakeConsensus::new(store.clone(), self.id, self.protocol, self.guarantees);
        if let Some(setup) = self.consensus_setup {
            setup(&mut consensus);
        }
        let consensus = Arc::new(consensus);
        let mut members = vec![member(self.id, addr)];
        members.extend(self.peers.iter().map(|&(id, addr)| member(id, addr)));
        let cluster = ClusterInfo { cluster_id: CLUSTER_ID, member_id: self.id, members };
        let ctx =
            EtcdContext::new(consensus.clone(), store, cluster, self.limits, self.options).unwrap();
        let (stop, stopped) = oneshot::channel();
        let serve_ctx = ctx.clone();
        let task = tokio::spawn(async move {
            conclave_etcd::serve(serve_ctx, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer { addr, ctx, consensus, stop: Some(stop), task: Some(task) }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Builder::default().start().await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.unwrap()
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await)
    }

    pub async fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel().await)
    }

    pub async fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel().await)
    }

    pub async fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel().await)
    }

    pub async fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel().await)
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
