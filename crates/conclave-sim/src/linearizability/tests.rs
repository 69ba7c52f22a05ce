//! Hand-written histories with known answers, and generated ones for speed.
//!
//! Reference: Herlihy and Wing, "Linearizability" §3 (definition, locality); Wing and Gong
//! (the search); Lowe, "Testing for linearizability" §4 (memoization).

use super::*;
use conclave_core::DetRng;

fn op(
    client: u64,
    key: &str,
    call: Call,
    span: (u64, Option<u64>),
    output: Option<Output>,
) -> Operation {
    Operation { client, key: key.into(), call, invoked_at: span.0, completed_at: span.1, output }
}

fn put(c: u64, v: &str, inv: u64, ret: u64) -> Operation {
    op(c, "k", Call::Put { value: v.into() }, (inv, Some(ret)), Some(Output::Put))
}

fn put_lost(c: u64, v: &str, inv: u64) -> Operation {
    op(c, "k", Call::Put { value: v.into() }, (inv, None), None)
}

fn get(c: u64, v: Option<&str>, inv: u64, ret: u64) -> Operation {
    let value = v.map(String::from);
    op(c, "k", Call::Get, (inv, Some(ret)), Some(Output::Get { value }))
}

fn del(c: u64, inv: u64, ret: u64) -> Operation {
    op(c, "k", Call::Delete, (inv, Some(ret)), Some(Output::Delete))
}

fn cas(c: u64, expected: Option<&str>, new: &str, ok: bool, inv: u64, ret: u64) -> Operation {
    let call = Call::Cas { expected: expected.map(String::from), new: new.into() };
    op(c, "k", call, (inv, Some(ret)), Some(Output::Cas { succeeded: ok }))
}

fn cas_lost(c: u64, expected: Option<&str>, new: &str, inv: u64) -> Operation {
    let call = Call::Cas { expected: expected.map(String::from), new: new.into() };
    op(c, "k", call, (inv, None), None)
}

fn verdict(ops: Vec<Operation>) -> Verdict {
    check(&History { initial: Default::default(), operations: ops }).expect("well formed")
}

