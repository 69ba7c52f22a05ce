//! The longest lease (etcd's `MaxLeaseTTL`, 9,000,000,000 s): a grant past it is refused with
//! OUT_OF_RANGE "etcdserver: too large lease TTL".

use crate::support::{TestServer, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::pb::etcdserverpb::{LeaseGrantRequest, LeaseTimeToLiveRequest};
use conclave_kv::MAX_LEASE_TTL;
use tonic::Code;

#[tokio::test]
async fn at_the_longest_ttl_and_one_past() {
    let server = TestServer::start(Limits::default()).await;
    let mut lease = server.lease().await;
    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl: MAX_LEASE_TTL, id: 0 })
        .await
        .expect("the longest ttl is granted")
        .into_inner();
    assert_eq!(granted.ttl, MAX_LEASE_TTL);
    let left = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id: granted.id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert!(left.ttl > MAX_LEASE_TTL - 60, "{left:?}");

    let err =
        lease.lease_grant(LeaseGrantRequest { ttl: MAX_LEASE_TTL + 1, id: 0 }).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::OutOfRange, "etcdserver: too large lease TTL"));
    let err = lease.lease_grant(LeaseGrantRequest { ttl: i64::MAX, id: 0 }).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    still_serving(&mut server.kv().await).await;
    server.stop().await;
}
