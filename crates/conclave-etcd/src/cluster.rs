//! The `Cluster` service: the member list from the configured
//! [`ClusterInfo`](crate::ClusterInfo). Membership changes go through each protocol's own
//! reconfiguration, not through this API, so the change methods answer UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use crate::context::EtcdContext;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

/// The `etcdserverpb.Cluster` service.
#[derive(Clone, Debug)]
pub struct ClusterService {
    ctx: EtcdContext,
}

impl ClusterService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }
}

fn membership_changes_unsupported() -> Status {
    Status::unimplemented(
        "etcdserver: conclave changes membership through its own configuration, not this API",
    )
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(membership_changes_unsupported())
    }

    async fn member_remove(
        &self,
        _request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(membership_changes_unsupported())
    }

    async fn member_update(
        &self,
        _request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(membership_changes_unsupported())
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .ctx
            .cluster
            .members
            .iter()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                client_urls: m.client_urls.clone(),
                is_learner: false,
            })
            .collect();
        Ok(Response::new(MemberListResponse { header: self.ctx.current_header(), members }))
    }

    async fn member_promote(
        &self,
        _request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(membership_changes_unsupported())
    }
}
