//! Compaction: history below the point is gone, everything at or above it is intact.

use conclave_kv::{Command, DeleteRangeRequest, EventKind, KvError, KvStore, Output, RangeRequest};

use crate::support::{b, delete, get_at, put};

fn compact(store: &mut KvStore, revision: i64) -> Output {
    store.apply_command(&Command::Compact { revision })
}

/// k: v1@2, v2@4, deleted@6, v3@8; gone: @3, deleted@5; stay: @7.
fn history() -> KvStore {
    let mut store = KvStore::new();
    put(&mut store, "k", "v1"); // 2
    put(&mut store, "gone", "g"); // 3
    put(&mut store, "k", "v2"); // 4
    delete(&mut store, DeleteRangeRequest::key(b("gone"))); // 5
    delete(&mut store, DeleteRangeRequest::key(b("k"))); // 6
    put(&mut store, "stay", "s"); // 7
    put(&mut store, "k", "v3"); // 8
    store
}

// Reference: etcd3 API, "Compaction": reads below the compaction revision fail with
// ErrCompacted; the latest version of each key at the revision is kept.
#[test]
fn reads_below_the_point_fail_and_reads_at_or_above_are_unchanged() {
    let mut store = history();
    let before: Vec<_> = (4..=8)
        .map(|rev| store.range(&RangeRequest::range(b("\0"), b("\0")).with_revision(rev)).unwrap())
        .collect();
    assert_eq!(compact(&mut store, 4), Output::Compact { revision: 8 });
    assert_eq!(store.compact_revision(), 4);
    assert_eq!(store.current_revision(), 8, "compaction creates no revision");
    let err = store.range(&RangeRequest::key(b("k")).with_revision(3)).unwrap_err();
    assert_eq!(err, KvError::Compacted);
    assert_eq!(err.to_string(), "mvcc: required revision has been compacted");
    for (rev, expected) in (4..=8).zip(&before) {
        let now = store.range(&RangeRequest::range(b("\0"), b("\0")).with_revision(rev)).unwrap();
        assert_eq!(&now, expected, "read at {rev}");
    }
    assert_eq!(get_at(&store, "k", 4).unwrap().version, 2);
}

#[test]
fn compacting_past_deletes_forgets_the_deleted_keys() {
    let mut store = history();
    compact(&mut store, 7);
    assert_eq!(get_at(&store, "gone", 7), None);
    assert_eq!(get_at(&store, "k", 7), None);
    assert_eq!(&get_at(&store, "k", 8).unwrap().value[..], b"v3");
    assert_eq!(&get_at(&store, "stay", 7).unwrap().value[..], b"s");
    compact(&mut store, 8);
    let all = store.range(&RangeRequest::range(b("\0"), b("\0"))).unwrap();
    assert_eq!(crate::support::keys(&all.kvs), ["k", "stay"]);
}

// Reference: etcd mvcc `Compact`: at or below the current compaction → ErrCompacted; above the
// current revision → ErrFutureRev.
#[test]
fn compaction_errors() {
    let mut store = history();
    assert_eq!(compact(&mut store, 0), Output::Error(KvError::Compacted));
    assert_eq!(compact(&mut store, 9), Output::Error(KvError::FutureRevision));
    assert_eq!(KvError::FutureRevision.to_string(), "mvcc: required revision is a future revision");
    assert!(matches!(compact(&mut store, 5), Output::Compact { .. }));
    assert_eq!(compact(&mut store, 5), Output::Error(KvError::Compacted));
    assert_eq!(compact(&mut store, 4), Output::Error(KvError::Compacted));
    // Compacting at the current revision is allowed.
    assert!(matches!(compact(&mut store, 8), Output::Compact { .. }));
}

// Reference: etcd3 API, "Watch": a watch may start at the compaction revision but not below it.
#[test]
fn watch_catch_up_respects_the_point() {
    let mut store = history();
    compact(&mut store, 5);
    assert_eq!(store.events_since(4, b"\0", b"\0"), Err(KvError::Compacted));
    let events = store.events_since(5, b"\0", b"\0").unwrap();
    let summary: Vec<_> = events.iter().map(|e| (e.kind, e.kv.mod_revision)).collect();
    assert_eq!(
        summary,
        [(EventKind::Delete, 5), (EventKind::Delete, 6), (EventKind::Put, 7), (EventKind::Put, 8)]
    );
    // The delete at 6 still carries the value it removed (kept as k's value at 5).
    assert_eq!(&events[1].prev_kv.as_ref().unwrap().value[..], b"v2");
}

/// The held bytes (what the space quota counts) follow every record in and out: puts and
/// deletes add theirs, compaction subtracts what it drops, and a restored store counts the same.
#[test]
fn held_bytes_follow_the_history() {
    use conclave_core::{SnapshotMeta, StateMachine};
    use conclave_kv::RECORD_OVERHEAD_BYTES as O;
    let mut store = history();
    // k:v1, gone:g, k:v2, gone (delete), k (delete), stay:s, k:v3.
    let held = (3 + O) + (5 + O) + (3 + O) + (4 + O) + (1 + O) + (5 + O) + (3 + O);
    assert_eq!(store.held_bytes(), held);
    compact(&mut store, 6);
    // Gone: k:v1@2, gone:g@3 and its delete@5. Kept: k:v2@4 (the newest put below the point),
    // k's delete@6, stay:s@7, k:v3@8.
    assert_eq!(store.held_bytes(), (3 + O) + (1 + O) + (5 + O) + (3 + O));
    let mut restored = KvStore::new();
    let meta = SnapshotMeta { index: 9, ..SnapshotMeta::default() };
    restored.restore(&meta, &store.snapshot()).unwrap();
    assert_eq!(restored.held_bytes(), store.held_bytes());
}
