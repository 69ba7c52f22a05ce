//! The `Lease` service: grant and revoke through the consensus, keep-alive and time-to-live
//! answered by the lease holder (forwarded there from other members), and the lease list from
//! the local store.

use bytes::Bytes;
use conclave_kv::{Command, KvStore, Output};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth_check::{Caller, Need};
use crate::context::EtcdContext;
use crate::error::{NO_LEADER, SERVER_STOPPED, TOO_MANY_LEASES};
use crate::lease_forward::{FORWARDED, LeaseForwarder};
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// The `etcdserverpb.Lease` service.
#[derive(Clone, Debug)]
pub struct LeaseService {
    ctx: EtcdContext,
    forwarder: Arc<LeaseForwarder>,
}

impl LeaseService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx, forwarder: Arc::new(LeaseForwarder::new()) }
    }

    /// Where to send a renewal: `None` to answer here (this member holds the leases, or the
    /// holder has no client URL configured), otherwise the holder's first client URL.
    fn holder_url(&self, metadata_forwarded: bool) -> Result<Option<String>, Status> {
        if metadata_forwarded || self.ctx.is_lease_holder() {
            return Ok(None);
        }
        match self.ctx.lease_holder() {
            None => Err(Status::unavailable(NO_LEADER)),
            Some(id) if id == self.ctx.cluster.member_id => Ok(None),
            Some(id) => {
                let url = self.ctx.cluster.member(id).and_then(|m| m.client_urls.first().cloned());
                if url.is_none() {
                    tracing::debug!(
                        holder = id,
                        "lease holder has no client url; renewing locally"
                    );
                }
                Ok(url)
            }
        }
    }

    async fn keep_alive_once(
        &self,
        id: i64,
        forwarded: bool,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        if let Some(url) = self.holder_url(forwarded)? {
            let answer = self.forwarder.keep_alive(&url, id).await?;
            return Ok(LeaseKeepAliveResponse {
                header: self.ctx.current_header(),
                id,
                ttl: answer.ttl,
            });
        }
        // etcd answers a keep-alive for an unknown lease with TTL 0, not an error.
        let ttl = self.ctx.read_store().lease(id).map_or(0, |lease| lease.ttl);
        if ttl > 0 {
            self.ctx.leases.renew(id, ttl, Instant::now());
        }
        Ok(LeaseKeepAliveResponse { header: self.ctx.current_header(), id, ttl })
    }

    /// `LeaseTimeToLive`, answered here or by the lease holder.
    async fn time_to_live(
        &self,
        mut request: LeaseTimeToLiveRequest,
        forwarded: bool,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        if forwarded {
            // A forwarded request carries no token, so it gets no keys: the forwarding member
            // takes them from its own replica of the lease, where it can check them.
            request.keys = false;
        }
        if let Some(url) = self.holder_url(forwarded)? {
            let keys = request.keys;
            request.keys = false;
            let mut answer = self.forwarder.time_to_live(&url, request).await?;
            answer.header = self.ctx.current_header();
            if keys && answer.ttl > 0 {
                let lease = self.ctx.read_store().lease(answer.id);
                answer.keys = lease.map(|lease| lease.keys).unwrap_or_default();
            }
            return Ok(answer);
        }
        let lease = self.ctx.read_store().lease(request.id);
        let header = self.ctx.current_header();
        let Some(lease) = lease else {
            // etcd reports a lease that does not exist (any more) as TTL -1, not an error.
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: request.id,
                ttl: -1,
                ..Default::default()
            });
        };
        let ttl =
            self.ctx.leases.remaining_secs(lease.id, Instant::now()).unwrap_or(lease.remaining_ttl);
        Ok(LeaseTimeToLiveResponse {
            header,
            id: lease.id,
            ttl,
            granted_ttl: lease.ttl,
            keys: if request.keys { lease.keys } else { Vec::new() },
        })
    }
}

fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.get(FORWARDED).is_some()
}

/// Lease calls need an authenticated user while auth is on (etcd asks no key permission for a
/// grant; a revoke needs write permission on the lease's keys, checked on its own).
fn any_user(_: &KvStore, caller: &Caller) -> Result<(), Status> {
    caller.user().map(|_| ())
}

fn unexpected(output: &Output) -> Status {
    Status::internal(format!("etcdserver: unexpected store output {output:?}"))
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        // Checked here, not in the store: grants in flight on this or another member at the
        // same moment may pass the limit by their number.
        if self.ctx.read_store().lease_count() >= self.ctx.limits.max_leases {
            crate::metrics::limit_refused(self.ctx.protocol, "leases");
            return Err(Status::resource_exhausted(TOO_MANY_LEASES));
        }
        let ttl = request.ttl.max(self.ctx.options.min_lease_ttl_secs);
        let command = Command::LeaseGrant { id: request.id, ttl };
        let output = self.ctx.propose_authorized(&metadata, any_user, &command).await?;
        let Output::LeaseGrant { id, ttl, revision } = output else {
            return Err(unexpected(&output));
        };
        if self.ctx.is_lease_holder() {
            self.ctx.leases.renew(id, ttl, Instant::now());
        }
        Ok(Response::new(LeaseGrantResponse {
            header: self.ctx.header(revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let id = request.id;
        // Revoking deletes the lease's keys: etcd asks for write permission on each of them.
        let may_revoke = |store: &KvStore, caller: &Caller| {
            let keys = store.lease(id).map(|lease| lease.keys).unwrap_or_default();
            let needs: Vec<Need> = keys.iter().map(|k| Need::write(k, &Bytes::new())).collect();
            caller.require(store.auth(), &needs)
        };
        let command = Command::LeaseRevoke { id };
        let output = self.ctx.propose_authorized(&metadata, may_revoke, &command).await?;
        let Output::LeaseRevoke { revision } = output else {
            return Err(unexpected(&output));
        };
        self.ctx.leases.forget(id);
        Ok(Response::new(LeaseRevokeResponse { header: self.ctx.header(revision) }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.ctx.check_leader_required(request.metadata())?;
        let forwarded = is_forwarded(request.metadata());
        // The member that forwarded a stream checked its caller (see docs/security.md).
        if !forwarded {
            self.ctx.authorize(request.metadata(), any_user)?;
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(self.ctx.limits.stream_buffer_len);
        let service = self.clone();
        let stopped = self.ctx.stopped();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    () = tx.closed() => return,
                    () = &mut stopped => Err(Status::unavailable(SERVER_STOPPED)),
                };
                let answer = match message {
                    Ok(Some(request)) => service.keep_alive_once(request.id, forwarded).await,
                    Ok(None) => return,
                    Err(status) => Err(status),
                };
                // An error ends the stream, as in etcd; the client opens a new one.
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let forwarded = is_forwarded(&metadata);
        if !forwarded {
            self.ctx.authorize(&metadata, any_user)?;
        }
        let answer = self.time_to_live(request, forwarded).await?;
        // Listing a lease's keys reveals them: read permission on each, as etcd 3.5 asks.
        if !forwarded && !answer.keys.is_empty() {
            let needs: Vec<Need> =
                answer.keys.iter().map(|k| Need::read(k, &Bytes::new())).collect();
            self.ctx.authorize_needs(&metadata, &needs)?;
        }
        Ok(Response::new(answer))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.ctx.authorize(request.metadata(), any_user)?;
        let leases = self.ctx.read_store().leases();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.ctx.current_header(),
            leases: leases.into_iter().map(|lease| LeaseStatus { id: lease.id }).collect(),
        }))
    }
}