#[test]
fn table_of_histories() {
    let table: Vec<(&str, Vec<Operation>, bool)> = vec![
        ("empty", vec![], true),
        ("read of an absent key", vec![get(1, None, 0, 1)], true),
        ("sequential put then read", vec![put(1, "a", 0, 1), get(2, Some("a"), 2, 3)], true),
        ("stale read after a completed put", vec![put(1, "a", 0, 1), get(2, None, 2, 3)], false),
        ("read of a value never written", vec![get(1, Some("x"), 0, 1)], false),
        (
            "read concurrent with a put sees the old value",
            vec![put(1, "a", 0, 1), put(1, "b", 2, 6), get(2, Some("a"), 3, 4)],
            true,
        ),
        (
            "read concurrent with a put sees the new value",
            vec![put(1, "a", 0, 1), put(1, "b", 2, 6), get(2, Some("b"), 3, 4)],
            true,
        ),
        (
            "touching intervals count as concurrent",
            vec![put(1, "a", 0, 5), get(2, None, 5, 6)],
            true,
        ),
        (
            "concurrent puts seen in one order by sequential reads",
            vec![
                put(1, "a", 0, 10),
                put(2, "b", 0, 10),
                get(3, Some("a"), 11, 12),
                get(3, Some("a"), 13, 14),
            ],
            true,
        ),
        (
            "concurrent puts seen in both orders (a value comes back)",
            vec![
                put(1, "a", 0, 10),
                put(2, "b", 0, 10),
                get(3, Some("a"), 1, 2),
                get(3, Some("b"), 3, 4),
                get(3, Some("a"), 5, 6),
            ],
            false,
        ),
        (
            "stale read: an older value after a newer one completed",
            vec![put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, Some("a"), 4, 5)],
            false,
        ),
        (
            "stale read from a deposed leader while the new one wrote",
            vec![
                put(1, "a", 0, 1),
                get(2, Some("a"), 2, 3),
                put(1, "b", 4, 5),
                get(2, Some("a"), 6, 7),
            ],
            false,
        ),
        (
            "timed-out put that took effect",
            vec![put(1, "a", 0, 1), put_lost(2, "x", 2), get(3, Some("x"), 10, 11)],
            true,
        ),
        (
            "timed-out put that never took effect",
            vec![put(1, "a", 0, 1), put_lost(2, "x", 2), get(3, Some("a"), 10, 11)],
            true,
        ),
        (
            "timed-out put that took effect late",
            vec![put_lost(2, "x", 0), get(3, None, 10, 11), get(3, Some("x"), 12, 13)],
            true,
        ),
        (
            "timed-out put cannot take effect before its invocation",
            vec![get(3, Some("x"), 0, 1), put_lost(2, "x", 5)],
            false,
        ),
        (
            "timed-out put cannot take effect twice",
            vec![
                put_lost(2, "x", 0),
                get(3, Some("x"), 10, 11),
                put(1, "a", 12, 13),
                get(3, Some("x"), 14, 15),
            ],
            false,
        ),
        (
            "successful compare-and-swap",
            vec![put(1, "a", 0, 1), cas(2, Some("a"), "b", true, 2, 3), get(3, Some("b"), 4, 5)],
            true,
        ),
        (
            "compare-and-swap that should have succeeded",
            vec![put(1, "a", 0, 1), cas(2, Some("a"), "b", false, 2, 3)],
            false,
        ),
        (
            "compare-and-swap that should have failed",
            vec![put(1, "a", 0, 1), cas(2, Some("z"), "b", true, 2, 3)],
            false,
        ),
        (
            "failed compare-and-swap explained by a concurrent put",
            vec![put(1, "a", 0, 1), put(1, "c", 2, 8), cas(2, Some("a"), "b", false, 3, 4)],
            true,
        ),
        (
            "failed compare-and-swap explained by a timed-out put",
            vec![put(1, "a", 0, 1), put_lost(3, "x", 2), cas(2, Some("a"), "b", false, 5, 6)],
            true,
        ),
        (
            "create-if-absent succeeds once",
            vec![cas(1, None, "a", true, 0, 1), cas(2, None, "b", false, 2, 3)],
            true,
        ),
        (
            "create-if-absent cannot succeed twice",
            vec![cas(1, None, "a", true, 0, 1), cas(2, None, "b", true, 2, 3)],
            false,
        ),
        (
            "concurrent creates: exactly one may win",
            vec![cas(1, None, "a", true, 0, 5), cas(2, None, "b", true, 0, 5)],
            false,
        ),
        (
            "timed-out compare-and-swap that took effect",
            vec![put(1, "a", 0, 1), cas_lost(2, Some("a"), "b", 2), get(3, Some("b"), 9, 10)],
            true,
        ),
        (
            "timed-out compare-and-swap that never took effect",
            vec![put(1, "a", 0, 1), cas_lost(2, Some("a"), "b", 2), get(3, Some("a"), 9, 10)],
            true,
        ),
        (
            "timed-out compare-and-swap whose comparison could not hold",
            vec![put(1, "a", 0, 1), cas_lost(2, Some("z"), "b", 2), get(3, Some("b"), 9, 10)],
            false,
        ),
        (
            "delete then read absent",
            vec![put(1, "a", 0, 1), del(1, 2, 3), get(2, None, 4, 5)],
            true,
        ),
        (
            "read of a deleted value",
            vec![put(1, "a", 0, 1), del(1, 2, 3), get(2, Some("a"), 4, 5)],
            false,
        ),
    ];
    for (name, ops, linearizable) in table {
        let v = verdict(ops);
        assert_eq!(v.is_linearizable(), linearizable, "{name}: {v:?}");
        assert!(!matches!(v, Verdict::Inconclusive { .. }), "{name}");
    }
}

#[test]
fn report_names_the_key_and_the_stale_read() {
    let mut ops = vec![put(1, "a", 0, 1), get(2, Some("a"), 2, 3)];
    let mut bad = vec![put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, Some("a"), 4, 5)];
    for op in &mut bad {
        op.key = "z".into();
    }
    ops.append(&mut bad);
    let Verdict::NotLinearizable(violation) = verdict(ops) else { panic!("must fail") };
    assert_eq!(violation.key, "z");
    let stuck = violation.stuck.as_ref().expect("a stuck operation");
    assert_eq!(stuck.output, Some(Output::Get { value: Some("a".into()) }));
    assert_eq!(violation.value_after_prefix, "b");
    let text = violation.to_string();
    assert!(text.contains("key \"z\"") && text.contains("cannot linearize"), "{text}");
}

#[test]
fn initial_values_are_honoured() {
    let mut history =
        History { initial: Default::default(), operations: vec![get(1, Some("v0"), 0, 1)] };
    assert!(!check(&history).unwrap().is_linearizable());
    history.initial.insert("k".into(), "v0".into());
    assert!(check(&history).unwrap().is_linearizable());
}

#[test]
fn malformed_histories_are_refused() {
    let mut backwards = put(1, "a", 5, 4);
    assert!(matches!(
        check(&History { initial: Default::default(), operations: vec![backwards.clone()] }),
        Err(HistoryError::CompletedBeforeInvoked { index: 0, .. })
    ));
    backwards.completed_at = Some(6);
    backwards.output = Some(Output::Cas { succeeded: true });
    assert!(matches!(
        check(&History { initial: Default::default(), operations: vec![backwards.clone()] }),
        Err(HistoryError::OutputMismatch { .. })
    ));
    backwards.output = None;
    assert!(matches!(
        check(&History { initial: Default::default(), operations: vec![backwards.clone()] }),
        Err(HistoryError::MissingOutput { .. })
    ));
    backwards.completed_at = None;
    backwards.output = Some(Output::Put);
    assert!(matches!(
        check(&History { initial: Default::default(), operations: vec![backwards] }),
        Err(HistoryError::OutputWithoutCompletion { .. })
    ));
}

