//! Hand-built histories with known anomalies.
//!
//! Reference: Herlihy and Wing, "Linearizability" §3 (a read must see every write that
//! precedes it in real time); Jepsen's anomaly vocabulary for stale reads and lost updates.

use super::*;

fn op(client: u64, call: Call, span: (u64, Option<u64>), output: Option<Output>) -> Operation {
    Operation { client, key: "k".into(), call, invoked_at: span.0, completed_at: span.1, output }
}

fn put(c: u64, v: &str, inv: u64, ret: u64) -> Operation {
    op(c, Call::Put { value: v.into() }, (inv, Some(ret)), Some(Output::Put))
}

fn put_unknown(c: u64, v: &str, inv: u64) -> Operation {
    op(c, Call::Put { value: v.into() }, (inv, None), None)
}

fn get(c: u64, v: Option<&str>, inv: u64, ret: u64) -> Operation {
    op(c, Call::Get, (inv, Some(ret)), Some(Output::Get { value: v.map(String::from) }))
}

fn cas(c: u64, from: Option<&str>, to: &str, ok: bool, inv: u64, ret: u64) -> Operation {
    let call = Call::Cas { expected: from.map(String::from), new: to.into() };
    op(c, call, (inv, Some(ret)), Some(Output::Cas { succeeded: ok }))
}

fn history(ops: Vec<Operation>) -> History {
    History { initial: Default::default(), operations: ops }
}

#[test]
fn a_read_older_than_a_completed_write_is_stale() {
    let h = history(vec![put(1, "a", 0, 10), put(1, "b", 20, 30), get(2, Some("a"), 40, 50)]);
    assert_eq!(stale_reads(&h).0, 1);
    assert_eq!(check_linearizability(&h, 100_000).violations, 1);
    // Absent after a completed write is stale too.
    let h = history(vec![put(1, "a", 0, 10), get(2, None, 20, 30)]);
    assert_eq!(stale_reads(&h).0, 1);
}

#[test]
fn concurrent_and_unknown_writes_never_make_a_read_stale() {
    // b overlaps the read: seeing a is fine.
    let h = history(vec![put(1, "a", 0, 10), put(1, "b", 20, 60), get(2, Some("a"), 40, 50)]);
    assert_eq!(stale_reads(&h).0, 0);
    // A timed-out write may land late: reading its value is not stale, and it proves nothing.
    let h = history(vec![
        put(1, "a", 0, 10),
        put_unknown(3, "x", 5),
        get(2, Some("x"), 40, 50),
        get(2, Some("a"), 60, 70),
    ]);
    assert_eq!(stale_reads(&h).0, 0);
}

#[test]
fn two_swaps_from_one_value_lose_an_update() {
    let h = history(vec![
        put(1, "a", 0, 10),
        cas(2, Some("a"), "b", true, 20, 30),
        cas(3, Some("a"), "c", true, 40, 50),
        get(1, Some("c"), 60, 70),
    ]);
    let (lost, listed) = lost_updates(&h, None);
    assert_eq!(lost, 1);
    assert_eq!(listed[0].kind, "lost-update");
    assert_eq!(listed[0].operations.len(), 2);
    assert_eq!(check_linearizability(&h, 100_000).violations, 1);
}

#[test]
fn an_older_survivor_loses_the_newer_writes() {
    // Last-writer-wins with a skewed clock: b was written after a, yet a survives.
    let h = history(vec![put(1, "a", 0, 10), put(2, "b", 20, 30)]);
    let state: BTreeMap<String, String> = [("k".to_string(), "a".to_string())].into();
    assert_eq!(lost_updates(&h, Some(&state)).0, 1);
    let state: BTreeMap<String, String> = [("k".to_string(), "b".to_string())].into();
    assert_eq!(lost_updates(&h, Some(&state)).0, 0);
    // Concurrent writes may end either way.
    let h = history(vec![put(1, "a", 0, 30), put(2, "b", 20, 40)]);
    let state: BTreeMap<String, String> = [("k".to_string(), "a".to_string())].into();
    assert_eq!(lost_updates(&h, Some(&state)).0, 0);
    // Everything gone: every acknowledged write is lost.
    assert_eq!(lost_updates(&h, Some(&BTreeMap::new())).0, 2);
}

#[test]
fn every_violating_key_is_reported() {
    let mut ops = vec![put(1, "a", 0, 10), get(2, None, 20, 30)];
    let mut other = ops.clone();
    for o in &mut other {
        o.key = "j".into();
    }
    ops.extend(other);
    ops.push(Operation { key: "fine".into(), ..put(1, "z", 0, 1) });
    let findings = check_linearizability(&history(ops), 100_000);
    assert_eq!((findings.keys_checked, findings.violations), (3, 2));
    assert!(
        findings.anomalies.iter().all(|a| a.kind == "not-linearizable" && !a.operations.is_empty())
    );
}
