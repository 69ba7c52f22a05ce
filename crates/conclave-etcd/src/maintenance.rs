//! The `Maintenance` service: member status, the alarm list (the space quota's NOSPACE), a
//! key-value hash for comparing replicas, snapshots for backups (`etcdctl snapshot save`), and
//! moving the leadership (`etcdctl move-leader`) where the protocol can hand it over.

use bytes::Bytes;
use conclave_core::{ConsensusError, NodeId, ReadConsistency, StateMachine};
use conclave_kv::RangeRequest;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth_check::Caller;
use crate::context::EtcdContext;
use crate::error::{
    BAD_LEADER_TRANSFEREE, LEADER_TRANSFER_TIMED_OUT, NOT_LEADER, consensus_status, kv_status,
};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::snapshot_file::{self, SnapshotHeader};

/// How much of a snapshot one `SnapshotResponse` carries (etcd sends 32 KiB too).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// Chunks queued ahead of a slow client.
const SNAPSHOT_CHUNKS_QUEUED: usize = 8;

/// How long a measured store size is reused: measuring encodes the whole store.
const DB_SIZE_MAX_AGE: Duration = Duration::from_secs(5);

/// The `etcdserverpb.Maintenance` service.
#[derive(Debug)]
pub struct MaintenanceService {
    ctx: EtcdContext,
    db_size: Mutex<Option<(Instant, i64)>>,
}

impl MaintenanceService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx, db_size: Mutex::new(None) }
    }

    /// The size of the store's snapshot encoding: what a new member would be sent, and the
    /// closest thing to etcd's database file size.
    fn db_size(&self) -> i64 {
        let mut cached = self.db_size.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, size)) = *cached
            && at.elapsed() < DB_SIZE_MAX_AGE
        {
            return size;
        }
        let size = i64::try_from(self.ctx.read_store().snapshot().len()).unwrap_or(i64::MAX);
        *cached = Some((Instant::now(), size));
        size
    }
}

impl MaintenanceService {
    /// The member `endpoint status` shows as leader: the protocol's leader; for a leaderless
    /// protocol that orders writes (Totem), the ring's representative — the lowest member id of
    /// the ring, which also holds the leases — so that exactly one member is marked, as etcd
    /// tools expect; none for gossip, which has no such member.
    fn reported_leader(&self, status: &conclave_core::Status) -> u64 {
        let guarantees = self.ctx.consensus.guarantees();
        if guarantees.has_leader {
            status.leader.map_or(0, |id| id.0)
        } else if guarantees.linearizable_writes {
            self.ctx.lease_holder().unwrap_or(0)
        } else {
            0
        }
    }
}

/// Encodes the store, and what a restore needs to know about it, as one snapshot file; returns
/// it with the revision it holds. Everything is read under one lock, so it is one consistent
/// state.
fn take_snapshot(ctx: &EtcdContext) -> Result<(Bytes, i64), Status> {
    let taken_at_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let store = ctx.read_store();
    let mut everything = RangeRequest::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
    everything.count_only = true;
    let keys = store.range(&everything).map_err(|e| kv_status(&e))?.count;
    let header = SnapshotHeader {
        revision: store.current_revision(),
        compact_revision: store.compact_revision(),
        applied_index: store.applied_index(),
        member_id: ctx.cluster.member_id,
        cluster_id: ctx.cluster.cluster_id,
        taken_at_unix_ms,
        keys: u64::try_from(keys).unwrap_or_default(),
        protocol: ctx.protocol().to_string(),
    };
    let body = store.snapshot();
    drop(store);
    Ok((snapshot_file::encode(&header, &body), header.revision))
}

/// Snapshots, hashes and defragmentation are for administrators once auth is on, as in etcd;
/// status and alarms are open to anyone.
fn root_only(_: &conclave_kv::KvStore, caller: &Caller) -> Result<(), Status> {
    caller.require_root()
}

