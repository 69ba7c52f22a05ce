//! Events: what the listener hears after each write, and what watch catch-up replays.

use conclave_kv::{
    DeleteRangeRequest, Event, EventKind, KvStore, PutRequest, RequestOp, TxnRequest,
};
use std::sync::{Arc, Mutex};

use crate::support::{b, delete, put, put_req, txn};

type Heard = Arc<Mutex<Vec<(i64, Vec<Event>)>>>;

fn listening() -> (KvStore, Heard) {
    let mut store = KvStore::new();
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    store.set_event_listener(Box::new(move |rev, events| {
        sink.lock().unwrap().push((rev, events.to_vec()))
    }));
    (store, heard)
}

// Reference: etcd3 API, "Watch": events carry the new kv and, on request, the previous one.
#[test]
fn listener_hears_each_write_with_prev_kv() {
    let (mut s, heard) = listening();
    put(&mut s, "k", "1"); // 2
    put(&mut s, "k", "2"); // 3
    delete(&mut s, DeleteRangeRequest::key(b("k"))); // 4
    delete(&mut s, DeleteRangeRequest::key(b("k"))); // nothing: no event
    let _ = put_req(&mut s, PutRequest::new(b("k"), b("x")).with_lease(9)); // refused: no event
    let heard = heard.lock().unwrap();
    assert_eq!(heard.iter().map(|(rev, _)| *rev).collect::<Vec<_>>(), [2, 3, 4]);
    let [create] = &heard[0].1[..] else { panic!() };
    assert_eq!((create.kind, create.kv.version, create.prev_kv.clone()), (EventKind::Put, 1, None));
    let [update] = &heard[1].1[..] else { panic!() };
    assert_eq!(&update.prev_kv.as_ref().unwrap().value[..], b"1");
    let [removal] = &heard[2].1[..] else { panic!() };
    assert_eq!(removal.kind, EventKind::Delete);
    assert_eq!(
        (&removal.kv.key[..], removal.kv.mod_revision, removal.kv.version),
        (&b"k"[..], 4, 0)
    );
    assert_eq!(&removal.prev_kv.as_ref().unwrap().value[..], b"2");
}

#[test]
fn a_txn_is_one_notification_in_operation_order() {
    let (mut s, heard) = listening();
    put(&mut s, "z", "old");
    let req = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest::new(b("b"), b("1"))),
            RequestOp::DeleteRange(DeleteRangeRequest::key(b("z"))),
            RequestOp::Put(PutRequest::new(b("a"), b("1"))),
        ],
        ..TxnRequest::default()
    };
    txn(&mut s, req).unwrap();
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2);
    let (rev, events) = &heard[1];
    assert_eq!(*rev, 3);
    let order: Vec<_> =
        events.iter().map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision)).collect();
    assert_eq!(
        order,
        [(EventKind::Put, b("b"), 3), (EventKind::Delete, b("z"), 3), (EventKind::Put, b("a"), 3)]
    );
}

// Reference: etcd3 API, "Watch": a watch with start_revision replays history from there.
#[test]
fn catch_up_replays_what_the_listener_heard() {
    let (mut s, heard) = listening();
    put(&mut s, "a/1", "x");
    put(&mut s, "b", "x");
    put(&mut s, "a/2", "x");
    put(&mut s, "a/1", "y");
    delete(&mut s, DeleteRangeRequest::prefix(b("a/")));
    let all: Vec<Event> = heard.lock().unwrap().iter().flat_map(|(_, e)| e.clone()).collect();
    assert_eq!(s.events_since(1, b"\0", b"\0").unwrap(), all);
    let prefix_end = conclave_kv::prefix_range_end(b"a/");
    let a_since_4: Vec<Event> = all
        .iter()
        .filter(|e| e.kv.key.starts_with(b"a/") && e.kv.mod_revision >= 4)
        .cloned()
        .collect();
    assert_eq!(s.events_since(4, b"a/", &prefix_end).unwrap(), a_since_4);
    assert_eq!(a_since_4.len(), 4);
    assert_eq!(s.events_since(2, b"b", b"").unwrap().len(), 1);
    assert!(s.events_since(7, b"\0", b"\0").unwrap().is_empty());
    assert!(s.events_since(0, b"\0", b"\0").unwrap().is_empty());
}
