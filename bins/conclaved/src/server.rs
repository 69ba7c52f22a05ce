//! Wires one node together — storage, state machine, protocol, transport, the etcd API, metrics —
//! and runs it until the shutdown signal, then stops it in order.

use crate::config::Config;
use crate::http;
use crate::protocols::{self, Parts};
use anyhow::Context;
use conclave_core::{Consensus, ConsensusError, NodeId, Role, StateMachine, metrics as names};
use conclave_kv::KvStore;
use conclave_node::NodeRuntime;
use conclave_storage::{FileStore, FileStoreOptions};
use conclave_transport::{Faults, PeerListener, PeerTransport, TransportConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The three listening sockets, bound before anything else starts so that a port clash is
/// reported at once. Tests bind port 0 and pass them in.
#[derive(Debug)]
pub struct Listeners {
    pub client: TcpListener,
    pub peer: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let bind = |name: &'static str, addr| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {name} = {addr}"))
        };
        Ok(Self {
            client: bind("client_listen", config.client_listen).await?,
            peer: bind("peer_listen", config.peer_listen).await?,
            metrics: bind("metrics_listen", config.metrics_listen).await?,
        })
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

/// Binds the configured addresses and runs until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config).await?;
    run_with(config, listeners, shutdown).await
}

fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::WAL_FSYNC_DURATION_SECONDS.into()),
            &names::FSYNC_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &names::LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("cannot install the metrics recorder")?;
    conclave_node::metrics::describe();
    conclave_transport::describe_metrics();
    Ok(handle)
}

/// Runs one node on already-bound listeners.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics_handle = install_recorder()?;
    let id = config.node_id();
    tracing::info!(
        node = %id, protocol = %config.protocol, client = %listeners.client.local_addr()?,
        peer = %listeners.peer.local_addr()?, metrics = %listeners.metrics.local_addr()?,
        data = %config.data_dir.display(), "starting"
    );
    // Checked at config load already; read again here so that what runs is what is on disk now.
    let tls = config.tls.load(id).map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
    // One process-wide rustls provider, the one tonic's `tls-ring` uses. Installing it fails
    // only when one is installed already (a test running several nodes), which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exposed = crate::tls::plaintext_exposed(&[
        ("client_listen", config.client_listen, tls.client.is_some()),
        ("peer_listen", config.peer_listen, tls.peer.is_some()),
    ]);
    if !exposed.is_empty() {
        tracing::warn!(
            listeners = %exposed.join(", "),
            "insecure = true: serving plaintext on a non-loopback address; anyone who can reach it can read and change the data (docs/security.md)"
        );
    }
    tracing::info!(
        client_tls = tls.client.is_some(),
        client_cert_auth = tls.client_cert_auth,
        peer_mtls = tls.peer.is_some(),
        "tls"
    );

    // Storage first: a corrupt log stops the node before it talks to anyone.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let (store, recovered) = FileStore::open(&config.data_dir, FileStoreOptions::default())
        .with_context(|| format!("cannot recover the log in {}", config.data_dir.display()))?;
    let mut kv = KvStore::new();
    if let Some(snapshot) = &recovered.snapshot {
        kv.restore(&snapshot.meta, &snapshot.data).map_err(|e| {
            anyhow::anyhow!("cannot restore the snapshot at index {}: {e}", snapshot.meta.index)
        })?;
    }
    tracing::info!(
        snapshot_index = recovered.snapshot.as_ref().map(|s| s.meta.index).unwrap_or(0),
        entries = recovered.entries.len(),
        "recovered"
    );
    let state_machine = Arc::new(RwLock::new(kv));

    // Transport. The peer links run on the node thread's own runtime (see `NodeRuntime`), as
    // does the client API below.
    let runtime = NodeRuntime::new().context("cannot build the node thread's runtime")?;
    let entered = runtime.handle().enter();
    let transport_config = TransportConfig { tls: tls.peer.clone(), ..TransportConfig::default() };
    let peers: BTreeMap<NodeId, String> =
        config.members.iter().map(|m| (NodeId(m.id), m.peer.to_string())).collect();
    let transport = PeerTransport::start(
        id,
        &peers,
        &transport_config,
        Faults::default(),
        config.protocol.as_str(),
    );
    drop(entered);
    let node_tasks = runtime.handle().clone();
    let (inbox_tx, inbox) = mpsc::channel(65_536);

    let node = Arc::new(protocols::start(
        &config,
        Parts {
            store,
            recovered,
            state_machine: state_machine.clone(),
            transport: Arc::new(transport),
            inbox,
            runtime,
        },
    )?);
    let consensus: Arc<dyn Consensus> = node.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let peer_stopping = stop_rx.clone();
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    // Peer links.
    let members: BTreeSet<NodeId> = peers.keys().copied().collect();
    let peer_listener =
        PeerListener::new(id, members, inbox_tx, &transport_config, config.protocol.as_str());
    let peer_server = node_tasks.spawn(peer_listener.serve(listeners.peer, peer_stopping));

    // Client API, on the node thread too: a request reaches the node, and its answer the
    // connection, without waking another thread (ARCHITECTURE.md, "The node thread").
    let etcd = etcd_context(&config, consensus.clone(), state_machine.clone())?;
    let client_server = node_tasks.spawn(conclave_etcd::serve_with_tls(
        etcd,
        listeners.client,
        tls.client.clone(),
        stopped(),
    ));

    // Metrics and health.
    let endpoints = http::Endpoints { metrics: metrics_handle, consensus: consensus.clone() };
    let http_server = tokio::spawn(http::serve(listeners.metrics, endpoints, stopped()));

    tokio::select! {
        () = shutdown => {}
        () = node.ended() => {
            // Storage failed or the node thread panicked (logged above). The client API ran on
            // that thread and is gone with it: exit, so that a supervisor restarts the member
            // from its durable state instead of leaving a port that accepts and never answers.
            let _ = stop_tx.send(true);
            let _ = http_server.await;
            anyhow::bail!("the node stopped on its own; see the errors above");
        }
    }
    tracing::info!("shutdown requested: draining clients, then stopping the node");
    hand_over_leadership(consensus.as_ref()).await;
    let _ = stop_tx.send(true);
    // Clients first, so that no new request arrives; then the node fails what is still in
    // flight and syncs its log; then the peer and metrics servers.
    if let Ok(Err(error)) = client_server.await {
        tracing::warn!(%error, "client server ended with an error");
    }
    node.shutdown().await;
    let _ = peer_server.await;
    let _ = http_server.await;
    tracing::info!("stopped");
    Ok(())
}

