//! Range: key selection, limits and counts, sorting, filters, and reads at old revisions.

use conclave_kv::{DeleteRangeRequest, KvError, KvStore, RangeRequest, SortOrder, SortTarget};

use crate::support::{b, delete, get_at, keys, put};

fn store_with(keys: &[&str]) -> KvStore {
    let mut store = KvStore::new();
    for key in keys {
        put(&mut store, key, &format!("v-{key}"));
    }
    store
}

fn range_keys(store: &KvStore, req: RangeRequest) -> Vec<String> {
    keys(&store.range(&req).unwrap().kvs)
}

// Reference: rpc.proto, RangeRequest.range_end: empty for one key, "\0" for every key >= key,
// otherwise [key, range_end); etcdctl's --prefix sends the prefix with its last byte + 1.
#[test]
fn key_selection_follows_range_end() {
    let store = store_with(&["a", "ab", "abc", "b", "c", "d"]);
    assert_eq!(range_keys(&store, RangeRequest::key(b("ab"))), ["ab"]);
    assert_eq!(range_keys(&store, RangeRequest::key(b("zz"))), Vec::<String>::new());
    assert_eq!(range_keys(&store, RangeRequest::range(b("ab"), b("c"))), ["ab", "abc", "b"]);
    assert_eq!(range_keys(&store, RangeRequest::prefix(b("ab"))), ["ab", "abc"]);
    assert_eq!(range_keys(&store, RangeRequest::range(b("b"), b("\0"))), ["b", "c", "d"]);
    assert_eq!(range_keys(&store, RangeRequest::range(b("\0"), b("\0"))).len(), 6);
    // An inverted interval selects nothing (and must not panic).
    assert_eq!(range_keys(&store, RangeRequest::range(b("d"), b("a"))), Vec::<String>::new());
    assert_eq!(store.range(&RangeRequest::key(b(""))), Err(KvError::EmptyKey));
}

#[test]
fn prefix_handles_0xff_bytes() {
    let mut store = KvStore::new();
    for key in [&b"a\xff"[..], b"a\xff\x01", b"b"] {
        crate::support::put_req(&mut store, conclave_kv::PutRequest::new(key.to_vec(), b("v")))
            .unwrap();
    }
    let resp = store.range(&RangeRequest::prefix(b"a\xff".to_vec())).unwrap();
    assert_eq!(resp.count, 2);
}

// Reference: rpc.proto, RangeResponse: `more` when the limit cut keys off, `count` of every key
// in the range.
#[test]
fn limit_more_and_count() {
    let store = store_with(&["k1", "k2", "k3", "k4", "k5"]);
    let resp = store.range(&RangeRequest::prefix(b("k")).with_limit(2)).unwrap();
    assert_eq!(keys(&resp.kvs), ["k1", "k2"]);
    assert!(resp.more);
    assert_eq!(resp.count, 5);
    let resp = store.range(&RangeRequest::prefix(b("k")).with_limit(5)).unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (5, false, 5));
    let resp = store.range(&RangeRequest::prefix(b("k")).with_limit(0)).unwrap();
    assert_eq!((resp.kvs.len(), resp.more), (5, false));

    let count_only = RangeRequest { count_only: true, ..RangeRequest::prefix(b("k")) };
    let resp = store.range(&count_only).unwrap();
    assert_eq!((resp.kvs.len(), resp.count, resp.more), (0, 5, false));

    let keys_only = RangeRequest { keys_only: true, ..RangeRequest::prefix(b("k")).with_limit(1) };
    let resp = store.range(&keys_only).unwrap();
    assert_eq!(keys(&resp.kvs), ["k1"]);
    assert!(resp.kvs[0].value.is_empty());
    assert_eq!(resp.kvs[0].version, 1);
}

