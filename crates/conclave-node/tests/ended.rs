//! A node's `ended` signal: it fires after a shutdown, and on its own when storage fails — the
//! moment a server that runs its client API on the node thread must stop too.

use bytes::Bytes;
use conclave_core::{
    Consensus, ConsensusError, Membership, NodeId, Snapshot, SnapshotMeta, StateMachine,
};
use conclave_node::{ChannelNetwork, NodeConfig, NodeHandle, NodeRuntime};
use conclave_raft::{Raft, RaftConfig};
use conclave_storage::{LogStore, MemStore, StorageError, WriteBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Applies nothing but counts: enough for the driver.
#[derive(Default)]
struct Counter {
    applied: u64,
}

impl StateMachine for Counter {
    fn apply(&mut self, index: u64, _command: Option<&[u8]>) -> Bytes {
        self.applied = index;
        Bytes::new()
    }
    fn applied_index(&self) -> u64 {
        self.applied
    }
    fn snapshot(&self) -> Bytes {
        Bytes::copy_from_slice(&self.applied.to_le_bytes())
    }
    fn restore(&mut self, meta: &SnapshotMeta, _data: &[u8]) -> Result<(), String> {
        self.applied = meta.index;
        Ok(())
    }
}

/// A memory store whose `fdatasync` fails once `broken` is set, as a failing disk's would.
struct Breakable {
    inner: MemStore,
    broken: Arc<AtomicBool>,
}

impl LogStore for Breakable {
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        self.inner.write(batch)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        if self.broken.load(Ordering::SeqCst) {
            let source = std::io::Error::other("the disk went away");
            return Err(StorageError::Io { op: "fdatasync", path: "wal/1.log".into(), source });
        }
        self.inner.sync()
    }
    fn last_index(&self) -> u64 {
        self.inner.last_index()
    }
    fn load_snapshot(&self) -> Result<Option<Snapshot>, StorageError> {
        self.inner.load_snapshot()
    }
}

/// A one-member Raft node on a memory store, and the switch that breaks its disk.
fn single_node() -> (NodeHandle, Arc<AtomicBool>) {
    let id = NodeId(1);
    let raft =
        Raft::new(id, Membership::new([id]), RaftConfig::default(), Default::default(), 7).unwrap();
    let broken = Arc::new(AtomicBool::new(false));
    let store = Breakable { inner: MemStore::new(), broken: broken.clone() };
    let (transport, inbox) = ChannelNetwork::new().join(id);
    let node = conclave_node::spawn(
        NodeRuntime::new().unwrap(),
        NodeConfig::new(id),
        raft,
        store,
        Arc::new(RwLock::new(Counter::default())),
        transport,
        inbox,
    )
    .unwrap();
    (node, broken)
}

/// Proposes until the single member has elected itself and answers.
async fn first_write(node: &NodeHandle) {
    for _ in 0..200 {
        if node.propose(Bytes::from_static(b"x")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the single member never accepted a write");
}

#[tokio::test]
async fn ended_fires_after_a_shutdown() {
    let (node, _) = single_node();
    first_write(&node).await;
    let ended = tokio::time::timeout(Duration::from_millis(200), node.ended()).await;
    assert!(ended.is_err(), "a running node has not ended");
    node.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), node.ended()).await.expect("ended after shutdown");
}

#[tokio::test]
async fn a_storage_failure_ends_the_node_on_its_own() {
    let (node, broken) = single_node();
    first_write(&node).await;
    broken.store(true, Ordering::SeqCst);
    let error = node.propose(Bytes::from_static(b"y")).await.unwrap_err();
    assert!(
        matches!(&error, ConsensusError::Fatal(message) if message.contains("the disk went away")),
        "{error:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), node.ended())
        .await
        .expect("the node thread ends after its storage failed");
    // Later callers hear that it is gone instead of waiting.
    let error = node.propose(Bytes::from_static(b"z")).await.unwrap_err();
    assert!(matches!(error, ConsensusError::ShuttingDown), "{error:?}");
}
