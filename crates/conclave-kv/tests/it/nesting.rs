//! Nested txns are bounded while decoding: a command nested deeper than
//! [`MAX_TXN_NESTING`] levels is refused with a decode error naming the limit, however deep
//! it goes, instead of recursing until the stack overflows.

use conclave_core::StateMachine;
use conclave_kv::{
    Command, KvError, KvStore, MAX_TXN_NESTING, Output, PutRequest, RequestOp, TxnRequest,
};

/// A txn `depth` levels deep; the innermost puts one key.
fn nested(depth: usize) -> TxnRequest {
    let mut txn = TxnRequest {
        success: vec![RequestOp::Put(PutRequest::new("deep", "v"))],
        ..TxnRequest::default()
    };
    for _ in 1..depth {
        txn = TxnRequest { success: vec![RequestOp::Txn(txn)], ..TxnRequest::default() };
    }
    txn
}

/// The encoding of a command of `depth` txn levels (three bytes a level), written by hand so
/// that no deep value has to exist to build it.
fn nested_bytes(depth: usize) -> Vec<u8> {
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

fn too_deep() -> KvError {
    KvError::Decode(format!("txn nested deeper than {MAX_TXN_NESTING} levels"))
}

#[test]
fn at_the_limit_decodes_and_applies_one_past_is_refused() {
    assert_eq!(MAX_TXN_NESTING, 100);
    let at = Command::Txn(nested(MAX_TXN_NESTING));
    assert_eq!(Command::decode(&at.encode()), Ok(at.clone()));
    let mut store = KvStore::new();
    let output = Output::decode(&store.apply(1, Some(&at.encode()))).unwrap();
    assert_eq!(output.revision(), Some(2), "the innermost put applied: {output:?}");

    let past = Command::Txn(nested(MAX_TXN_NESTING + 1));
    assert_eq!(Command::decode(&past.encode()), Err(too_deep()));
    let output = Output::decode(&store.apply(2, Some(&past.encode()))).unwrap();
    assert_eq!(output, Output::Error(too_deep()));
    assert_eq!(store.current_revision(), 2, "a refused command changes nothing");

    // The hand-written encoding is the real one.
    assert_eq!(Command::Txn(nested_empty(3)).encode().to_vec(), nested_bytes(3));
}

/// `depth` levels of txns whose innermost is empty, as `nested_bytes` encodes them.
fn nested_empty(depth: usize) -> TxnRequest {
    let mut txn = TxnRequest::default();
    for _ in 1..depth {
        txn = TxnRequest { success: vec![RequestOp::Txn(txn)], ..TxnRequest::default() };
    }
    txn
}

#[test]
fn a_very_deep_command_fails_to_decode_on_a_small_stack() {
    // 100,000 levels, 300 KB: without the bound, decoding recursed once per level and
    // overflowed any thread's stack.
    let bytes = nested_bytes(100_000);
    let outcome = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let mut store = KvStore::new();
            let output = Output::decode(&store.apply(1, Some(&bytes))).unwrap();
            (Command::decode(&bytes), output)
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(outcome, (Err(too_deep()), Output::Error(too_deep())));
}

#[test]
fn outputs_are_bounded_the_same_way_and_the_count_resets() {
    let mut store = KvStore::new();
    let output = store.apply(1, Some(&Command::Txn(nested(MAX_TXN_NESTING)).encode()));
    let Ok(Output::Txn(response)) = Output::decode(&output) else { panic!("a txn output") };
    // One level deeper than anything the store answers.
    let deeper = Output::Txn(conclave_kv::TxnResponse {
        revision: 2,
        succeeded: true,
        responses: vec![conclave_kv::ResponseOp::Txn(response)],
    });
    assert_eq!(Output::decode(&deeper.encode()), Err(too_deep()));
    // A refusal leaves no count behind: the next decode at the limit works, and a plain error
    // is not mistaken for a nesting one.
    assert!(Output::decode(&output).is_ok());
    assert!(Command::decode(&nested_bytes(MAX_TXN_NESTING)).is_ok());
    assert_eq!(Command::decode(&nested_bytes(MAX_TXN_NESTING + 1)), Err(too_deep()));
    let garbage = Command::decode(&[9, 9, 9]).unwrap_err();
    assert_ne!(garbage, too_deep());
}
