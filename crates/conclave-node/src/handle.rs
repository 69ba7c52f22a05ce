//! [`NodeHandle`]: the `Consensus` face of a node thread, and [`spawn`], which starts one.

use crate::driver::Driver;
use crate::metrics::NodeMetrics;
use crate::transport::{Inbound, Transport};
use crate::waiters::{ProposalReply, ReadReply, Waiters};
use crate::{NodeConfig, NodeConfigError};
use async_trait::async_trait;
use bytes::Bytes;
use conclave_core::{
    Consensus, ConsensusError, Guarantees, NodeId, Protocol, ReadConsistency, RequestId, Result,
    StateMachine, Status,
};
use conclave_storage::LogStore;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a handle asks of the node thread.
#[derive(Debug)]
pub(crate) enum Request {
    Propose {
        id: RequestId,
        command: Bytes,
        reply: ProposalReply,
    },
    Read {
        id: RequestId,
        reply: ReadReply,
    },
    /// Start handing leadership to `to`; the reply says whether the hand-over began.
    Transfer {
        to: NodeId,
        reply: oneshot::Sender<Result<()>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// State the node thread publishes for handles to read without a round trip.
#[derive(Debug)]
pub(crate) struct Shared {
    pub status: Mutex<Status>,
    pub applied: AtomicU64,
    pub closed: AtomicBool,
}

/// A running node. Cheap to share behind an `Arc`; implements [`Consensus`].
#[derive(Debug)]
pub struct NodeHandle {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    metrics: Arc<NodeMetrics>,
    guarantees: Guarantees,
    protocol: &'static str,
    next_request: AtomicU64,
    config: NodeConfig,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Turns true when the node thread has ended, however it ended.
    ended: tokio::sync::watch::Receiver<bool>,
}

/// Tells the handle's watchers that the node thread ended, when dropped: on return and on a
/// panic's unwinding alike.
struct EndSignal(tokio::sync::watch::Sender<bool>);

impl Drop for EndSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The single-threaded tokio runtime a node thread runs on.
///
/// Tasks spawned on its [`handle`](Self::handle) run on the node thread itself, between the
/// driver's batches. A server spawns its peer links and its client API there: a message the
/// driver sends is written to its socket by the same thread, and a message or request that
/// arrives wakes the node thread straight from the socket, instead of each crossing to another
/// thread first. On a loaded machine every such crossing is a wake-up of a sleeping thread; see
/// ARCHITECTURE.md. Work that takes long (password hashing, snapshot files) belongs on
/// `spawn_blocking`, which this runtime has, not on its tasks.
#[derive(Debug)]
pub struct NodeRuntime {
    runtime: tokio::runtime::Runtime,
}

impl NodeRuntime {
    pub fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { runtime })
    }

    /// Where to spawn tasks that should share the node thread.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }
}

/// Starts a node thread on `runtime` (whose tasks, spawned before or after, share the thread)
/// that runs `protocol` with `store`, applying to `state_machine` (already restored from the
/// recovered snapshot, if any) and talking to peers through `transport`.
pub fn spawn<P, L, S>(
    runtime: NodeRuntime,
    config: NodeConfig,
    protocol: P,
    store: L,
    state_machine: Arc<RwLock<S>>,
    transport: Arc<dyn Transport>,
    inbox: mpsc::Receiver<Inbound>,
) -> std::result::Result<NodeHandle, NodeConfigError>
where
    P: Protocol,
    L: LogStore,
    S: StateMachine,
{
    config.validate()?;
    let name = protocol.name();
    let guarantees = protocol.guarantees();
    let applied = state_machine.read().expect("state machine lock poisoned").applied_index();
    let mut status = protocol.status();
    status.applied_index = applied;
    let membership = conclave_core::Membership::new(status.members.iter().copied());
    let shared = Arc::new(Shared {
        status: Mutex::new(status),
        applied: AtomicU64::new(applied),
        closed: AtomicBool::new(false),
    });
    let metrics = Arc::new(NodeMetrics::new(name, guarantees.has_leader));
    let (requests_tx, requests_rx) = mpsc::channel(config.max_pending_requests);
    let driver = Driver {
        config: config.clone(),
        protocol,
        store,
        state_machine,
        transport,
        inbox,
        requests: requests_rx,
        shared: shared.clone(),
        metrics: metrics.clone(),
        waiters: Waiters::default(),
        applied,
        last_snapshot_index: applied,
        last_snapshot_bytes: 0,
        applied_bytes_since_snapshot: 0,
        last_term_applied: 0,
        last_leader: None,
        last_role: conclave_core::Role::Follower,
        membership,
        snapshotting: None,
        snapshot_retry_at: None,
        empty_readies: 0,
    };
    let (ended_tx, ended) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name(format!("conclave-node-{}", config.id))
        .spawn(move || {
            let _end = EndSignal(ended_tx);
            runtime.runtime.block_on(driver.run());
            // The tasks spawned on the runtime (peer links, the client API) stop with it here.
            drop(runtime);
        })
        .expect("cannot spawn the node thread");
    // Request ids must not repeat across restarts: entries proposed by an earlier incarnation
    // may still be applied after this one starts, and must not answer its callers.
    let first_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        .max(1);
    Ok(NodeHandle {
        requests: requests_tx,
        shared,
        metrics,
        guarantees,
        protocol: name,
        next_request: AtomicU64::new(first_id),
        config,
        thread: Mutex::new(Some(thread)),
        ended,
    })
}

