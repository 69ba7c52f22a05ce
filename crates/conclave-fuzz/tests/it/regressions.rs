//! Bugs the fuzz targets found in other crates, fixed, and kept as regression tests with the
//! minimal inputs that showed them (the same inputs are seeds of the targets' corpus).
//!
//! The nesting test runs its input in a child process: should the bound ever go, the failure
//! is a stack overflow, an abort that would take this whole test binary with it.

use crate::child;
use conclave_core::{SnapshotMeta, StateMachine};
use conclave_kv::{Command, KvError, KvStore, MAX_TXN_NESTING, Output};

/// A command of `depth` txn levels, each nested in the success branch of the one before:
/// three bytes a level (the outermost is level 1).
pub fn nested_txn(depth: usize) -> Vec<u8> {
    // Command::Txn, then per nested level: no compares, one success op, RequestOp::Txn.
    let mut bytes = vec![2u8];
    for _ in 1..depth {
        bytes.extend_from_slice(&[0, 1, 3]);
    }
    // The innermost txn is empty; every level then closes with an empty failure branch.
    bytes.extend_from_slice(&[0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0u8, depth - 1));
    bytes
}

/// Sanity: the encoding above is what the real encoder writes, and it decodes up to the
/// store's nesting limit.
#[test]
fn nested_txn_bytes_are_a_real_encoding() {
    let command = Command::decode(&nested_txn(3)).unwrap();
    assert_eq!(command.encode().to_vec(), nested_txn(3));
    assert!(Command::decode(&nested_txn(MAX_TXN_NESTING)).is_ok());
}

/// Found by `kv_command` (conclave-kv): `Command::decode` recursed once per nested txn with no
/// depth limit, so ~30 KB of log entry data overflowed the 2 MiB stack of the node thread that
/// applies it — and every replica applies every committed entry, again after each restart, so
/// one such entry (proposed through any protocol's `Propose` forwarding by anyone who reaches
/// the peer port) crashed the whole cluster for good. Now decoding refuses nesting deeper than
/// `MAX_TXN_NESTING` with a `KvError::Decode` that names the limit, and the apply answers it
/// as an error output.
#[test]
fn deeply_nested_txn_is_refused_not_a_stack_overflow() {
    let output = child::run("regressions::decode_nested_txn_child", &[]);
    assert!(
        output.status.success(),
        "applying a 10,000-level nested txn (30 KB) did not end in a decode error\n{}",
        child::describe(&output)
    );
}

#[test]
#[ignore = "run by deeply_nested_txn_is_refused_not_a_stack_overflow in a child process"]
fn decode_nested_txn_child() {
    if !child::is_child() {
        return;
    }
    // What the apply loop does with a committed entry's command, on a thread with the node
    // thread's default stack: at the limit it applies, one past and far past it is refused.
    let applied = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut store = KvStore::new();
            [MAX_TXN_NESTING, MAX_TXN_NESTING + 1, 10_000]
                .map(|depth| Output::decode(&store.apply(1, Some(&nested_txn(depth)))).unwrap())
        })
        .unwrap()
        .join()
        .unwrap();
    let too_deep = KvError::Decode(format!("txn nested deeper than {MAX_TXN_NESTING} levels"));
    assert!(matches!(applied[0], Output::Txn(_)), "{:?}", applied[0]);
    assert_eq!(applied[1], Output::Error(too_deep.clone()));
    assert_eq!(applied[2], Output::Error(too_deep));
}

/// The 17-byte snapshot `kv_snapshot` found, generalised: the empty store's snapshot with its
/// revision set to `revision`.
pub fn snapshot_with_revision(revision: i64) -> Vec<u8> {
    let empty = KvStore::new().snapshot();
    // format byte, applied index 0, revision 1 (zigzag: 2), then the rest of the state.
    assert_eq!(&empty[1..3], &[0, 2], "the layout this test edits");
    let mut snapshot = empty[..2].to_vec();
    let mut zigzag = ((revision << 1) ^ (revision >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            snapshot.push(byte);
            break;
        }
        snapshot.push(byte | 0x80);
    }
    snapshot.extend_from_slice(&empty[3..]);
    snapshot
}

/// Found by `kv_snapshot` (conclave-kv, low severity): `KvStore::restore` took the revision
/// counter (and the lease-id draw counter) from the snapshot without checking that they can
/// still advance, so a snapshot whose revision was `i64::MAX` restored fine and the next write
/// overflowed — a panic in debug builds, a silent wrap to a negative revision in release. Now
/// restore validates the state (counters at most 2^62, so that no number of writes a store can
/// live to see overflows them; the key index against the records; leases against their keys)
/// and refuses it with an error naming the problem, leaving the store as it was.
#[test]
fn restored_counters_at_their_maximum_are_refused() {
    const HIGHEST: i64 = 1 << 62;
    let meta = SnapshotMeta { index: 5, ..SnapshotMeta::default() };
    let put = Command::Put(conclave_kv::PutRequest::new("k", "v")).encode();
    let mut store = KvStore::new();
    store.restore(&meta, &snapshot_with_revision(HIGHEST)).expect("the highest revision taken");
    let output = Output::decode(&store.apply(6, Some(&put))).unwrap();
    assert_eq!(output.revision(), Some(HIGHEST + 1));

    for revision in [HIGHEST + 1, i64::MAX] {
        let mut store = KvStore::new();
        let error = store.restore(&meta, &snapshot_with_revision(revision)).unwrap_err();
        assert_eq!(
            error,
            format!(
                "inconsistent kv snapshot: revision {revision} is outside 1..={HIGHEST}, where \
                 it can still advance"
            )
        );
        assert_eq!(store.current_revision(), 1, "the refused snapshot changed nothing");
        let output = Output::decode(&store.apply(6, Some(&put))).unwrap();
        assert_eq!(output.revision(), Some(2));
    }
}
