//! The memory store's power loss: unsynced writes vanish, synced ones stay.

use conclave_core::DetRng;
use conclave_storage::conformance::{Model, OwnedBatch, Workload, entries, snapshot};
use conclave_storage::{LogStore, MemStore, WriteBatch};

#[test]
fn crash_loses_unsynced_writes_and_keeps_synced_ones() {
    let mut store = MemStore::new();
    let synced = entries(1..=5, 1);
    store
        .write(&WriteBatch { hard_state: Some(b"term 1"), entries: &synced, ..Default::default() })
        .unwrap();
    store.sync().unwrap();

    let snap = snapshot(3, 1);
    let unsynced = entries(6..=9, 2);
    store
        .write(&WriteBatch {
            snapshot: Some(&snap),
            hard_state: Some(b"term 2"),
            entries: &unsynced,
            compact_to: Some(3),
            discard_log: false,
        })
        .unwrap();
    assert_eq!(store.last_index(), 9);
    assert_eq!(store.unsynced_writes(), 1);

    store.crash();
    assert_eq!(store.last_index(), 5, "the running view falls back to the synced state");
    let recovered = store.recover();
    assert_eq!(recovered.hard_state.as_deref(), Some(&b"term 1"[..]));
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.entries, synced);
}

#[test]
fn recover_shows_only_synced_state_while_running() {
    let mut store = MemStore::new();
    store.write(&WriteBatch { entries: &entries(1..=3, 1), ..Default::default() }).unwrap();
    assert!(store.recover().entries.is_empty(), "nothing synced yet");
    store.sync().unwrap();
    assert_eq!(store.recover().entries.len(), 3);
    assert_eq!(store.syncs(), 1);
}

#[test]
fn the_store_carries_on_after_a_crash() {
    let mut store = MemStore::new();
    store.write(&WriteBatch { entries: &entries(1..=3, 1), ..Default::default() }).unwrap();
    store.sync().unwrap();
    store.write(&WriteBatch { entries: &entries(4..=6, 1), ..Default::default() }).unwrap();
    store.crash();
    // Index 4 follows the synced log; index 7 would now be a gap.
    assert!(
        store.write(&WriteBatch { entries: &entries(7..=7, 1), ..Default::default() }).is_err()
    );
    store.write(&WriteBatch { entries: &entries(4..=4, 2), ..Default::default() }).unwrap();
    store.sync().unwrap();
    assert_eq!(store.recover().entries, [entries(1..=3, 1), entries(4..=4, 2)].concat());
}

/// A random workload with crashes that keep a random number of unsynced writes: what comes
/// back is always the synced state plus a prefix of what followed.
#[test]
fn random_crashes_recover_a_prefix_of_writes() {
    for seed in 0..20 {
        let mut workload = Workload::new(seed);
        let mut rng = DetRng::new(seed ^ 0xC0FFEE);
        let mut store = MemStore::new();
        let mut model = Model::default();
        let mut synced = Model::default();
        let mut pending: Vec<OwnedBatch> = Vec::new();
        for step in 0..300 {
            let batch = workload.next_batch(&model);
            store.write(&batch.as_batch()).unwrap();
            model.apply(&batch.as_batch()).unwrap();
            pending.push(batch);
            if rng.chance(0.3) {
                store.sync().unwrap();
                synced = model.clone();
                pending.clear();
            } else if rng.chance(0.05) {
                let kept = rng.below(pending.len() as u64 + 1) as usize;
                store.crash_keeping_writes(kept);
                let mut expected = synced.clone();
                for batch in &pending[..kept] {
                    expected.apply(&batch.as_batch()).unwrap();
                }
                let recovered = store.recover();
                assert!(
                    expected.matches(&recovered),
                    "seed {seed} step {step}: kept {kept} writes"
                );
                assert_eq!(store.last_index(), expected.last_index());
                model = expected;
                synced = model.clone();
                pending.clear();
            }
        }
    }
}