impl NodeHandle {
    fn next_id(&self) -> RequestId {
        RequestId(self.next_request.fetch_add(1, Ordering::Relaxed))
    }

    fn timeout(&self) -> Duration {
        // The node thread fails requests at the deadline; this outer bound only covers a thread
        // that stopped answering altogether.
        Duration::from_millis(self.config.request_timeout_ms + 1_000)
    }

    async fn submit(&self, request: Request) -> Result<()> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(ConsensusError::ShuttingDown);
        }
        self.requests.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => ConsensusError::Unavailable(format!(
                "too many pending requests (limit {})",
                self.config.max_pending_requests
            )),
            mpsc::error::TrySendError::Closed(_) => ConsensusError::ShuttingDown,
        })
    }

    /// The protocol this node runs.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// Completes once the node thread has ended: after [`Consensus::shutdown`], or on its own
    /// when storage failed or the thread panicked. The tasks on its [`NodeRuntime`] (a
    /// server's peer links and client API) have stopped by then.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }
}

#[async_trait]
impl Consensus for NodeHandle {
    async fn propose(&self, command: Bytes) -> Result<Bytes> {
        if command.len() > self.config.max_proposal_bytes {
            self.metrics.rejected.increment(1);
            return Err(ConsensusError::TooLarge {
                size: command.len(),
                limit: self.config.max_proposal_bytes,
            });
        }
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        self.submit(Request::Propose { id: self.next_id(), command, reply }).await?;
        let result = match tokio::time::timeout(self.timeout(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConsensusError::ShuttingDown),
            Err(_) => Err(ConsensusError::Timeout(self.config.request_timeout_ms)),
        };
        match &result {
            Ok(_) => {
                self.metrics.committed.increment(1);
                self.metrics.proposal_duration.record(started.elapsed().as_secs_f64());
            }
            Err(error) if error.is_retryable() && !matches!(error, ConsensusError::Timeout(_)) => {}
            Err(_) => self.metrics.failed.increment(1),
        }
        result
    }

    async fn read_barrier(&self, consistency: ReadConsistency) -> Result<u64> {
        let started = Instant::now();
        if consistency == ReadConsistency::Local {
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(ConsensusError::ShuttingDown);
            }
            self.metrics.read_local.record(started.elapsed().as_secs_f64());
            return Ok(self.shared.applied.load(Ordering::Acquire));
        }
        if !self.guarantees.linearizable_reads {
            return Err(ConsensusError::Unsupported {
                protocol: self.protocol,
                what: "linearizable reads".into(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Request::Read { id: self.next_id(), reply }).await?;
        let result = match tokio::time::timeout(self.timeout(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConsensusError::ShuttingDown),
            Err(_) => Err(ConsensusError::Timeout(self.config.request_timeout_ms)),
        };
        if result.is_ok() {
            self.metrics.read_linearizable.record(started.elapsed().as_secs_f64());
        }
        result
    }

    fn status(&self) -> Status {
        let mut status = self.shared.status.lock().expect("status lock poisoned").clone();
        status.applied_index = self.shared.applied.load(Ordering::Acquire);
        status
    }

    fn guarantees(&self) -> Guarantees {
        self.guarantees
    }

    async fn transfer_leadership(&self, to: NodeId) -> Result<()> {
        let (reply, started) = oneshot::channel();
        self.submit(Request::Transfer { to, reply }).await?;
        started.await.map_err(|_| ConsensusError::ShuttingDown)??;
        // The new leader's first append or heartbeat tells this replica; a transfer that does
        // not finish within an election timeout is abandoned by the protocol.
        let deadline = Instant::now() + self.timeout();
        loop {
            if self.status().leader == Some(to) {
                return Ok(());
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(ConsensusError::ShuttingDown);
            }
            if Instant::now() >= deadline {
                return Err(ConsensusError::Timeout(self.config.request_timeout_ms));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        let thread = self.thread.lock().expect("thread lock poisoned").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
