//! The store as a replicated state machine: encoded commands, malformed bytes, snapshots, and
//! determinism across replicas.

use bytes::Bytes;
use conclave_core::{SnapshotMeta, StateMachine};
use conclave_kv::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KvError, KvStore, Output,
    PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use std::sync::{Arc, Mutex};

use crate::support::b;

/// A workload touching every kind of command, including refused ones.
fn workload(round: i64) -> Vec<Command> {
    let key = |i: i64| b(&format!("key/{}", i % 7));
    let mut commands = vec![
        Command::LeaseGrant { id: 0, ttl: 10 },
        Command::LeaseGrant { id: 100 + round, ttl: 5 },
    ];
    for i in 0..20 {
        commands.push(Command::Put(PutRequest::new(key(i + round), b(&format!("v{i}")))));
    }
    commands.push(Command::Put(PutRequest::new(key(round), b("leased")).with_lease(100 + round)));
    commands.push(Command::DeleteRange(DeleteRangeRequest::key(key(3))));
    commands.push(Command::Txn(TxnRequest {
        compare: vec![Compare::new(key(1), CompareResult::Greater, CompareTarget::Version(1))],
        success: vec![
            RequestOp::Put(PutRequest::new(b("txn"), b("yes"))),
            RequestOp::Range(RangeRequest::prefix(b("key/"))),
        ],
        failure: vec![RequestOp::DeleteRange(DeleteRangeRequest::prefix(b("key/")))],
    }));
    commands.push(Command::Compact { revision: 3 + round * 10 });
    commands.push(Command::Put(PutRequest::new(b("bad"), b("x")).with_lease(-1)));
    commands.push(Command::LeaseCheckpoint { id: 100 + round, remaining_ttl: 2 });
    if round % 2 == 1 {
        commands.push(Command::LeaseRevoke { id: 100 + round - 1 });
    }
    commands
}

fn apply_all(store: &mut KvStore, commands: &[Command], first_index: u64) -> Vec<Bytes> {
    commands
        .iter()
        .enumerate()
        .map(|(i, c)| store.apply(first_index + i as u64, Some(&c.encode())))
        .collect()
}

// Reference: Raft §7 (log compaction): a snapshot replaces the log prefix, so a replica restored
// from it must behave exactly like one that applied the prefix.
#[test]
fn restore_gives_identical_state_and_future_behaviour() {
    let mut original = KvStore::new();
    let mut index = 1;
    for round in 0..3 {
        let commands = workload(round);
        apply_all(&mut original, &commands, index);
        index += commands.len() as u64;
    }
    let snapshot = original.snapshot();
    let meta = SnapshotMeta { index: original.applied_index(), ..SnapshotMeta::default() };
    let mut restored = KvStore::new();
    restored.restore(&meta, &snapshot).unwrap();
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.applied_index(), original.applied_index());
    assert_eq!(restored.current_revision(), original.current_revision());
    assert_eq!(restored.compact_revision(), original.compact_revision());
    assert_eq!(restored.leases(), original.leases());

    let later = workload(3);
    let a = apply_all(&mut original, &later, index);
    let b_out = apply_all(&mut restored, &later, index);
    assert_eq!(a, b_out);
    assert_eq!(original.snapshot(), restored.snapshot());
    let all = RangeRequest::range(b("\0"), b("\0"));
    assert_eq!(original.range(&all), restored.range(&all));
    let from = original.compact_revision();
    assert_eq!(
        original.events_since(from, b"\0", b"\0"),
        restored.events_since(from, b"\0", b"\0")
    );
}

#[test]
fn same_commands_same_snapshot_bytes() {
    let run = || {
        let mut store = KvStore::new();
        let mut index = 1;
        for round in 0..4 {
            let commands = workload(round);
            apply_all(&mut store, &commands, index);
            index += commands.len() as u64;
        }
        store.snapshot()
    };
    assert_eq!(run(), run());
}