// Reference: rpc.proto, RangeRequest.SortOrder/SortTarget; etcd sorts ascending when only a
// non-key target is given.
#[test]
fn sorting() {
    let mut store = KvStore::new();
    put(&mut store, "b", "3"); // rev 2
    put(&mut store, "a", "1"); // rev 3
    put(&mut store, "c", "2"); // rev 4
    put(&mut store, "a", "9"); // rev 5: a has version 2, mod 5
    let sorted =
        |target, order| range_keys(&store, RangeRequest::prefix(b("")).with_sort(target, order));
    assert_eq!(sorted(SortTarget::Key, SortOrder::None), ["a", "b", "c"]);
    assert_eq!(sorted(SortTarget::Key, SortOrder::Descend), ["c", "b", "a"]);
    assert_eq!(sorted(SortTarget::Create, SortOrder::Ascend), ["b", "a", "c"]);
    assert_eq!(sorted(SortTarget::Create, SortOrder::None), ["b", "a", "c"]);
    assert_eq!(sorted(SortTarget::Mod, SortOrder::Descend), ["a", "c", "b"]);
    assert_eq!(sorted(SortTarget::Value, SortOrder::Ascend), ["c", "b", "a"]);
    // Ties on the target are broken by key, and descending is the exact reverse.
    assert_eq!(sorted(SortTarget::Version, SortOrder::Ascend), ["b", "c", "a"]);
    assert_eq!(sorted(SortTarget::Version, SortOrder::Descend), ["a", "c", "b"]);
    // The limit applies after sorting.
    let req =
        RangeRequest::prefix(b("")).with_sort(SortTarget::Mod, SortOrder::Descend).with_limit(1);
    let resp = store.range(&req).unwrap();
    assert_eq!((keys(&resp.kvs), resp.more, resp.count), (vec!["a".to_string()], true, 3));
}

// Reference: rpc.proto, RangeRequest.min/max_mod/create_revision.
#[test]
fn revision_filters_prune_kvs_but_not_count() {
    let mut store = KvStore::new();
    for key in ["a", "b", "c", "d"] {
        put(&mut store, key, "v"); // revs 2..=5
    }
    put(&mut store, "a", "w"); // rev 6
    let req = RangeRequest { min_mod_revision: 4, ..RangeRequest::prefix(b("")) };
    let resp = store.range(&req).unwrap();
    assert_eq!((keys(&resp.kvs), resp.count), (vec!["a".into(), "c".into(), "d".into()], 4));
    let req = RangeRequest {
        max_create_revision: 3,
        min_create_revision: 3,
        ..RangeRequest::prefix(b(""))
    };
    assert_eq!(range_keys(&store, req), ["b"]);
    let req = RangeRequest { max_mod_revision: 3, ..RangeRequest::prefix(b("")).with_limit(1) };
    let resp = store.range(&req).unwrap();
    assert_eq!((keys(&resp.kvs), resp.more), (vec!["b".to_string()], false));
}

// Reference: etcd3 API, "Range": a read at an old revision sees the store as it was then; the
// header revision stays the current one.
#[test]
fn historical_reads() {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1"); // 2
    put(&mut store, "other", "x"); // 3
    put(&mut store, "k", "v2"); // 4
    delete(&mut store, DeleteRangeRequest::key(b("k"))); // 5
    put(&mut store, "k", "v3"); // 6
    assert_eq!(get_at(&store, "k", 1), None);
    let at = |rev| {
        get_at(&store, "k", rev)
            .map(|kv| (String::from_utf8(kv.value.to_vec()).unwrap(), kv.version))
    };
    assert_eq!(at(2), Some(("v1".into(), 1)));
    assert_eq!(at(3), Some(("v1".into(), 1)));
    assert_eq!(at(4), Some(("v2".into(), 2)));
    assert_eq!(at(5), None);
    assert_eq!(at(6), Some(("v3".into(), 1)));
    let resp = store.range(&RangeRequest::prefix(b("")).with_revision(3)).unwrap();
    assert_eq!((resp.revision, resp.count), (6, 2));
    assert_eq!(
        store.range(&RangeRequest::key(b("k")).with_revision(7)),
        Err(KvError::FutureRevision)
    );
}
