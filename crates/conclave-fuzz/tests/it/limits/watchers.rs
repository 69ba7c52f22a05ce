//! `max_watchers_per_stream` (10,000 by default; etcd has no such limit): a create past it is
//! answered as etcd answers a refused create — `created` and `canceled` with watch id -1 and
//! a reason — and the stream, its watchers and the server carry on. `max_watchers` bounds the
//! watchers of the whole member the same way.

use crate::support::{TestServer, b, put, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::pb::etcdserverpb::watch_request::RequestUnion;
use conclave_etcd::pb::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const TOO_MANY: &str = "etcdserver: too many watchers on this stream";
const TOO_MANY_ON_MEMBER: &str = "etcdserver: too many watchers on this member";

fn create(key: &str) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b(key),
            ..Default::default()
        })),
    }
}

fn cancel(id: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: id })),
    }
}

async fn next(responses: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(30), responses.message())
        .await
        .expect("a watch response within 30 s")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

async fn open(server: &TestServer) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
    let (tx, rx) = mpsc::channel(1024);
    let responses = server.watch().await.watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    (tx, responses)
}

/// Opens `limit` watchers, then one more, on one stream; checks the refusal; returns the ids.
async fn fill(
    tx: &mpsc::Sender<WatchRequest>,
    responses: &mut Streaming<WatchResponse>,
    limit: usize,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(limit);
    // Send from another task: the server answers each create before it reads the next, so
    // sending them all before reading would fill both directions' buffers and stall.
    let sender = tx.clone();
    let sending = tokio::spawn(async move {
        for i in 0..=limit {
            sender.send(create(&format!("w{}", i % 4))).await.unwrap();
        }
    });
    for _ in 0..limit {
        let created = next(responses).await;
        assert!(created.created && !created.canceled, "{created:?}");
        ids.push(created.watch_id);
    }
    let refused = next(responses).await;
    sending.await.unwrap();
    assert!(refused.created && refused.canceled, "{refused:?}");
    assert_eq!((refused.watch_id, refused.cancel_reason.as_str()), (-1, TOO_MANY));
    ids
}

#[tokio::test]
async fn at_a_small_limit_and_past_it_and_back() {
    let server =
        TestServer::start(Limits { max_watchers_per_stream: 3, ..Limits::default() }).await;
    let (tx, mut responses) = open(&server).await;
    let ids = fill(&tx, &mut responses, 3).await;

    // Cancelling one makes room for one more.
    tx.send(cancel(ids[0])).await.unwrap();
    let canceled = next(&mut responses).await;
    assert!(canceled.canceled && canceled.watch_id == ids[0], "{canceled:?}");
    tx.send(create("w0")).await.unwrap();
    let again = next(&mut responses).await;
    assert!(again.created && !again.canceled, "{again:?}");

    // The watchers still see writes: w1 is watched by ids[1].
    let mut kv = server.kv().await;
    kv.put(put("w1", "seen")).await.unwrap();
    let event = next(&mut responses).await;
    assert_eq!(event.watch_id, ids[1]);
    assert_eq!(&event.events[0].kv.as_ref().unwrap().key[..], b"w1");

    // Another stream has its own allowance.
    let (tx2, mut responses2) = open(&server).await;
    tx2.send(create("other")).await.unwrap();
    assert!(next(&mut responses2).await.created);
    still_serving(&mut kv).await;
    server.stop().await;
}

#[tokio::test]
async fn at_the_default_limit_and_past_it() {
    let limit = Limits::default().max_watchers_per_stream;
    assert_eq!(limit, 10_000);
    let server = TestServer::start(Limits::default()).await;
    let (tx, mut responses) = open(&server).await;
    let ids = fill(&tx, &mut responses, limit).await;
    assert_eq!(ids.len(), limit);
    // The stream still works at its limit: a cancel is answered.
    tx.send(cancel(ids[limit - 1])).await.unwrap();
    assert!(next(&mut responses).await.canceled);
    still_serving(&mut server.kv().await).await;
    server.stop().await;
}

/// `max_watchers` (100,000 by default): watchers on the whole member, over every stream. A
/// create past it is refused like a create past the per-stream limit, with its own reason;
/// a cancel, or a stream's end, gives places back.
#[tokio::test]
async fn the_member_wide_limit_counts_every_stream() {
    assert_eq!(Limits::default().max_watchers, 100_000);
    let server = TestServer::start(Limits { max_watchers: 3, ..Limits::default() }).await;
    let (tx_a, mut a) = open(&server).await;
    let (tx_b, mut b_stream) = open(&server).await;
    let mut ids_a = Vec::new();
    for key in ["a0", "a1"] {
        tx_a.send(create(key)).await.unwrap();
        let created = next(&mut a).await;
        assert!(created.created && !created.canceled, "{created:?}");
        ids_a.push(created.watch_id);
    }
    tx_b.send(create("b0")).await.unwrap();
    let at_limit = next(&mut b_stream).await;
    assert!(at_limit.created && !at_limit.canceled, "the third watcher: {at_limit:?}");

    // One past, on either stream.
    for (tx, responses) in [(&tx_b, &mut b_stream), (&tx_a, &mut a)] {
        tx.send(create("past")).await.unwrap();
        let refused = next(responses).await;
        assert!(refused.created && refused.canceled, "{refused:?}");
        assert_eq!((refused.watch_id, refused.cancel_reason.as_str()), (-1, TOO_MANY_ON_MEMBER));
    }

    // The watchers there are still work.
    let mut kv = server.kv().await;
    kv.put(put("b0", "seen")).await.unwrap();
    assert_eq!(next(&mut b_stream).await.watch_id, at_limit.watch_id);

    // A cancel gives one place back.
    tx_a.send(cancel(ids_a[0])).await.unwrap();
    assert!(next(&mut a).await.canceled);
    tx_b.send(create("b1")).await.unwrap();
    let room = next(&mut b_stream).await;
    assert!(room.created && !room.canceled, "{room:?}");

    // Ending stream A (one watcher left on it) gives its place back once the server sees the
    // stream end; until then creates are refused.
    drop(tx_a);
    drop(a);
    let mut taken = false;
    for _ in 0..300 {
        tx_b.send(create("b2")).await.unwrap();
        let answer = next(&mut b_stream).await;
        if !answer.canceled {
            taken = true;
            break;
        }
        assert_eq!(answer.cancel_reason, TOO_MANY_ON_MEMBER);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(taken, "the ended stream's watcher place came back within 30 s");
    tx_b.send(create("b3")).await.unwrap();
    assert!(next(&mut b_stream).await.canceled, "and the member is full again");
    still_serving(&mut kv).await;
    server.stop().await;
}