#[test]
fn history_round_trips_through_json() {
    let history = History {
        initial: [("k".to_string(), "v0".to_string())].into(),
        operations: vec![cas(1, Some("v0"), "v1", true, 0, 3), put_lost(2, "v2", 1)],
    };
    let json = serde_json::to_string(&history).unwrap();
    assert_eq!(serde_json::from_str::<History>(&json).unwrap(), history);
}

/// A history produced by a real register: each operation takes effect at a random instant
/// inside its interval. Some operations time out (and then half of them never take effect).
fn generated(seed: u64, clients: u64, ops_per_client: u64, lost_percent: u64) -> Vec<Operation> {
    let mut rng = DetRng::new(seed);
    let mut planned = Vec::new();
    for client in 0..clients {
        let mut t = rng.below(5);
        for _ in 0..ops_per_client {
            let invoked = t + 1 + rng.below(4);
            let point = invoked + rng.below(6);
            let completed = point + rng.below(6);
            let lost = rng.below(100) < lost_percent;
            planned.push((point, client, invoked, completed, lost, rng.below(3), rng.chance(0.5)));
            t = completed;
        }
    }
    planned.sort();
    let mut register: Option<String> = None;
    let mut written: Vec<String> = Vec::new();
    let mut ops = Vec::new();
    for (i, (_, client, invoked, completed, lost, kind, takes_effect)) in
        planned.into_iter().enumerate()
    {
        let value = format!("v{i}");
        let applies = !lost || takes_effect;
        let (call, output) = match kind {
            0 => {
                if applies {
                    register = Some(value.clone());
                    written.push(value.clone());
                }
                (Call::Put { value }, Output::Put)
            }
            1 => (Call::Get, Output::Get { value: register.clone() }),
            _ => {
                let expected = match written.len() {
                    0 => None,
                    n => Some(written[n - 1 - rng.below(n.min(2) as u64) as usize].clone()),
                };
                let succeeded = register == expected;
                if succeeded && applies {
                    register = Some(value.clone());
                    written.push(value.clone());
                }
                (Call::Cas { expected, new: value }, Output::Cas { succeeded })
            }
        };
        if lost {
            ops.push(op(client, "k", call, (invoked, None), None));
        } else {
            ops.push(op(client, "k", call, (invoked, Some(completed)), Some(output)));
        }
    }
    ops
}

#[test]
fn generated_histories_are_linearizable() {
    for seed in 0..20 {
        let ops = generated(seed, 4, 60, 5);
        assert_eq!(verdict(ops), Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn a_corrupted_read_is_caught_in_a_generated_history() {
    for seed in 0..20 {
        let mut ops = generated(seed, 4, 60, 5);
        // Make one late completed read return a value that was overwritten long before.
        let target =
            ops.iter().rposition(|o| o.call == Call::Get && o.is_completed()).expect("some read");
        ops[target].output = Some(Output::Get { value: Some("never-written".into()) });
        assert!(matches!(verdict(ops), Verdict::NotLinearizable(_)), "seed {seed}");
    }
}

/// Thousands of operations on one key, with many timed out, must check quickly: the point of
/// the memo and of the interchangeable timed-out puts.
#[test]
fn thousands_of_ops_on_one_key_check_quickly() {
    let ops = generated(7, 5, 800, 3);
    let timed_out = ops.iter().filter(|o| !o.is_completed()).count();
    assert!(timed_out > 50, "the history should have many timed-out ops, has {timed_out}");
    let started = std::time::Instant::now();
    assert_eq!(verdict(ops.clone()), Verdict::Linearizable);
    let linearizable_took = started.elapsed();

    let mut broken = ops;
    let n = broken.len();
    broken.push(get(9, Some("v0"), 10_000_000, 10_000_001));
    broken.push(put(9, "late", 10_000_002, 10_000_003));
    broken.push(get(9, Some("v1"), 10_000_004, 10_000_005));
    let started = std::time::Instant::now();
    let v = verdict(broken);
    assert!(matches!(v, Verdict::NotLinearizable(_)), "{n} ops: {v:?}");
    let violation_took = started.elapsed();
    if !cfg!(debug_assertions) {
        assert!(linearizable_took.as_millis() < 500, "took {linearizable_took:?}");
        assert!(violation_took.as_millis() < 1_000, "took {violation_took:?}");
    }
}
