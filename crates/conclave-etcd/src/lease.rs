//! The `Lease` service: grant and revoke through the consensus, keep-alive and time-to-live
//! answered by the lease holder (forwarded there from other members), and the lease list from
//! the local store.

use conclave_kv::{Command, Output};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::context::EtcdContext;
use crate::error::{NO_LEADER, SERVER_STOPPED};
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
}

fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.get(FORWARDED).is_some()
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
        let request = request.into_inner();
        let ttl = request.ttl.max(self.ctx.options.min_lease_ttl_secs);
        let output = self.ctx.propose(&Command::LeaseGrant { id: request.id, ttl }).await?;
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
        let id = request.into_inner().id;
        let output = self.ctx.propose(&Command::LeaseRevoke { id }).await?;
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
        let forwarded = is_forwarded(request.metadata());
        let request = request.into_inner();
        if let Some(url) = self.holder_url(forwarded)? {
            let mut answer = self.forwarder.time_to_live(&url, request).await?;
            answer.header = self.ctx.current_header();
            return Ok(Response::new(answer));
        }
        let lease = self.ctx.read_store().lease(request.id);
        let header = self.ctx.current_header();
        let Some(lease) = lease else {
            // etcd reports a lease that does not exist (any more) as TTL -1, not an error.
            return Ok(Response::new(LeaseTimeToLiveResponse {
                header,
                id: request.id,
                ttl: -1,
                ..Default::default()
            }));
        };
        let ttl =
            self.ctx.leases.remaining_secs(lease.id, Instant::now()).unwrap_or(lease.remaining_ttl);
        Ok(Response::new(LeaseTimeToLiveResponse {
            header,
            id: lease.id,
            ttl,
            granted_ttl: lease.ttl,
            keys: if request.keys { lease.keys } else { Vec::new() },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self.ctx.read_store().leases();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.ctx.current_header(),
            leases: leases.into_iter().map(|lease| LeaseStatus { id: lease.id }).collect(),
        }))
    }
}
