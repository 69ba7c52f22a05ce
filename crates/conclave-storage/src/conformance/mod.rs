//! The conformance suite every [`LogStore`] must pass, reusable by any implementation.
//!
//! A store is tested through a [`Harness`] that can create an empty store and restart one.
//! Each case is a plain function that panics with a message on a violation; [`cases`] lists them
//! by name and [`run_all`] runs them in turn. The expected behaviour comes from [`Model`], the
//! contract of [`crate::store`] written as plainly as possible.
//!
//! ```ignore
//! struct MemHarness;
//! impl Harness for MemHarness { /* ... */ }
//! conformance::run_all(&mut MemHarness);          // all cases in one test, or
//! conclave_storage::conformance_tests!(MemHarness); // one #[test] per case
//! ```
//!
//! [`cases`] and [`conformance_tests!`](crate::conformance_tests) list the same cases.

mod model;
mod workload;

pub use model::Model;
pub use workload::{OwnedBatch, Workload};

use crate::{LogStore, StorageError, WriteBatch};
use bytes::Bytes;
use conclave_core::{Entry, Recovered, Snapshot, SnapshotMeta};

/// What the suite needs from a store under test.
pub trait Harness {
    type Store: LogStore;

    /// Creates a brand-new, empty store, and what opening it recovered.
    fn create(&mut self) -> (Self::Store, Recovered);

    /// Stops `store` the way a crash would — with no further `sync` — and opens it again from
    /// what it made durable. Synced writes must come back; each later one may come back whole
    /// or not at all, in order, but never in part.
    fn restart(&mut self, store: Self::Store) -> (Self::Store, Recovered);
}

/// A named conformance case.
pub type Case<H> = (&'static str, fn(&mut H));

/// Every case, by name.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        ("empty_store", empty_store::<H>),
        ("append_and_read_back", append_and_read_back::<H>),
        ("group_commit", group_commit::<H>),
        ("last_index_counts_staged_writes", last_index_counts_staged_writes::<H>),
        ("conflicting_suffix_is_replaced", conflicting_suffix_is_replaced::<H>),
        ("hard_state_is_replaced", hard_state_is_replaced::<H>),
        ("snapshot_drops_covered_entries", snapshot_drops_covered_entries::<H>),
        ("the_latest_snapshot_reads_back", the_latest_snapshot_reads_back::<H>),
        ("snapshot_beyond_the_log", snapshot_beyond_the_log::<H>),
        ("installed_snapshot_replaces_the_log", installed_snapshot_replaces_the_log::<H>),
        ("compact_to_keeps_uncovered_entries", compact_to_keeps_uncovered_entries::<H>),
        ("invalid_batches_change_nothing", invalid_batches_change_nothing::<H>),
        ("recovery_after_close", recovery_after_close::<H>),
        ("restart_recovers_a_prefix_of_writes", restart_recovers_a_prefix_of_writes::<H>),
        ("random_workload_matches_model", random_workload_matches_model::<H>),
    ]
}

/// Declares one `#[test]` per conformance case, each on a harness made by `$make`.
///
/// ```ignore
/// mod mem {
///     conclave_storage::conformance_tests!(super::MemHarness::default());
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            empty_store,
            append_and_read_back,
            group_commit,
            last_index_counts_staged_writes,
            conflicting_suffix_is_replaced,
            hard_state_is_replaced,
            snapshot_drops_covered_entries,
            the_latest_snapshot_reads_back,
            snapshot_beyond_the_log,
            installed_snapshot_replaces_the_log,
            compact_to_keeps_uncovered_entries,
            invalid_batches_change_nothing,
            recovery_after_close,
            restart_recovers_a_prefix_of_writes,
            random_workload_matches_model
        );
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $make;
                $crate::conformance::$case(&mut harness);
            }
        )*
    };
}

/// Runs every case, naming each on stderr so a failure is easy to place.
pub fn run_all<H: Harness>(harness: &mut H) {
    for (name, case) in cases::<H>() {
        eprintln!("conformance: {name}");
        case(harness);
    }
}

/// Entries `range`, all at `term`, with data that names them.
pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| Entry::command(i, term, Bytes::from(format!("entry {i} term {term}")))).collect()
}

/// A snapshot at `index`/`term` with some data.
pub fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term, ..Default::default() },
        data: Bytes::from(format!("state through {index}")),
    }
}

fn append(entries: &[Entry]) -> WriteBatch<'_> {
    WriteBatch { entries, ..Default::default() }
}

