//! `max_leases` (100,000 by default; etcd has no such limit): a grant while that many leases
//! exist is refused with RESOURCE_EXHAUSTED "etcdserver: too many leases"; revoking one makes
//! room again, and the server keeps serving throughout.

use crate::support::{TestServer, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::error::TOO_MANY_LEASES;
use conclave_etcd::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, PutRequest,
};
use tonic::Code;

#[tokio::test]
async fn at_the_limit_and_one_past_and_back() {
    assert_eq!(Limits::default().max_leases, 100_000);
    let limit = 3;
    let server = TestServer::start(Limits { max_leases: limit, ..Limits::default() }).await;
    let mut lease = server.lease().await;
    let mut ids = Vec::new();
    for _ in 0..limit {
        let granted = lease
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .expect("grants up to the limit are accepted")
            .into_inner();
        ids.push(granted.id);
    }
    for id in [0, 4242] {
        let err = lease.lease_grant(LeaseGrantRequest { ttl: 60, id }).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::ResourceExhausted, TOO_MANY_LEASES));
    }
    let listed = lease.lease_leases(LeaseLeasesRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.leases.len(), limit, "no refused grant created a lease");

    // The leases that exist still work, and so does everything else.
    let mut kv = server.kv().await;
    kv.put(PutRequest {
        key: "leased".into(),
        value: "v".into(),
        lease: ids[0],
        ..Default::default()
    })
    .await
    .expect("a put on an existing lease");
    still_serving(&mut kv).await;

    // A revoke makes room for exactly one more.
    lease.lease_revoke(LeaseRevokeRequest { id: ids[1] }).await.unwrap();
    lease.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.expect("room after a revoke");
    let err = lease.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    server.stop().await;
}
