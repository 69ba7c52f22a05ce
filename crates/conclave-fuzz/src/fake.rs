//! A consensus that is no consensus: proposals apply straight to the shared store.
//!
//! The etcd services only need an `Arc<dyn Consensus>` that orders writes and answers read
//! barriers. This one applies each proposal to the [`KvStore`] under its lock at once and
//! plays a leader, so the etcd fuzz target and the limit tests exercise exactly what the API
//! layer does with a store — no replication, no timing.

use async_trait::async_trait;
use bytes::Bytes;
use conclave_core::{
    Consensus, ConsensusError, Guarantees, NodeId, ReadConsistency, Role, StateMachine, Status,
};
use conclave_etcd::{ClusterInfo, EtcdContext, Limits, MemberInfo, Options};
use conclave_kv::KvStore;
use std::sync::{Arc, PoisonError, RwLock};

/// The term every header reports.
pub const TERM: u64 = 3;
/// The cluster id every header reports.
pub const CLUSTER_ID: u64 = 0xc0c0;

/// A single-member "cluster" that leads and applies proposals as they come.
#[derive(Debug)]
pub struct FakeConsensus {
    pub store: Arc<RwLock<KvStore>>,
    pub id: NodeId,
}

impl FakeConsensus {
    pub fn new(store: Arc<RwLock<KvStore>>) -> Self {
        Self { store, id: NodeId(1) }
    }
}

#[async_trait]
impl Consensus for FakeConsensus {
    async fn propose(&self, command: Bytes) -> conclave_core::Result<Bytes> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let index = store.applied_index() + 1;
        Ok(store.apply(index, Some(&command)))
    }

    async fn read_barrier(&self, _consistency: ReadConsistency) -> conclave_core::Result<u64> {
        Ok(self.store.read().unwrap_or_else(PoisonError::into_inner).applied_index())
    }

    fn status(&self) -> Status {
        let applied = self.store.read().unwrap_or_else(PoisonError::into_inner).applied_index();
        Status {
            id: self.id,
            protocol: "fake",
            role: Role::Leader,
            leader: Some(self.id),
            term: TERM,
            commit_index: applied,
            applied_index: applied,
            members: vec![self.id],
        }
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            linearizable_writes: true,
            linearizable_reads: true,
            atomic_compare_and_swap: true,
            has_leader: true,
            fault_tolerance: Some(0),
        }
    }

    async fn shutdown(&self) {}
}

/// An etcd API context over a fresh store and a [`FakeConsensus`], with `limits`.
/// `client_url` is where the member says it serves (lease keep-alives are forwarded there).
pub fn etcd_context(limits: Limits, client_url: &str) -> Result<EtcdContext, ConsensusError> {
    let store = Arc::new(RwLock::new(KvStore::new()));
    let consensus = Arc::new(FakeConsensus::new(store.clone()));
    let cluster = ClusterInfo {
        cluster_id: CLUSTER_ID,
        member_id: 1,
        members: vec![MemberInfo {
            id: 1,
            name: "fake-1".into(),
            peer_urls: vec!["http://127.0.0.1:1".into()],
            client_urls: vec![client_url.to_string()],
        }],
    };
    let options =
        Options { min_lease_ttl_secs: 1, lease_check_interval_ms: 100, ..Options::default() };
    EtcdContext::new(consensus, store, cluster, limits, options)
        .map_err(|e| ConsensusError::Fatal(format!("etcd api settings: {e}")))
}