#[test]
fn malformed_bytes_are_an_error_output_not_a_panic() {
    let mut store = KvStore::new();
    let before = store.snapshot();
    for garbage in [&b""[..], b"\xff\xff\xff\xff\xff", b"\x00", b"\x07garbage", &[0u8; 64]] {
        let out = Output::decode(&store.apply(1, Some(garbage))).unwrap();
        assert!(matches!(out, Output::Error(KvError::Decode(_))), "{garbage:?} gave {out:?}");
    }
    // A valid command followed by trailing bytes is refused too.
    let mut bytes = Command::Compact { revision: 1 }.encode().to_vec();
    bytes.push(0);
    let out = Output::decode(&store.apply(2, Some(&bytes))).unwrap();
    assert!(matches!(out, Output::Error(KvError::Decode(_))));
    assert_eq!(store.applied_index(), 2);
    // Nothing changed but the applied index.
    let mut untouched = KvStore::new();
    untouched.apply(2, None);
    assert_eq!(store.snapshot(), untouched.snapshot());
    assert_ne!(store.snapshot(), before);
    assert!(store.apply(3, None).is_empty());
    assert_eq!(store.applied_index(), 3);
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn outputs_round_trip() {
    let mut store = KvStore::new();
    let out = store.apply(1, Some(&Command::Put(PutRequest::new(b("k"), b("v"))).encode()));
    let Output::Put(resp) = Output::decode(&out).unwrap() else { panic!() };
    assert_eq!(resp.revision, 2);
    let e = Output::Error(KvError::Decode("x".into()));
    assert_eq!(Output::decode(&e.encode()), Ok(e));
    assert!(matches!(Output::decode(b"\xff"), Err(KvError::Decode(_))));
    let c = Command::LeaseGrant { id: 0, ttl: 5 };
    assert_eq!(Command::decode(&c.encode()), Ok(c));
}

#[test]
fn restore_refuses_garbage_and_keeps_the_listener() {
    let mut store = KvStore::new();
    let meta = SnapshotMeta::default();
    assert!(store.restore(&meta, b"").is_err());
    assert!(store.restore(&meta, b"\x09abc").is_err());
    assert!(store.restore(&meta, b"\x01\xff\xff").is_err());
    // Format 2 claiming 2^32 - 1 keys in four bytes: an error, not an allocation for them all
    // (which would abort the process).
    let huge = b"\x02\x00\x02\x00\xff\xff\xff\xff\x0f";
    let error = store.restore(&meta, huge).unwrap_err();
    assert!(error.starts_with("malformed kv snapshot"), "{error}");

    let heard = Arc::new(Mutex::new(0));
    let sink = heard.clone();
    store.set_event_listener(Box::new(move |_, events| *sink.lock().unwrap() += events.len()));
    let donor = KvStore::new();
    store
        .restore(&SnapshotMeta { index: 5, ..SnapshotMeta::default() }, &donor.snapshot())
        .unwrap();
    assert_eq!(store.applied_index(), 5);
    store.apply_command(&Command::Put(PutRequest::new(b("k"), b("v"))));
    assert_eq!(*heard.lock().unwrap(), 1);
}

// A frozen state encodes, later and on another thread, exactly what a snapshot taken at the
// moment of freezing holds, whatever the store applied meanwhile.
#[test]
fn a_frozen_state_encodes_the_snapshot_of_its_moment() {
    let mut store = KvStore::new();
    let first = workload(0);
    apply_all(&mut store, &first, 1);
    let expected = store.snapshot();
    let frozen = store.frozen().expect("the key-value store freezes cheaply");

    let more = workload(1);
    apply_all(&mut store, &more, 1 + first.len() as u64);
    assert_ne!(store.snapshot(), expected, "the store moved on");

    let encoded = std::thread::spawn(frozen).join().expect("encoding does not panic");
    assert_eq!(encoded, expected);
}