/// Writes `batch` to both the store and the model, which must agree that it is valid.
fn write<S: LogStore>(store: &mut S, model: &mut Model, batch: &WriteBatch<'_>) {
    model.apply(batch).expect("the case only writes valid batches");
    store.write(batch).unwrap_or_else(|e| panic!("write refused: {e}; batch {batch:?}"));
    assert_eq!(store.last_index(), model.last_index(), "last_index after {batch:?}");
}

fn sync<S: LogStore>(store: &mut S) {
    store.sync().unwrap_or_else(|e| panic!("sync failed: {e}"));
}

fn assert_recovered(recovered: &Recovered, model: &Model, context: &str) {
    assert_eq!(recovered.hard_state, model.hard_state, "{context}: hard state");
    assert_eq!(recovered.snapshot, model.snapshot, "{context}: snapshot");
    let got: Vec<_> = recovered.entries.iter().map(|e| (e.index, e.term)).collect();
    let want: Vec<_> = model.entries.iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(got, want, "{context}: entry indexes and terms");
    assert_eq!(recovered.entries, model.entries, "{context}: entry contents");
}

/// Restarts and checks that exactly `model` comes back, then carries on with the new store.
fn restart_and_check<H: Harness>(
    harness: &mut H,
    store: H::Store,
    model: &Model,
    context: &str,
) -> H::Store {
    let (store, recovered) = harness.restart(store);
    assert_recovered(&recovered, model, context);
    assert_eq!(store.last_index(), model.last_index(), "{context}: last_index after restart");
    store
}

/// A new store recovers nothing, and still nothing after a restart.
pub fn empty_store<H: Harness>(harness: &mut H) {
    let (store, recovered) = harness.create();
    assert_recovered(&recovered, &Model::default(), "new store");
    assert_eq!(store.last_index(), 0);
    let mut store = restart_and_check(harness, store, &Model::default(), "empty restart");
    sync(&mut store);
    restart_and_check(harness, store, &Model::default(), "empty restart after sync");
}

/// Appended and synced entries come back exactly after a restart, across several batches.
pub fn append_and_read_back<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    for chunk in [1..=1, 2..=10, 11..=50] {
        write(&mut store, &mut model, &append(&entries(chunk, 1)));
        sync(&mut store);
    }
    let mut store = restart_and_check(harness, store, &model, "after appends");
    write(&mut store, &mut model, &append(&entries(51..=60, 2)));
    sync(&mut store);
    restart_and_check(harness, store, &model, "after appending to a recovered log");
}

/// Many writes followed by one sync are all durable (group commit).
pub fn group_commit<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    for i in 1..=100 {
        let hard_state = format!("hs {i}");
        let es = entries(i..=i, 1);
        write(
            &mut store,
            &mut model,
            &WriteBatch {
                hard_state: Some(hard_state.as_bytes()),
                entries: &es,
                ..Default::default()
            },
        );
    }
    sync(&mut store);
    restart_and_check(harness, store, &model, "100 writes, one sync");
}

/// `last_index` answers for staged writes at once, before any sync.
pub fn last_index_counts_staged_writes<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=3, 1)));
    assert_eq!(store.last_index(), 3);
    write(&mut store, &mut model, &append(&entries(2..=2, 2)));
    assert_eq!(store.last_index(), 2, "a conflicting write shortens the log at once");
    sync(&mut store);
    restart_and_check(harness, store, &model, "after a staged conflict");
}

/// Reference: Raft §5.3 — an entry that conflicts with a new one is deleted with everything
/// after it, and the new entries are appended.
pub fn conflicting_suffix_is_replaced<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=10, 1)));
    sync(&mut store);
    write(&mut store, &mut model, &append(&entries(6..=8, 2)));
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "suffix from 6 replaced");
    assert_eq!(model.last_index(), 8);

    // Replace the whole log, and replace a suffix with a longer one.
    write(&mut store, &mut model, &append(&entries(1..=4, 3)));
    write(&mut store, &mut model, &append(&entries(4..=12, 4)));
    sync(&mut store);
    restart_and_check(harness, store, &model, "whole log replaced, then a longer suffix");
}

/// Reference: Raft §5.1 / Figure 2 — persistent state is replaced as a whole.
pub fn hard_state_is_replaced<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(
        &mut store,
        &mut model,
        &WriteBatch { hard_state: Some(b"term 1, no vote"), ..Default::default() },
    );
    write(
        &mut store,
        &mut model,
        &WriteBatch { hard_state: Some(b"term 2, voted 3"), ..Default::default() },
    );
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "second hard state wins");

    write(&mut store, &mut model, &WriteBatch { hard_state: Some(b""), ..Default::default() });
    sync(&mut store);
    let store =
        restart_and_check(harness, store, &model, "an empty hard state is still a hard state");
    assert_eq!(model.hard_state, Some(Bytes::new()));
    drop(store);
}

