//! Cluster and Maintenance: member list, status, alarms, hashes, and what is unimplemented.

use conclave_etcd::pb::etcdserverpb::alarm_request::AlarmAction;
use conclave_etcd::pb::etcdserverpb::{
    AlarmRequest, DefragmentRequest, HashKvRequest, MemberAddRequest, MemberListRequest,
    SnapshotRequest, StatusRequest,
};
use tonic::Code;

use crate::kv::put;
use crate::support::{CLUSTER_ID, TERM, TestServer};

#[tokio::test]
async fn member_list_comes_from_cluster_info() {
    let server = TestServer::start().await;
    let mut cluster = server.cluster().await;
    let list =
        cluster.member_list(MemberListRequest { linearizable: false }).await.unwrap().into_inner();
    assert_eq!(list.header.unwrap().cluster_id, CLUSTER_ID);
    assert_eq!(list.members.len(), 1);
    let me = &list.members[0];
    assert_eq!((me.id, me.name.as_str()), (1, "node1"));
    assert_eq!(me.client_urls, vec![server.url()]);

    let err = cluster
        .member_add(MemberAddRequest { peer_urls: vec![], is_learner: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn status_reports_leader_term_and_indexes() {
    let server = TestServer::start().await;
    server.kv().await.put(put("k", "v")).await.unwrap();
    let mut maintenance = server.maintenance().await;
    let status = maintenance.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(status.version.starts_with("3.4.0-conclave"), "version {}", status.version);
    let header = status.header.unwrap();
    // etcdctl's IS LEADER column is header.member_id == leader.
    assert_eq!((header.member_id, status.leader), (1, 1));
    assert_eq!(status.raft_term, TERM);
    assert_eq!((status.raft_index, status.raft_applied_index), (1, 1));
    assert!(status.db_size > 0);

    let alarms = maintenance
        .alarm(AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: 0 })
        .await
        .unwrap();
    assert!(alarms.into_inner().alarms.is_empty());
    maintenance.defragment(DefragmentRequest {}).await.unwrap();
    let err = maintenance.snapshot(SnapshotRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn hash_kv_is_stable_and_tracks_writes() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    kv.put(put("a", "1")).await.unwrap();
    let mut maintenance = server.maintenance().await;
    let first = maintenance.hash_kv(HashKvRequest { revision: 0 }).await.unwrap().into_inner();
    let again = maintenance.hash_kv(HashKvRequest { revision: 0 }).await.unwrap().into_inner();
    assert_eq!(first.hash, again.hash);
    kv.put(put("a", "2")).await.unwrap();
    let later = maintenance.hash_kv(HashKvRequest { revision: 0 }).await.unwrap().into_inner();
    assert_ne!(first.hash, later.hash);
    let at_old = maintenance.hash_kv(HashKvRequest { revision: 2 }).await.unwrap().into_inner();
    assert_eq!(at_old.hash, first.hash);
}
