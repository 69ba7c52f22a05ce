//! Cluster and Maintenance: member list, status, alarms, hashes, snapshots, and what is
//! unimplemented.

use conclave_core::{SnapshotMeta, StateMachine};
use conclave_etcd::maintenance::SNAPSHOT_CHUNK_BYTES;
use conclave_etcd::pb::etcdserverpb::alarm_request::AlarmAction;
use conclave_etcd::pb::etcdserverpb::{
    AlarmRequest, DefragmentRequest, HashKvRequest, MemberAddRequest, MemberListRequest,
    RangeRequest, RangeResponse, SnapshotRequest, StatusRequest,
};
use conclave_etcd::snapshot_file::SnapshotFile;
use conclave_kv::KvStore;
use tonic::Code;

use crate::kv::{get, put};
use crate::support::{Builder, CLUSTER_ID, TERM, TestServer, gossip_like};

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
}

/// Reads a whole `Maintenance/Snapshot` stream as etcdctl does, checking that
/// `remaining_bytes` counts down to 0 on the last chunk.
async fn snapshot_bytes(server: &TestServer) -> (Vec<u8>, usize) {
    let mut stream =
        server.maintenance().await.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
    let (mut bytes, mut chunks, mut last_remaining) = (Vec::new(), 0, None);
    while let Some(chunk) = stream.message().await.unwrap() {
        assert!(chunk.blob.len() <= SNAPSHOT_CHUNK_BYTES);
        if let Some(before) = last_remaining {
            assert_eq!(before, chunk.remaining_bytes + chunk.blob.len() as u64);
        }
        last_remaining = Some(chunk.remaining_bytes);
        bytes.extend_from_slice(&chunk.blob);
        chunks += 1;
    }
    assert_eq!(last_remaining, Some(0), "the last chunk has no bytes remaining");
    (bytes, chunks)
}

#[tokio::test]
async fn snapshot_streams_a_verifiable_file_that_restores_the_store() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    // Enough data for several chunks, incompressible so the chunking is really exercised.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        let value: String = (0..2048)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect();
        kv.put(put(&format!("key/{i:02}"), &value)).await.unwrap();
    }
    kv.put(put("key/00", "rewritten")).await.unwrap();
    let (bytes, chunks) = snapshot_bytes(&server).await;
    assert!(chunks >= 3, "{} bytes came in {chunks} chunks", bytes.len());

    let file = SnapshotFile::decode(&bytes).expect("a valid snapshot file");
    let h = &file.header;
    assert_eq!((h.revision, h.keys, h.member_id, h.cluster_id), (42, 40, 1, CLUSTER_ID));
    assert_eq!(h.protocol, "fake");
    assert!(h.taken_at_unix_ms > 0);
    let mut restored = KvStore::new();
    let meta = SnapshotMeta { index: 5, ..SnapshotMeta::default() };
    restored.restore(&meta, &file.body).expect("the body is the store's snapshot");
    assert_eq!(restored.current_revision(), 42);
    let got = restored.range(&conclave_kv::RangeRequest::key("key/00")).unwrap();
    assert_eq!(&got.kvs[0].value[..], b"rewritten");
    assert_eq!(got.kvs[0].version, 2);

    // A damaged copy is refused.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    assert!(SnapshotFile::decode(&damaged).is_err());
}

#[tokio::test]
async fn an_empty_store_snapshots_in_one_chunk() {
    let server = TestServer::start().await;
    let (bytes, chunks) = snapshot_bytes(&server).await;
    assert_eq!(chunks, 1);
    let file = SnapshotFile::decode(&bytes).unwrap();
    assert_eq!((file.header.revision, file.header.keys), (1, 0));
}

#[tokio::test]
async fn gossip_snapshots_without_a_linearizable_barrier() {
    let server = Builder { protocol: "gossip", guarantees: gossip_like(), ..Builder::default() }
        .start()
        .await;
    server.kv().await.put(put("g", "1")).await.unwrap();
    let (bytes, _) = snapshot_bytes(&server).await;
    let file = SnapshotFile::decode(&bytes).unwrap();
    assert_eq!((file.header.protocol.as_str(), file.header.keys), ("gossip", 1));
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

/// Calls `path` with an empty `RangeRequest` over the test server's channel.
async fn call_path(server: &TestServer, path: &'static str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RangeRequest, RangeResponse>::default();
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(RangeRequest::default()), path, codec).await.unwrap_err()
}

#[tokio::test]
async fn unknown_services_and_methods_are_unimplemented() {
    let server = TestServer::start().await;
    let status = call_path(&server, "/etcdserverpb.Nope/Range").await;
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("etcdserverpb.Nope"), "{status:?}");
    let status = call_path(&server, "/etcdserverpb.KV/Nope").await;
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    // The server still answers the calls it knows afterwards.
    assert!(server.kv().await.range(get("k")).await.is_ok());
    server.stop().await;
}
