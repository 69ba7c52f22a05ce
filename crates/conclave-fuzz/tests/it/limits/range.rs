//! A range's `limit` and `more`, as etcd answers them: `count` is every key in the range,
//! `kvs` at most `limit` of them, and `more` says whether the limit cut any off. A limit of 0
//! or below means none. Pagination — the next page starts after the last key, at the first
//! page's revision — sees every key exactly once even while writes go on. A server-side cap
//! (`max_range_keys`, off by default) pages ranges that ask for more.

use crate::support::{TestServer, b, put, still_serving};
use bytes::Bytes;
use conclave_etcd::Limits;
use conclave_etcd::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use conclave_etcd::pb::etcdserverpb::{
    RangeRequest, RequestOp, TxnRequest, request_op, response_op,
};

const KEYS: usize = 10;

fn key(i: usize) -> String {
    format!("page/{i:02}")
}

fn all_pages(limit: i64) -> RangeRequest {
    RangeRequest { key: b("page/"), range_end: b("page0"), limit, ..Default::default() }
}

fn keys_of(kvs: &[conclave_etcd::pb::mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

#[tokio::test]
async fn limit_count_and_more_around_the_number_of_keys() {
    let server = TestServer::start(Limits::default()).await;
    let mut kv = server.kv().await;
    for i in 0..KEYS {
        kv.put(put(&key(i), "v")).await.unwrap();
    }
    let n = KEYS as i64;
    // (limit, keys returned, more)
    let cases = [
        (0, KEYS, false),
        (-1, KEYS, false),
        (1, 1, true),
        (n - 1, KEYS - 1, true),
        (n, KEYS, false),
        (n + 1, KEYS, false),
        (i64::MAX, KEYS, false),
    ];
    for (limit, returned, more) in cases {
        let answer = kv.range(all_pages(limit)).await.unwrap().into_inner();
        assert_eq!(answer.kvs.len(), returned, "limit {limit}");
        assert_eq!(answer.more, more, "limit {limit}");
        assert_eq!(answer.count, n, "limit {limit}: count ignores the limit");
    }

    // count_only: no keys, the full count, nothing cut off.
    let answer =
        kv.range(RangeRequest { count_only: true, ..all_pages(3) }).await.unwrap().into_inner();
    assert_eq!((answer.kvs.len(), answer.count, answer.more), (0, n, false));

    // Sorting happens before the limit: the three largest keys, and more.
    let answer = kv
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Key as i32,
            keys_only: true,
            ..all_pages(3)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys_of(&answer.kvs), [key(9), key(8), key(7)]);
    assert!(answer.more);
    assert!(answer.kvs.iter().all(|kv| kv.value.is_empty()), "keys_only");
    server.stop().await;
}

#[tokio::test]
async fn pagination_sees_every_key_once_at_a_fixed_revision() {
    let server = TestServer::start(Limits::default()).await;
    let mut kv = server.kv().await;
    for i in 0..KEYS {
        kv.put(put(&key(i), "v")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut start = b("page/");
    let mut revision = 0;
    let mut pages = 0;
    loop {
        let page = kv
            .range(RangeRequest { key: start.clone(), revision, ..all_pages(3) })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        if revision == 0 {
            revision = page.header.unwrap().revision;
        }
        seen.extend(keys_of(&page.kvs));
        // A write between pages must not show up in the paginated read.
        kv.put(put(&format!("page/{pages:02}x"), "late")).await.unwrap();
        if !page.more {
            break;
        }
        let mut next = page.kvs.last().unwrap().key.to_vec();
        next.push(0);
        start = Bytes::from(next);
    }
    assert_eq!(pages, 4, "10 keys, 3 a page");
    assert_eq!(seen, (0..KEYS).map(key).collect::<Vec<_>>());
    server.stop().await;
}

/// `max_range_keys` (off by default: etcd has no cap, and etcdctl 3.4's `get --prefix` does not
/// page, so a default cap would silently cut its output): with a cap of C, a range that asks
/// for no limit or for more than C gets C keys and `more`, and `count` still counts every key;
/// a smaller limit is kept. Ranges inside a txn are capped the same way. A client that pages
/// still sees every key.
#[tokio::test]
async fn a_configured_cap_pages_ranges_that_ask_for_more() {
    const CAP: usize = 4;
    let server = TestServer::start(Limits { max_range_keys: CAP, ..Limits::default() }).await;
    let mut kv = server.kv().await;
    for i in 0..KEYS {
        kv.put(put(&key(i), "v")).await.unwrap();
    }
    let (n, cap) = (KEYS as i64, CAP as i64);
    // (limit, keys returned, more)
    let cases = [
        (0, CAP, true),
        (-1, CAP, true),
        (1, 1, true),
        (cap - 1, CAP - 1, true),
        (cap, CAP, true),
        (cap + 1, CAP, true),
        (n, CAP, true),
        (i64::MAX, CAP, true),
    ];
    for (limit, returned, more) in cases {
        let answer = kv.range(all_pages(limit)).await.unwrap().into_inner();
        assert_eq!(answer.kvs.len(), returned, "limit {limit}");
        assert_eq!(answer.more, more, "limit {limit}");
        assert_eq!(answer.count, n, "limit {limit}: count ignores the cap");
    }
    // A range with exactly the cap's number of keys, or fewer, is whole.
    let four = RangeRequest { key: b("page/00"), range_end: b("page/04"), ..Default::default() };
    let answer = kv.range(four).await.unwrap().into_inner();
    assert_eq!((answer.kvs.len(), answer.more, answer.count), (CAP, false, cap));
    let one = kv.range(RangeRequest { key: b("page/03"), ..Default::default() }).await.unwrap();
    assert_eq!(one.into_inner().kvs.len(), 1);
    // Counting is not capped.
    let counted =
        kv.range(RangeRequest { count_only: true, ..all_pages(0) }).await.unwrap().into_inner();
    assert_eq!((counted.kvs.len(), counted.count, counted.more), (0, n, false));

    // In a txn, read-only or writing.
    let range_op = RequestOp { request: Some(request_op::Request::RequestRange(all_pages(0))) };
    let write_op = RequestOp { request: Some(request_op::Request::RequestPut(put("other", "v"))) };
    for success in [vec![range_op.clone()], vec![range_op, write_op]] {
        let answer =
            kv.txn(TxnRequest { success, ..Default::default() }).await.unwrap().into_inner();
        let Some(response_op::Response::ResponseRange(range)) = &answer.responses[0].response
        else {
            panic!("a range response: {answer:?}")
        };
        assert_eq!((range.kvs.len(), range.more, range.count), (CAP, true, n));
    }

    // Paging through the cap sees every key once.
    let mut seen = Vec::new();
    let mut start = b("page/");
    loop {
        let page = kv
            .range(RangeRequest { key: start.clone(), ..all_pages(0) })
            .await
            .unwrap()
            .into_inner();
        seen.extend(keys_of(&page.kvs));
        if !page.more {
            break;
        }
        let mut next = page.kvs.last().unwrap().key.to_vec();
        next.push(0);
        start = Bytes::from(next);
    }
    assert_eq!(seen, (0..KEYS).map(key).collect::<Vec<_>>());
    still_serving(&mut kv).await;
    server.stop().await;
}
