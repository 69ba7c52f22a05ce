//! [`EtcdContext`]: what every service shares — the consensus, the store, who this member is,
//! the limits — and the two paths every request takes: `EtcdContext::propose` for writes and
//! `EtcdContext::read_barrier` for reads.

use conclave_core::{Consensus, ReadConsistency, Role};
use conclave_kv::{Command, KvStore, Output};
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use tokio::sync::watch;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::auth_password::Hasher;
use crate::auth_token::TokenStore;
use crate::config::{ConfigError, Limits, Options};
use crate::error::{
    NO_LEADER, NO_SPACE, REQUEST_TOO_LARGE, consensus_status, kv_status, no_linearizable_reads,
};
use crate::lease_keeper::LeaseKeeper;
use crate::metrics;
use crate::pb::etcdserverpb::ResponseHeader;
use crate::quota::{self, SpaceAlarm};
use crate::watch_hub::WatchHub;

/// One member as `Cluster/MemberList` lists it. Member ids are the consensus's `NodeId`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Where the member serves this API, e.g. `http://127.0.0.1:2379`. Followers forward lease
    /// keep-alives to the lease holder's first client URL.
    pub client_urls: Vec<String>,
}

/// Who this member is and which members the cluster was configured with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: u64,
    /// This member's id; equal to the consensus's `status().id`.
    pub member_id: u64,
    pub members: Vec<MemberInfo>,
}

impl ClusterInfo {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.members.iter().any(|m| m.id == self.member_id) {
            return Err(ConfigError {
                key: "cluster.member_id",
                value: self.member_id.to_string(),
                expected: "the id of one of cluster.members",
            });
        }
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConfigError {
                key: "cluster.members",
                value: pair[0].to_string(),
                expected: "distinct member ids",
            });
        }
        Ok(())
    }

    pub fn member(&self, id: u64) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Everything the etcd services share. Cloning is cheap.