/// How long a stopping leader waits for one voter to take over before trying the next.
const HAND_OVER_WAIT: Duration = Duration::from_secs(1);
/// How long a stopping leader tries to hand over in all, whatever the cluster's size.
const HAND_OVER_BUDGET: Duration = Duration::from_secs(2);

/// A leader that stops hands its leadership to another voter first, as etcd's does, so that the
/// cluster goes on at once instead of waiting out an election timeout. Best effort and bounded:
/// a voter that does not take over within [`HAND_OVER_WAIT`] (it is down, say) is passed over,
/// the whole attempt ends after [`HAND_OVER_BUDGET`] (a cluster stopping as a whole), and
/// protocols that cannot hand over stop as they are.
async fn hand_over_leadership(consensus: &dyn Consensus) {
    let status = consensus.status();
    if status.role != Role::Leader || !consensus.guarantees().has_leader {
        return;
    }
    let deadline = tokio::time::Instant::now() + HAND_OVER_BUDGET;
    for to in status.members.into_iter().filter(|&m| m != status.id) {
        let wait =
            HAND_OVER_WAIT.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        if wait.is_zero() {
            tracing::warn!("leadership not handed over; stopping as the leader");
            return;
        }
        match tokio::time::timeout(wait, consensus.transfer_leadership(to)).await {
            Ok(Ok(())) => {
                tracing::info!(%to, "handed the leadership over before stopping");
                return;
            }
            // Another leader already (the last try's voter took over after its wait ended), or
            // a protocol that cannot hand over.
            Ok(Err(ConsensusError::NotLeader { .. } | ConsensusError::Unsupported { .. })) => {
                return;
            }
            Ok(Err(error)) => tracing::warn!(%to, %error, "cannot hand the leadership over"),
            Err(_) => tracing::warn!(%to, "leadership not taken over in time; trying another"),
        }
    }
}

/// The etcd API's view of this node: who the members are and the request limits.
fn etcd_context(
    config: &Config,
    consensus: Arc<dyn Consensus>,
    store: Arc<RwLock<KvStore>>,
) -> anyhow::Result<conclave_etcd::EtcdContext> {
    let peer_scheme = if config.tls.peer_tls() { "https" } else { "http" };
    let members = config
        .members
        .iter()
        .map(|m| conclave_etcd::MemberInfo {
            id: m.id,
            name: format!("node-{}", m.id),
            peer_urls: vec![format!("{peer_scheme}://{}", m.peer)],
            // Without a scheme: etcdctl 3.4 dials each member's URL for `endpoint status
            // --cluster` and sends it whole as the HTTP/2 :authority, which our HTTP/2 stack
            // rightly refuses when it contains "http://". Host and port alone work everywhere
            // etcdctl uses them, over TLS too: a schemeless endpoint takes the client's own TLS
            // settings (--cacert/--cert/--key). See docs/compatibility.md.
            client_urls: vec![m.client.to_string()],
        })
        .collect();
    let cluster = conclave_etcd::ClusterInfo {
        cluster_id: config.cluster_id(),
        member_id: config.node_id,
        members,
    };
    let limits = config.limits.to_etcd(config.server.max_request_bytes);
    let options = conclave_etcd::Options {
        downgrade_unsupported: config.server.downgrade_unsupported,
        auth_token_ttl_secs: config.server.auth_token_ttl_secs,
        auto_compaction: config.server.auto_compaction().map_err(|e| anyhow::anyhow!(e))?,
        ..Default::default()
    };
    conclave_etcd::EtcdContext::new(consensus, store, cluster, limits, options)
        .map_err(|e| anyhow::anyhow!("etcd API settings: {e}"))
}
