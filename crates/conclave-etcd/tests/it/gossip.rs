//! A protocol without linearizable reads or atomic compare-and-swap (gossip): refused with
//! FAILED_PRECONDITION naming the protocol, served locally once downgrading is on.
//! Reference: DESIGN.md, "Honest semantics".

use bytes::Bytes;
use conclave_etcd::Options;
use conclave_etcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use conclave_etcd::pb::etcdserverpb::request_op::Request as Op;
use conclave_etcd::pb::etcdserverpb::{Compare, RangeRequest, RequestOp, TxnRequest};
use tonic::Code;

use crate::kv::{b, get, put};
use crate::support::{Builder, gossip_like};

pub fn cas_txn() -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: b("k"),
            target_union: Some(TargetUnion::Version(1)),
            range_end: Bytes::new(),
        }],
        success: vec![RequestOp { request: Some(Op::RequestPut(put("k", "swapped"))) }],
        failure: vec![],
    }
}

#[tokio::test]
async fn linearizable_requests_are_refused_naming_the_protocol() {
    let server = Builder { protocol: "gossip", guarantees: gossip_like(), ..Builder::default() }
        .start()
        .await;
    let mut kv = server.kv().await;
    kv.put(put("k", "v")).await.unwrap();

    let err = kv.range(get("k")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "etcdserver: gossip offers no linearizable reads; use serializable");

    let local =
        kv.range(RangeRequest { serializable: true, ..get("k") }).await.unwrap().into_inner();
    assert_eq!(local.kvs[0].value, b("v"));

    // etcdctl endpoint health's probe is answered locally.
    assert_eq!(kv.range(get("health")).await.unwrap().into_inner().count, 0);

    let err = kv.txn(cas_txn()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("gossip"), "{}", err.message());

    // A txn without compares is a plain write: allowed.
    let blind = TxnRequest { success: cas_txn().success, ..TxnRequest::default() };
    assert!(kv.txn(blind).await.unwrap().into_inner().succeeded);

    // A read-only txn is a read: linearizable unless every range in it is serializable.
    let read = |serializable| TxnRequest {
        success: vec![RequestOp {
            request: Some(Op::RequestRange(RangeRequest { serializable, ..get("k") })),
        }],
        ..TxnRequest::default()
    };
    assert_eq!(kv.txn(read(false)).await.unwrap_err().code(), Code::FailedPrecondition);
    assert!(kv.txn(read(true)).await.is_ok());
}

#[tokio::test]
async fn downgrading_serves_them_locally() {
    let server = Builder {
        protocol: "gossip",
        guarantees: gossip_like(),
        options: Options { downgrade_unsupported: true, ..Options::default() },
        ..Builder::default()
    }
    .start()
    .await;
    let mut kv = server.kv().await;
    kv.put(put("k", "v")).await.unwrap();
    assert_eq!(kv.range(get("k")).await.unwrap().into_inner().kvs[0].value, b("v"));
    assert!(kv.txn(cas_txn()).await.unwrap().into_inner().succeeded);
    assert_eq!(kv.range(get("k")).await.unwrap().into_inner().kvs[0].value, b("swapped"));
}

#[tokio::test]
async fn the_lowest_member_expires_leases_without_a_leader() {
    let server = Builder { protocol: "gossip", guarantees: gossip_like(), ..Builder::default() }
        .start()
        .await;
    let mut lease = server.lease().await;
    let id = lease
        .lease_grant(conclave_etcd::pb::etcdserverpb::LeaseGrantRequest { ttl: 1, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let ttl = conclave_etcd::pb::etcdserverpb::LeaseTimeToLiveRequest { id, keys: false };
    assert!(lease.lease_time_to_live(ttl).await.unwrap().into_inner().ttl >= 0);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while lease.lease_time_to_live(ttl).await.unwrap().into_inner().ttl != -1 {
        assert!(tokio::time::Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
