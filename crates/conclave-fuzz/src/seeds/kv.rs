//! Seeds for the state machine's decoders: encoded commands, the outputs applying them gave,
//! and snapshots of stores at several points of a history (leases, deletions, compaction).

use crate::runner::Seed;
use conclave_core::StateMachine;
use conclave_kv::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KvStore, MAX_TXN_NESTING,
    PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest,
};

/// One of every command shape clients and the server's lease keeper send.
pub fn commands() -> Vec<(String, Command)> {
    let nested = TxnRequest {
        compare: vec![Compare::new("b", CompareResult::Greater, CompareTarget::Mod(1))],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest::key("b").with_prev_kv())],
        failure: vec![RequestOp::Range(RangeRequest::key("b"))],
    };
    let txn = TxnRequest {
        compare: vec![
            Compare::new("a", CompareResult::Equal, CompareTarget::Value("1".into())),
            Compare::new("a", CompareResult::NotEqual, CompareTarget::Version(0)),
            Compare::new("a", CompareResult::Less, CompareTarget::Create(100)),
            Compare::new("a", CompareResult::Equal, CompareTarget::Lease(0)).with_range_end("b"),
        ],
        success: vec![
            RequestOp::Put(PutRequest::new("a", "2").with_prev_kv()),
            RequestOp::Range(
                RangeRequest::prefix("a")
                    .with_limit(2)
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
            RequestOp::Txn(nested),
        ],
        failure: vec![RequestOp::Put(PutRequest::new("a", "1"))],
    };
    vec![
        ("put".into(), Command::Put(PutRequest::new("a", "1"))),
        ("put-prev-kv".into(), Command::Put(PutRequest::new("b", "x").with_prev_kv())),
        ("put-lease".into(), Command::Put(PutRequest::new("leased", "v").with_lease(7))),
        ("grant".into(), Command::LeaseGrant { id: 7, ttl: 60 }),
        ("grant-any-id".into(), Command::LeaseGrant { id: 0, ttl: 5 }),
        ("checkpoint".into(), Command::LeaseCheckpoint { id: 7, remaining_ttl: 30 }),
        ("txn".into(), Command::Txn(txn)),
        ("delete-prefix".into(), Command::DeleteRange(DeleteRangeRequest::prefix("b"))),
        ("delete-range".into(), Command::DeleteRange(DeleteRangeRequest::range("a", "z"))),
        ("revoke".into(), Command::LeaseRevoke { id: 7 }),
        ("compact".into(), Command::Compact { revision: 3 }),
    ]
}

pub fn command_seeds() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = commands()
        .into_iter()
        .map(|(name, command)| Seed { name, bytes: command.encode().to_vec() })
        .collect();
    // The bug the target found: txns nested past the store's limit (then a stack overflow).
    let deepest = Command::Txn(nested_txn(MAX_TXN_NESTING));
    seeds.push(Seed { name: "txn-nested-at-limit".into(), bytes: deepest.encode().to_vec() });
    let too_deep = Command::Txn(nested_txn(MAX_TXN_NESTING + 1));
    seeds.push(Seed {
        name: format!("{REFUSED}txn-nested-past-limit"),
        bytes: too_deep.encode().to_vec(),
    });
    seeds
}

/// Seeds whose names start with this are inputs a fixed bug once got wrong: the target must
/// refuse them, and the corpus test checks that it does.
pub const REFUSED: &str = "refused-";

/// A txn `depth` levels deep whose innermost level puts a key.
pub fn nested_txn(depth: usize) -> TxnRequest {
    let mut txn = TxnRequest {
        success: vec![RequestOp::Put(PutRequest::new("deep", "v"))],
        ..TxnRequest::default()
    };
    for _ in 1..depth {
        txn = TxnRequest { success: vec![RequestOp::Txn(txn)], ..TxnRequest::default() };
    }
    txn
}

/// The outputs of applying every command in order, errors included.
pub fn output_seeds() -> Vec<Seed> {
    let mut store = KvStore::new();
    let mut seeds: Vec<Seed> = commands()
        .into_iter()
        .enumerate()
        .map(|(i, (name, command))| {
            let output = store.apply(i as u64 + 1, Some(&command.encode()));
            Seed { name: format!("after-{name}"), bytes: output.to_vec() }
        })
        .collect();
    // A refused command's output: compacting what is already compacted.
    let refused = store.apply(100, Some(&Command::Compact { revision: 1 }.encode()));
    seeds.push(Seed { name: "error-compacted".into(), bytes: refused.to_vec() });
    seeds
}

/// Snapshots of a store: empty, mid-history, and after leases and compaction.
pub fn snapshot_seeds() -> Vec<Seed> {
    let mut store = KvStore::new();
    let mut seeds = vec![Seed { name: "empty".into(), bytes: store.snapshot().to_vec() }];
    for (i, (name, command)) in commands().into_iter().enumerate() {
        store.apply(i as u64 + 1, Some(&command.encode()));
        if matches!(name.as_str(), "put-lease" | "txn" | "compact") {
            seeds.push(Seed { name: format!("after-{name}"), bytes: store.snapshot().to_vec() });
        }
    }
    // The bug the target found: a revision that cannot advance restored, and the next write
    // overflowed. The highest revision a snapshot may hold, and one past it.
    for (name, revision) in [("revision-highest", 1i64 << 62), ("refused-revision-max", i64::MAX)] {
        seeds.push(Seed { name: name.into(), bytes: with_revision(&seeds[0].bytes, revision) });
    }
    seeds
}

/// The empty store's snapshot with its revision replaced: format byte, applied index 0, then
/// the revision as a zigzag varint (1 encodes as the single byte 2).
fn with_revision(empty: &[u8], revision: i64) -> Vec<u8> {
    assert_eq!(&empty[1..3], &[0, 2], "the empty snapshot's layout");
    let mut bytes = empty[..2].to_vec();
    let mut zigzag = ((revision << 1) ^ (revision >> 63)) as u64;
    while zigzag >= 0x80 {
        bytes.push(zigzag as u8 | 0x80);
        zigzag >>= 7;
    }
    bytes.push(zigzag as u8);
    bytes.extend_from_slice(&empty[3..]);
    bytes
}
