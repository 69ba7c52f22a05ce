//! Lease: grant, attach, time-to-live, list, revoke, keep-alive, expiry and forwarding of
//! renewals from a follower to the lease holder.

use conclave_core::{NodeId, Role};
use conclave_etcd::pb::etcdserverpb::lease_client::LeaseClient;
use conclave_etcd::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::kv::{b, get, put};
use crate::support::{Builder, TestServer};

async fn grant(lease: &mut LeaseClient<Channel>, ttl: i64) -> i64 {
    lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await.unwrap().into_inner().id
}

struct KeepAlive {
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    async fn open(lease: &mut LeaseClient<Channel>) -> Self {
        let (requests, rx) = mpsc::channel(4);
        let responses = lease.lease_keep_alive(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { requests, responses }
    }

    async fn renew(&mut self, id: i64) -> i64 {
        self.requests.send(LeaseKeepAliveRequest { id }).await.unwrap();
        let answer =
            tokio::time::timeout(Duration::from_secs(5), self.responses.message()).await.unwrap();
        let answer = answer.unwrap().unwrap();
        assert_eq!(answer.id, id);
        answer.ttl
    }
}

#[tokio::test]
async fn grant_attach_inspect_and_revoke() {
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let mut kv = server.kv().await;

    let granted =
        lease.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.unwrap().into_inner();
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, 60);
    let id = granted.id;
    kv.put(PutRequest { lease: id, ..put("leased", "v") }).await.unwrap();

    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ttl.id, ttl.granted_ttl), (id, 60));
    assert!(ttl.ttl > 55 && ttl.ttl <= 60, "remaining ttl {}", ttl.ttl);
    assert_eq!(ttl.keys, vec![b("leased")]);

    let all = lease.lease_leases(LeaseLeasesRequest {}).await.unwrap().into_inner();
    assert_eq!(all.leases.iter().map(|l| l.id).collect::<Vec<_>>(), vec![id]);

    let mut keep_alive = KeepAlive::open(&mut lease).await;
    assert_eq!(keep_alive.renew(id).await, 60);

    let revoked = lease.lease_revoke(LeaseRevokeRequest { id }).await.unwrap().into_inner();
    // Revoking deleted the attached key: a new revision.
    assert_eq!(revoked.header.unwrap().revision, 3);
    assert_eq!(kv.range(get("leased")).await.unwrap().into_inner().count, 0);

    // etcd reports a gone lease as TTL -1 (time-to-live) and TTL 0 (keep-alive), not errors.
    let gone = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.ttl, -1);
    assert_eq!(keep_alive.renew(id).await, 0);

    let err = lease.lease_revoke(LeaseRevokeRequest { id }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
}

#[tokio::test]
async fn grant_errors_and_minimum_ttl() {
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let short = lease.lease_grant(LeaseGrantRequest { ttl: 0, id: 5 }).await.unwrap().into_inner();
    assert_eq!((short.id, short.ttl), (5, 1), "raised to min_lease_ttl_secs");
    let err = lease.lease_grant(LeaseGrantRequest { ttl: 10, id: 5 }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let err = lease.lease_grant(LeaseGrantRequest { ttl: 9_000_000_001, id: 0 }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::OutOfRange, "etcdserver: too large lease TTL"));
}

/// Polls until the lease is gone (time-to-live -1), for at most `within`.
async fn until_expired(lease: &mut LeaseClient<Channel>, id: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ttl =
            lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false }).await.unwrap();
        if ttl.into_inner().ttl == -1 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "lease {id} still alive after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn expired_leases_are_revoked_with_their_keys() {
    let server = TestServer::start().await;
    let mut lease = server.lease().await;
    let mut kv = server.kv().await;
    let kept = grant(&mut lease, 2).await;
    let dropped = grant(&mut lease, 1).await;
    kv.put(PutRequest { lease: dropped, ..put("ephemeral", "v") }).await.unwrap();

    // Renew one lease for longer than either TTL.
    let mut keep_alive = KeepAlive::open(&mut lease).await;
    for _ in 0..10 {
        assert_eq!(keep_alive.renew(kept).await, 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The lease nobody renewed is gone with its key; the renewed one lives.
    until_expired(&mut lease, dropped, Duration::from_secs(5)).await;
    assert_eq!(kv.range(get("ephemeral")).await.unwrap().into_inner().count, 0);
    let leases = lease.lease_leases(LeaseLeasesRequest {}).await.unwrap().into_inner().leases;
    assert_eq!(leases.iter().map(|l| l.id).collect::<Vec<_>>(), vec![kept]);
}

#[tokio::test]
async fn followers_forward_renewals_to_the_lease_holder() {
    let leader = TestServer::start().await;
    let follower = Builder {
        id: 2,
        store: Some(leader.ctx.store.clone()),
        peers: vec![(1, leader.addr)],
        consensus_setup: Some(Box::new(|c| {
            *c.role.get_mut().unwrap() = Role::Follower;
            *c.leader.get_mut().unwrap() = Some(NodeId(1));
            c.members = vec![NodeId(1), NodeId(2)];
        })),
        ..Builder::default()
    }
    .start()
    .await;
    let mut via_follower = follower.lease().await;
    let id = grant(&mut via_follower, 2).await;
    let mut keep_alive = KeepAlive::open(&mut via_follower).await;
    for _ in 0..12 {
        assert_eq!(keep_alive.renew(id).await, 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Only the leader expires leases, and it heard every renewal.
    let request = LeaseTimeToLiveRequest { id, keys: false };
    let ttl = via_follower.lease_time_to_live(request).await.unwrap().into_inner();
    assert_eq!(ttl.granted_ttl, 2);
    assert!(ttl.ttl >= 1, "lease still alive on the leader's clock, ttl {}", ttl.ttl);
    assert_eq!(ttl.header.unwrap().member_id, 2, "the follower answers with its own header");

    // Without renewals it expires on the leader's clock.
    until_expired(&mut via_follower, id, Duration::from_secs(6)).await;
}
