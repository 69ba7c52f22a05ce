//! Watch: created first, live events, history replay, compaction, cancel, progress, lag.

use conclave_etcd::pb::etcdserverpb::watch_request::RequestUnion;
use conclave_etcd::pb::etcdserverpb::{
    CompactionRequest, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse, watch_create_request::FilterType,
};
use conclave_etcd::pb::mvccpb::event::EventType;
use conclave_kv::{Command, PutRequest as KvPut};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use crate::kv::{b, put};
use crate::support::TestServer;

pub struct WatchStream {
    pub requests: mpsc::Sender<WatchRequest>,
    pub responses: Streaming<WatchResponse>,
}

impl WatchStream {
    pub async fn open(server: &TestServer) -> Self {
        let (requests, rx) = mpsc::channel(16);
        let responses =
            server.watch().await.watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { requests, responses }
    }

    pub async fn send(&self, request: RequestUnion) {
        self.requests.send(WatchRequest { request_union: Some(request) }).await.unwrap();
    }

    pub async fn create(&self, create: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(create)).await;
    }

    pub async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(Duration::from_secs(5), self.responses.message())
            .await
            .expect("a watch response within 5 s")
            .unwrap()
            .expect("the stream is open")
    }

    /// Asserts that nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.responses.message()).await;
        assert!(next.is_err(), "expected no response, got {next:?}");
    }
}

pub fn on_prefix(prefix: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(prefix),
        range_end: conclave_kv::prefix_range_end(prefix.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test]
async fn created_comes_first_then_live_events() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    let mut watch = WatchStream::open(&server).await;
    watch.create(WatchCreateRequest { prev_kv: true, ..on_prefix("w/") }).await;
    let created = watch.next().await;
    assert!(created.created);
    assert_eq!(created.header.unwrap().revision, 1);

    kv.put(put("w/1", "a")).await.unwrap();
    kv.put(put("other", "x")).await.unwrap();
    kv.put(put("w/1", "b")).await.unwrap();
    kv.delete_range(conclave_etcd::pb::etcdserverpb::DeleteRangeRequest {
        key: b("w/1"),
        ..Default::default()
    })
    .await
    .unwrap();

    let first = watch.next().await;
    assert_eq!(first.watch_id, created.watch_id);
    assert_eq!(first.header.unwrap().revision, 2);
    let event = &first.events[0];
    assert_eq!(event.r#type, EventType::Put as i32);
    assert_eq!(event.kv.as_ref().unwrap().value, b("a"));
    assert!(event.prev_kv.is_none());

    let second = watch.next().await;
    assert_eq!(second.header.unwrap().revision, 4);
    assert_eq!(second.events[0].prev_kv.as_ref().unwrap().value, b("a"));

    let deleted = watch.next().await;
    let event = &deleted.events[0];
    assert_eq!(event.r#type, EventType::Delete as i32);
    assert_eq!(event.kv.as_ref().unwrap().mod_revision, 5);
    assert_eq!(event.prev_kv.as_ref().unwrap().value, b("b"));
}

#[tokio::test]
async fn start_revision_in_the_past_replays_history() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    for v in ["1", "2", "3"] {
        kv.put(put("h", v)).await.unwrap();
    }
    let mut watch = WatchStream::open(&server).await;
    watch.create(WatchCreateRequest { key: b("h"), start_revision: 3, ..Default::default() }).await;
    let created = watch.next().await;
    assert!(created.created);
    let replay = watch.next().await;
    let values: Vec<_> =
        replay.events.iter().map(|e| e.kv.as_ref().unwrap().value.clone()).collect();
    assert_eq!(values, vec![b("2"), b("3")]);

    // Live events follow the replay without a gap or a repeat.
    kv.put(put("h", "4")).await.unwrap();
    let live = watch.next().await;
    assert_eq!(live.events[0].kv.as_ref().unwrap().mod_revision, 5);
}

#[tokio::test]
async fn compacted_start_revision_cancels_with_compact_revision() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    for v in ["1", "2", "3"] {
        kv.put(put("c", v)).await.unwrap();
    }
    kv.compact(CompactionRequest { revision: 3, physical: false }).await.unwrap();
    let mut watch = WatchStream::open(&server).await;
    watch.create(WatchCreateRequest { key: b("c"), start_revision: 2, ..Default::default() }).await;
    assert!(watch.next().await.created);
    let canceled = watch.next().await;
    assert!(canceled.canceled);
    assert_eq!(canceled.compact_revision, 3);
}