/// FNV-1a, 32 bits: small, stable across builds and platforms, and enough to tell replicas
/// apart; it is not etcd's hash, so compare Conclave members only with each other.
fn fnv1a(hash: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

const FNV_OFFSET: u32 = 0x811c_9dc5;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        // The only alarm is this member's NOSPACE, raised and cleared by the space quota
        // (`quota.rs`); disarming clears it until the next refused write. Raising one by hand
        // is not offered.
        let request = request.into_inner();
        if request.action == AlarmAction::Activate as i32 {
            return Err(Status::unimplemented("etcdserver: alarms are raised by the server only"));
        }
        let alarms = if self.ctx.space_alarm.raised() {
            vec![AlarmMember {
                member_id: self.ctx.cluster.member_id,
                alarm: AlarmType::Nospace as i32,
            }]
        } else {
            Vec::new()
        };
        let ours = request.member_id == 0 || request.member_id == self.ctx.cluster.member_id;
        let nospace = [AlarmType::Nospace as i32, AlarmType::None as i32].contains(&request.alarm);
        let disarms_nospace = request.action == AlarmAction::Deactivate as i32 && ours && nospace;
        if disarms_nospace {
            self.ctx.space_alarm.set(false);
        }
        // etcd answers a disarm with the alarms it cleared, a get with the active ones.
        Ok(Response::new(AlarmResponse { header: self.ctx.current_header(), alarms }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = self.ctx.consensus.status();
        let db_size = self.db_size();
        let applied = self.ctx.read_store().applied_index();
        Ok(Response::new(StatusResponse {
            header: self.ctx.current_header(),
            version: self.ctx.options.version.clone(),
            db_size,
            leader: self.reported_leader(&status),
            raft_index: status.commit_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index.max(applied),
            // As etcd reports an active alarm (`endpoint status` prints it under ERRORS).
            errors: if self.ctx.space_alarm.raised() {
                vec![format!("memberID:{} alarm:NOSPACE ", self.ctx.cluster.member_id)]
            } else {
                Vec::new()
            },
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.ctx.authorize(request.metadata(), root_only)?;
        // The store lives in memory and compaction frees space at once: nothing to do.
        Ok(Response::new(DefragmentResponse { header: self.ctx.current_header() }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.authorize(request.metadata(), root_only)?;
        let hash = fnv1a(FNV_OFFSET, &self.ctx.read_store().snapshot());
        Ok(Response::new(HashResponse { header: self.ctx.current_header(), hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.ctx.authorize(request.metadata(), root_only)?;
        let revision = request.into_inner().revision;
        // Every live key with its revisions and value as of `revision`: equal on replicas that
        // applied the same writes, whatever else differs between them.
        let everything = RangeRequest::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
            .with_revision(revision);
        let (answer, compact_revision) = {
            let store = self.ctx.read_store();
            (store.range(&everything).map_err(|e| kv_status(&e))?, store.compact_revision())
        };
        let mut hash = FNV_OFFSET;
        for kv in &answer.kvs {
            hash = fnv1a(hash, &kv.key);
            hash = fnv1a(hash, &kv.create_revision.to_le_bytes());
            hash = fnv1a(hash, &kv.mod_revision.to_le_bytes());
            hash = fnv1a(hash, &kv.version.to_le_bytes());
            hash = fnv1a(hash, &kv.lease.to_le_bytes());
            hash = fnv1a(hash, &kv.value);
        }
        Ok(Response::new(HashKvResponse {
            header: self.ctx.header(answer.revision),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = ReceiverStream<Result<SnapshotResponse, Status>>;

    /// Streams a snapshot file (see [`crate::snapshot_file`]) in chunks, `remaining_bytes`
    /// counting down to 0 on the last one, as etcd does.
    ///
    /// On a protocol with linearizable reads the snapshot waits for the read barrier first, so
    /// it holds every write acknowledged before the request, whichever member serves it. Under
    /// gossip it holds what this member has applied.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        // A snapshot holds every key and the auth state (password hashes included): root only.
        self.ctx.authorize(request.metadata(), root_only)?;
        let consistency = if self.ctx.consensus.guarantees().linearizable_reads {
            ReadConsistency::Linearizable
        } else {
            ReadConsistency::Local
        };
        self.ctx.consensus.read_barrier(consistency).await.map_err(|e| consensus_status(&e))?;
        // Encoding the whole store takes a while on a big one: off the async workers.
        let ctx = self.ctx.clone();
        let (file, revision) = tokio::task::spawn_blocking(move || take_snapshot(&ctx))
            .await
            .map_err(|e| Status::internal(format!("etcdserver: snapshot failed: {e}")))??;
        tracing::info!(bytes = file.len(), revision, "streaming a snapshot");
        let header = self.ctx.header(revision);
        let (tx, rx) = mpsc::channel(SNAPSHOT_CHUNKS_QUEUED);
        tokio::spawn(async move {
            let total = file.len();
            let mut sent = 0;
            // An empty file cannot happen (the magic alone is 18 bytes), so there is always a
            // last chunk with remaining_bytes = 0.
            while sent < total {
                let end = (sent + SNAPSHOT_CHUNK_BYTES).min(total);
                let chunk = SnapshotResponse {
                    header,
                    remaining_bytes: (total - end) as u64,
                    blob: file.slice(sent..end),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // The client hung up.
                }
                sent = end;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// Hands leadership to `target_id` and answers once this member sees it lead, as etcd
    /// does. Sent to the leader (etcdctl finds it through `Status`); root only once auth is on.
    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.ctx.authorize(request.metadata(), root_only)?;
        let target = request.into_inner().target_id;
        let status = self.ctx.consensus.status();
        if !status.members.contains(&NodeId(target)) {
            return Err(Status::failed_precondition(BAD_LEADER_TRANSFEREE));
        }
        match self.ctx.consensus.transfer_leadership(NodeId(target)).await {
            Ok(()) => Ok(Response::new(MoveLeaderResponse { header: self.ctx.current_header() })),
            Err(ConsensusError::NotLeader { .. }) => Err(Status::failed_precondition(NOT_LEADER)),
            Err(ConsensusError::Timeout(_)) => Err(Status::unavailable(LEADER_TRANSFER_TIMED_OUT)),
            Err(error) => Err(consensus_status(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    }
}