/// Reference: Raft §7 — a snapshot replaces the log entries it covers.
pub fn snapshot_drops_covered_entries<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=20, 1)));
    let snap = snapshot(10, 1);
    write(&mut store, &mut model, &WriteBatch { snapshot: Some(&snap), ..Default::default() });
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "snapshot at 10 of 20");
    assert_eq!(model.entries.first().map(|e| e.index), Some(11));

    let newer = snapshot(15, 1);
    let es = entries(21..=25, 1);
    write(
        &mut store,
        &mut model,
        &WriteBatch { snapshot: Some(&newer), entries: &es, ..Default::default() },
    );
    sync(&mut store);
    restart_and_check(harness, store, &model, "newer snapshot with entries in the same batch");
}

/// `load_snapshot` reads back the latest snapshot whole — what a protocol that let go of its
/// snapshot's data asks for — before and after a restart.
pub fn the_latest_snapshot_reads_back<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    assert_eq!(store.load_snapshot().expect("read back"), None, "no snapshot yet");
    write(&mut store, &mut model, &append(&entries(1..=20, 1)));
    for index in [10, 15] {
        let snap = snapshot(index, 1);
        write(&mut store, &mut model, &WriteBatch { snapshot: Some(&snap), ..Default::default() });
        sync(&mut store);
        assert_eq!(store.load_snapshot().expect("read back"), Some(snap));
    }
    let store = restart_and_check(harness, store, &model, "snapshot at 15 of 20");
    assert_eq!(store.load_snapshot().expect("read back"), Some(snapshot(15, 1)));
}

/// A snapshot installed from a peer (`discard_log`) drops the entries after its index too, and
/// the log continues from it.
pub fn installed_snapshot_replaces_the_log<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=20, 1)));
    let snap = snapshot(10, 2);
    let es = entries(11..=12, 2);
    write(
        &mut store,
        &mut model,
        &WriteBatch {
            snapshot: Some(&snap),
            discard_log: true,
            entries: &es,
            ..Default::default()
        },
    );
    assert_eq!(store.last_index(), 12);
    sync(&mut store);
    restart_and_check(harness, store, &model, "installed snapshot replaced the log");
    assert_eq!(
        model.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        [(11, 2), (12, 2)]
    );
}

/// A snapshot past the last entry empties the log, and the log continues after it.
pub fn snapshot_beyond_the_log<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=5, 1)));
    let snap = snapshot(100, 3);
    write(&mut store, &mut model, &WriteBatch { snapshot: Some(&snap), ..Default::default() });
    assert_eq!(store.last_index(), 100);
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "snapshot beyond the log");
    write(&mut store, &mut model, &append(&entries(101..=103, 3)));
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "entries after a snapshot");
    let gap = entries(105..=106, 3);
    assert!(store.write(&append(&gap)).is_err(), "a gap after the snapshot is refused");
    sync(&mut store);
    restart_and_check(harness, store, &model, "after a refused gap");
}

/// `compact_to` never drops an entry that no snapshot covers.
pub fn compact_to_keeps_uncovered_entries<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=20, 1)));
    let snap = snapshot(10, 1);
    let batch = WriteBatch { snapshot: Some(&snap), compact_to: Some(10), ..Default::default() };
    write(&mut store, &mut model, &batch);
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "compact_to at the snapshot");
    write(&mut store, &mut model, &WriteBatch { compact_to: Some(15), ..Default::default() });
    write(&mut store, &mut model, &WriteBatch { compact_to: Some(1000), ..Default::default() });
    sync(&mut store);
    let mut store = restart_and_check(harness, store, &model, "compact_to beyond the snapshot");
    write(&mut store, &mut model, &append(&entries(21..=30, 1)));
    sync(&mut store);
    restart_and_check(harness, store, &model, "appends after compaction");
}