#[tokio::test]
async fn cancel_filters_and_explicit_ids() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    let mut watch = WatchStream::open(&server).await;
    watch
        .create(WatchCreateRequest {
            watch_id: 42,
            filters: vec![FilterType::Nodelete as i32],
            ..on_prefix("f/")
        })
        .await;
    assert_eq!(watch.next().await.watch_id, 42);

    // The same id again is refused on this stream.
    watch.create(WatchCreateRequest { watch_id: 42, ..on_prefix("g/") }).await;
    let refused = watch.next().await;
    assert!(refused.created && refused.canceled);
    assert_eq!(refused.watch_id, -1);

    kv.put(put("f/1", "v")).await.unwrap();
    kv.delete_range(conclave_etcd::pb::etcdserverpb::DeleteRangeRequest {
        key: b("f/1"),
        ..Default::default()
    })
    .await
    .unwrap();
    kv.put(put("f/2", "v")).await.unwrap();
    assert_eq!(watch.next().await.events[0].kv.as_ref().unwrap().key, b("f/1"));
    // The delete was filtered out.
    assert_eq!(watch.next().await.events[0].kv.as_ref().unwrap().key, b("f/2"));

    watch.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 42 })).await;
    let canceled = watch.next().await;
    assert!(canceled.canceled);
    assert_eq!(canceled.watch_id, 42);
    kv.put(put("f/3", "v")).await.unwrap();
    watch.quiet().await;
}

#[tokio::test]
async fn progress_request_reports_the_revision() {
    let server = TestServer::start().await;
    let mut kv = server.kv().await;
    let mut watch = WatchStream::open(&server).await;
    watch.create(on_prefix("p/")).await;
    watch.next().await;
    kv.put(put("unwatched", "v")).await.unwrap();
    watch.send(RequestUnion::ProgressRequest(WatchProgressRequest {})).await;
    let progress = watch.next().await;
    assert_eq!(progress.watch_id, -1);
    assert!(progress.events.is_empty());
    assert_eq!(progress.header.unwrap().revision, 2);
}

#[tokio::test]
async fn progress_notify_reaches_idle_watchers() {
    let server = crate::support::Builder {
        options: conclave_etcd::Options {
            watch_progress_notify_interval_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    }
    .start()
    .await;
    let mut watch = WatchStream::open(&server).await;
    watch.create(WatchCreateRequest { progress_notify: true, ..on_prefix("n/") }).await;
    let created = watch.next().await;
    let notification = watch.next().await;
    assert_eq!(notification.watch_id, created.watch_id);
    assert!(notification.events.is_empty() && !notification.canceled);
}

#[tokio::test]
async fn a_slow_watcher_catches_up_without_losing_events() {
    let server = TestServer::start().await;
    let mut watch = WatchStream::open(&server).await;
    watch.create(on_prefix("lag/")).await;
    watch.next().await;
    // Far more writes than the hub buffers, applied while the client reads nothing.
    const WRITES: i64 = 3000;
    {
        let mut store = server.ctx.store.write().unwrap();
        for i in 0..WRITES {
            let command = Command::Put(KvPut::new(format!("lag/{i}"), "v"));
            store.apply_command(&command);
        }
    }
    let mut next_revision = 2;
    while next_revision < 2 + WRITES {
        let response = watch.next().await;
        for event in &response.events {
            assert_eq!(
                event.kv.as_ref().unwrap().mod_revision,
                next_revision,
                "events arrive in order, once"
            );
            next_revision += 1;
        }
    }
}

#[tokio::test]
async fn streams_end_unavailable_when_the_server_stops() {
    let server = TestServer::start().await;
    let mut watch = WatchStream::open(&server).await;
    watch.create(on_prefix("s/")).await;
    watch.next().await;
    server.stop().await;
    let end =
        tokio::time::timeout(Duration::from_secs(5), watch.responses.message()).await.unwrap();
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn streams_requiring_a_leader_are_refused_without_one() {
    let server = crate::support::Builder {
        consensus_setup: Some(Box::new(|c| {
            *c.role.get_mut().unwrap() = conclave_core::Role::Candidate;
            *c.leader.get_mut().unwrap() = None;
        })),
        ..Default::default()
    }
    .start()
    .await;
    let (_requests, rx) = mpsc::channel::<WatchRequest>(1);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    // What clientv3's WithRequireLeader (and so etcdctl watch) sends.
    request.metadata_mut().insert("hasleader", tonic::metadata::MetadataValue::from_static("true"));
    let err = server.watch().await.watch(request).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "etcdserver: no leader"));

    // Without the metadata the stream opens.
    let mut watch = WatchStream::open(&server).await;
    watch.create(on_prefix("x/")).await;
    assert!(watch.next().await.created);
}