#[derive(Clone)]
pub struct EtcdContext {
    pub consensus: Arc<dyn Consensus>,
    pub store: Arc<RwLock<KvStore>>,
    pub cluster: ClusterInfo,
    pub limits: Limits,
    pub options: Options,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) leases: Arc<LeaseKeeper>,
    /// Auth tokens this member issued, and the password hasher (see `auth_check.rs`).
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) hasher: Hasher,
    /// Raised while writes are refused for space.
    pub(crate) space_alarm: Arc<SpaceAlarm>,
    /// The protocol's name, for error texts and the `protocol` metric label.
    pub(crate) protocol: &'static str,
    /// Set once the server stops: long-lived streams end when it is.
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for EtcdContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdContext")
            .field("protocol", &self.protocol)
            .field("cluster", &self.cluster)
            .field("limits", &self.limits)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EtcdContext {
    /// Validates the configuration and installs the watch hub as the store's event listener
    /// (replacing any listener already set: the store has one).
    pub fn new(
        consensus: Arc<dyn Consensus>,
        store: Arc<RwLock<KvStore>>,
        cluster: ClusterInfo,
        limits: Limits,
        options: Options,
    ) -> Result<Self, ConfigError> {
        cluster.validate()?;
        limits.validate()?;
        options.validate()?;
        let protocol = consensus.status().protocol;
        let hub = Arc::new(WatchHub::new());
        store.write().unwrap_or_else(PoisonError::into_inner).set_event_listener(hub.listener());
        metrics::describe();
        let tokens = Arc::new(TokenStore::new(options.auth_token_ttl()));
        Ok(Self {
            consensus,
            store,
            cluster,
            limits,
            options,
            hub,
            leases: Arc::new(LeaseKeeper::new()),
            tokens,
            hasher: Hasher::default(),
            space_alarm: Arc::new(SpaceAlarm::default()),
            protocol,
            stop: Arc::new(watch::channel(false).0),
        })
    }

    /// Ends every open watch and keep-alive stream (with UNAVAILABLE, "server stopped"), so a
    /// graceful server shutdown is not held up by clients that never hang up. [`crate::serve`]
    /// calls it; a caller running [`crate::services`] in its own server calls it on shutdown.
    pub fn shutdown_streams(&self) {
        self.stop.send_replace(true);
    }

    /// Completes once [`Self::shutdown_streams`] was called.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            // An error means the sender is gone, which also means stopping.
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }

    /// The protocol's name, as in the `protocol` metric label.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// The store, for reading. A panic while applying poisons the lock; the state is then as
    /// the apply left it, and reads go on rather than take the API down with it.
    pub(crate) fn read_store(&self) -> RwLockReadGuard<'_, KvStore> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A response header at `revision`, with this member's ids and the protocol's epoch.
    pub(crate) fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster.cluster_id,
            member_id: self.cluster.member_id,
            revision,
            raft_term: self.consensus.status().term,
        })
    }

    /// Refuses a write that would take the held history past the space quota, and raises or
    /// clears this member's NOSPACE alarm accordingly (see `quota.rs`).
    fn check_space(&self, command: &Command) -> Result<(), Status> {
        let cost = quota::cost(command);
        if cost == 0 {
            return Ok(());
        }
        let held = self.read_store().held_bytes();
        let fits = quota::fits(held, cost, self.limits.quota_bytes);
        let short = !fits;
        if self.space_alarm.raised() != short {
            self.space_alarm.set(short);
            if short {
                tracing::warn!(
                    held,
                    cost,
                    quota = self.limits.quota_bytes,
                    "space quota reached: refusing writes until a compaction or delete makes room"
                );
            }
        }
        if fits {
            return Ok(());
        }
        metrics::limit_refused(self.protocol, "quota");
        Err(Status::resource_exhausted(NO_SPACE))
    }

    /// A header at the store's current revision, for answers that change nothing.
    pub(crate) fn current_header(&self) -> Option<ResponseHeader> {
        let revision = self.read_store().current_revision();
        self.header(revision)
    }

    /// Orders `command` through the consensus and returns the store's output for it.
    pub(crate) async fn propose(&self, command: &Command) -> Result<Output, Status> {
        self.propose_guarded(command, None).await
    }

    /// [`Self::propose`]; with `auth_revision`, the command applies only if the auth state is
    /// still at that revision (see `auth_check.rs`). The size limit is on the command itself:
    /// the guard's few bytes are the server's, not the client's.
    pub(crate) async fn propose_guarded(
        &self,
        command: &Command,
        auth_revision: Option<u64>,
    ) -> Result<Output, Status> {
        let mut bytes = command.encode();
        if bytes.len() > self.limits.max_request_bytes {
            return Err(Status::invalid_argument(REQUEST_TOO_LARGE));
        }
        self.check_space(command)?;
        if let Some(auth_revision) = auth_revision {
            bytes = Command::Guarded { auth_revision, command: bytes }.encode();
        }
        let reply = self.consensus.propose(bytes).await.map_err(|e| consensus_status(&e))?;
        match Output::decode(&reply) {
            Ok(Output::Error(error)) => Err(kv_status(&error)),
            Ok(output) => Ok(output),
            Err(error) => Err(kv_status(&error)),
        }
    }

    /// Waits until the local store may serve a read: at once for a serializable read, after the
    /// protocol's linearizable barrier otherwise. A protocol without linearizable reads refuses
    /// the read, or serves it locally when `downgrade_unsupported` is on.
    pub(crate) async fn read_barrier(&self, serializable: bool) -> Result<(), Status> {
        let consistency = if serializable || self.linearizable_reads_downgraded()? {
            ReadConsistency::Local
        } else {
            ReadConsistency::Linearizable
        };
        self.consensus.read_barrier(consistency).await.map_err(|e| consensus_status(&e))?;
        Ok(())
    }

    /// For a linearizable read: `Ok(false)` when the protocol offers one, `Ok(true)` when it
    /// does not but the read may be downgraded to a local one (counted), an error otherwise.
    fn linearizable_reads_downgraded(&self) -> Result<bool, Status> {
        if self.consensus.guarantees().linearizable_reads {
            return Ok(false);
        }
        if !self.options.downgrade_unsupported {
            return Err(no_linearizable_reads(self.protocol));
        }
        ::metrics::counter!(metrics::READS_DOWNGRADED_TOTAL, "protocol" => self.protocol)
            .increment(1);
        Ok(true)
    }

    /// etcd clients mark streams with `hasleader: true` metadata (clientv3's
    /// `WithRequireLeader`, which etcdctl's watch uses): such a stream is refused while a
    /// leader-based protocol knows no leader. Leaderless protocols always accept it.
    pub(crate) fn check_leader_required(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let required = metadata.get("hasleader").is_some_and(|v| v.as_bytes() == b"true");
        if required
            && self.consensus.guarantees().has_leader
            && self.consensus.status().leader.is_none()
        {
            return Err(Status::unavailable(NO_LEADER));
        }
        Ok(())
    }

    /// The member that counts leases down and revokes the expired ones: the leader, or, for a
    /// leaderless protocol (Totem, gossip), the lowest member id among the members this replica
    /// currently sees. `None` while no leader is known.
    pub(crate) fn lease_holder(&self) -> Option<u64> {
        let status = self.consensus.status();
        if self.consensus.guarantees().has_leader {
            status.leader.map(|id| id.0)
        } else {
            status.members.iter().min().map(|id| id.0)
        }
    }

    /// Whether this member is the [lease holder](Self::lease_holder) and able to propose.
    pub(crate) fn is_lease_holder(&self) -> bool {
        let status = self.consensus.status();
        if self.consensus.guarantees().has_leader {
            status.role == Role::Leader
        } else {
            status.role != Role::Recovering && status.members.iter().min() == Some(&status.id)
        }
    }
}