/// Batches that break the rules are refused with `InvalidBatch` and change nothing.
pub fn invalid_batches_change_nothing<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=5, 1)));
    let snap = snapshot(3, 1);
    write(&mut store, &mut model, &WriteBatch { snapshot: Some(&snap), ..Default::default() });
    sync(&mut store);

    let gap = entries(7..=8, 1);
    let zero = entries(0..=1, 1);
    let mut holey = entries(6..=7, 1);
    holey[1].index = 9;
    let older = snapshot(2, 1);
    let invalid = [
        ("a gap", append(&gap)),
        ("index 0", append(&zero)),
        ("non-contiguous entries", append(&holey)),
        ("an older snapshot", WriteBatch { snapshot: Some(&older), ..Default::default() }),
        (
            "a valid hard state with an invalid append",
            WriteBatch { hard_state: Some(b"never stored"), entries: &gap, ..Default::default() },
        ),
    ];
    for (what, batch) in invalid {
        assert!(model.clone().apply(&batch).is_err(), "the model refuses {what}");
        match store.write(&batch) {
            Err(StorageError::InvalidBatch(_)) => {}
            other => panic!("{what}: expected InvalidBatch, got {other:?}"),
        }
        assert_eq!(store.last_index(), model.last_index(), "{what} changed last_index");
    }
    sync(&mut store);
    restart_and_check(harness, store, &model, "after refused batches");
}

/// Several restarts in a row, each after more durable work, lose nothing.
pub fn recovery_after_close<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    for round in 1..=5u64 {
        let start = model.last_index() + 1;
        let hard_state = format!("round {round}");
        let es = entries(start..=start + 9, round);
        let batch = WriteBatch {
            hard_state: Some(hard_state.as_bytes()),
            entries: &es,
            ..Default::default()
        };
        write(&mut store, &mut model, &batch);
        if round == 3 {
            let snap = snapshot(start, round);
            write(
                &mut store,
                &mut model,
                &WriteBatch {
                    snapshot: Some(&snap),
                    compact_to: Some(start),
                    ..Default::default()
                },
            );
        }
        sync(&mut store);
        store = restart_and_check(harness, store, &model, &format!("restart {round}"));
    }
}

/// Writes after the last sync may be lost on restart, but what comes back is the synced state
/// plus a prefix of the later writes, each whole: a write is all-or-nothing on recovery.
pub fn restart_recovers_a_prefix_of_writes<H: Harness>(harness: &mut H) {
    let (mut store, _) = harness.create();
    let mut model = Model::default();
    write(&mut store, &mut model, &append(&entries(1..=10, 1)));
    sync(&mut store);
    let synced = model.clone();
    let later = [entries(11..=12, 1), entries(5..=6, 2), entries(7..=9, 2)];
    let hard_state = b"term 2";
    let mut pending = Vec::new();
    for (i, es) in later.iter().enumerate() {
        let batch = WriteBatch {
            hard_state: (i == 1).then_some(&hard_state[..]),
            entries: es,
            ..Default::default()
        };
        write(&mut store, &mut model, &batch);
        pending.push(batch);
    }
    let (store, recovered) = harness.restart(store);
    let reachable = Model::reachable(&synced, &pending);
    assert!(
        reachable.iter().any(|m| m.matches(&recovered)),
        "recovered a state no crash could leave: {recovered:?}"
    );
    assert_eq!(store.last_index(), Model::from_recovered(&recovered).last_index());
}

/// A seeded random mix of every kind of write, syncs and restarts, checked against the model.
pub fn random_workload_matches_model<H: Harness>(harness: &mut H) {
    for seed in 1..=2 {
        let mut workload = Workload::new(seed);
        let (mut store, _) = harness.create();
        let mut model = Model::default();
        let mut synced = model.clone();
        let mut pending: Vec<OwnedBatch> = Vec::new();
        for step in 0..120 {
            let batch = workload.next_batch(&model);
            write(&mut store, &mut model, &batch.as_batch());
            pending.push(batch);
            if workload.rng().chance(0.4) {
                sync(&mut store);
                synced = model.clone();
                pending.clear();
            }
            if workload.rng().chance(0.06) {
                let (restarted, recovered) = harness.restart(store);
                let batches: Vec<_> = pending.iter().map(OwnedBatch::as_batch).collect();
                let reachable = Model::reachable(&synced, &batches);
                assert!(
                    reachable.iter().any(|m| m.matches(&recovered)),
                    "seed {seed} step {step}: recovered a state no crash could leave"
                );
                store = restarted;
                model = Model::from_recovered(&recovered);
                assert_eq!(store.last_index(), model.last_index(), "seed {seed} step {step}");
                synced = model.clone();
                pending.clear();
            }
        }
        sync(&mut store);
        restart_and_check(harness, store, &model, &format!("seed {seed} final restart"));
    }
}
