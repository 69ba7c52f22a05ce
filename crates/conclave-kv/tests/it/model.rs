//! A seeded random workload checked against a naive model that keeps a full copy of the key
//! space at every revision: reads at every held revision, compaction, and watch catch-up must
//! agree with it exactly.

use bytes::Bytes;
use conclave_kv::{
    Command, DeleteRangeRequest, EventKind, KeyValue, KvError, KvStore, Output, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use std::collections::BTreeMap;

type Space = BTreeMap<Bytes, KeyValue>;

/// xorshift64*: enough randomness for a workload, and reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// `spaces[r]` is the key space at revision r (index 0 unused).
struct Model {
    spaces: Vec<Space>,
    compacted: i64,
}

impl Model {
    fn current(&self) -> i64 {
        self.spaces.len() as i64 - 1
    }

    /// Applies a list of changes (key → Some(value) for put, None for delete) as one revision.
    fn write(&mut self, changes: &[(Bytes, Option<Bytes>)]) {
        let rev = self.current() + 1;
        let mut space = self.spaces.last().unwrap().clone();
        let mut changed = false;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    let prev = space.get(key);
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.map_or(1, |p| p.version + 1),
                        value: value.clone(),
                        lease: 0,
                    };
                    space.insert(key.clone(), kv);
                    changed = true;
                }
                None => changed |= space.remove(key).is_some(),
            }
        }
        if changed {
            self.spaces.push(space);
        }
    }
}

fn key(rng: &mut Rng) -> Bytes {
    Bytes::from(format!("k{}", rng.below(8)))
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut store = KvStore::new();
    let mut model = Model { spaces: vec![Space::new(), Space::new()], compacted: 0 };
    for step in 0..steps {
        let value = Bytes::from(format!("v{step}"));
        match rng.below(10) {
            0..=4 => {
                let k = key(&mut rng);
                store.apply_command(&Command::Put(PutRequest::new(k.clone(), value.clone())));
                model.write(&[(k, Some(value))]);
            }
            5 | 6 => {
                let (a, z) = (key(&mut rng), key(&mut rng));
                let (a, z) = if a <= z { (a, z) } else { (z, a) };
                store.apply_command(&Command::DeleteRange(DeleteRangeRequest::range(
                    a.clone(),
                    z.clone(),
                )));
                let doomed: Vec<_> = model
                    .spaces
                    .last()
                    .unwrap()
                    .range(a..z)
                    .map(|(k, _)| (k.clone(), None))
                    .collect();
                model.write(&doomed);
            }
            7 | 8 => {
                // A txn writing up to three distinct keys; the last one may be a delete.
                let mut keys: Vec<Bytes> = (0..3).map(|_| key(&mut rng)).collect();
                keys.sort();
                keys.dedup();
                let delete_last = rng.below(2) == 0;
                let mut ops = Vec::new();
                let mut changes = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    if delete_last && i == keys.len() - 1 {
                        ops.push(RequestOp::DeleteRange(DeleteRangeRequest::key(k.clone())));
                        changes.push((k.clone(), None));
                    } else {
                        ops.push(RequestOp::Put(PutRequest::new(k.clone(), value.clone())));
                        changes.push((k.clone(), Some(value.clone())));
                    }
                }
                let out = store.apply_command(&Command::Txn(TxnRequest {
                    success: ops,
                    ..TxnRequest::default()
                }));
                assert!(matches!(out, Output::Txn(_)), "seed {seed} step {step}: {out:?}");
                model.write(&changes);
            }
            _ => {
                let span = (model.current() - model.compacted).max(1) as u64;
                let target = model.compacted + 1 + rng.below(span) as i64;
                let out = store.apply_command(&Command::Compact { revision: target });
                if target <= model.current() {
                    assert!(
                        matches!(out, Output::Compact { .. }),
                        "seed {seed} step {step}: {out:?}"
                    );
                    model.compacted = target;
                }
            }
        }
        assert_eq!(store.current_revision(), model.current(), "seed {seed} step {step}");
        check_reads(&store, &model, &mut rng, seed, step);
        if step % 25 == 0 {
            check_events(&store, &model, &mut rng, seed, step);
        }
    }
    // The workload must have reached the interesting states, or the checks above prove little.
    assert!(model.current() > steps as i64 / 2, "seed {seed}: too few revisions");
    assert!(model.compacted > 1, "seed {seed}: never compacted");
    let all = RangeRequest::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
    assert!(store.range(&all).unwrap().count > 0, "seed {seed}: empty at the end");
}

fn check_reads(store: &KvStore, model: &Model, rng: &mut Rng, seed: u64, step: usize) {
    let oldest = model.compacted.max(1);
    let rev = oldest + rng.below((model.current() - oldest + 1) as u64) as i64;
    let all = RangeRequest::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
        .with_revision(rev);
    let resp = store.range(&all).unwrap();
    let expected: Vec<KeyValue> = model.spaces[rev as usize].values().cloned().collect();
    assert_eq!(resp.kvs, expected, "seed {seed} step {step} rev {rev}");
    assert_eq!(resp.count, expected.len() as i64);
    if model.compacted > 1 {
        let below = all.with_revision(model.compacted - 1);
        assert_eq!(store.range(&below), Err(KvError::Compacted), "seed {seed} step {step}");
    }
}

fn check_events(store: &KvStore, model: &Model, rng: &mut Rng, seed: u64, step: usize) {
    let oldest = model.compacted.max(1);
    let start = oldest + rng.below((model.current() - oldest + 1) as u64) as i64;
    let events = store.events_since(start, b"\0", b"\0").unwrap();
    let mut i = 0;
    for rev in start.max(2)..=model.current() {
        let (before, after) = (&model.spaces[rev as usize - 1], &model.spaces[rev as usize]);
        let mut changed: Vec<&Bytes> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        changed.sort();
        changed.dedup();
        let mut at_rev: Vec<_> =
            events[i..].iter().take_while(|e| e.kv.mod_revision == rev).collect();
        i += at_rev.len();
        at_rev.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
        assert_eq!(at_rev.len(), changed.len(), "seed {seed} step {step} rev {rev}");
        for (event, key) in at_rev.into_iter().zip(changed) {
            assert_eq!(&event.kv.key, key);
            assert_eq!(
                event.prev_kv.as_ref(),
                before.get(key),
                "seed {seed} step {step} rev {rev}"
            );
            match after.get(key) {
                Some(kv) => assert_eq!((event.kind, &event.kv), (EventKind::Put, kv)),
                None => assert_eq!(event.kind, EventKind::Delete),
            }
        }
    }
    assert_eq!(i, events.len(), "seed {seed} step {step}: extra events");
}

#[test]
fn random_workloads_match_the_model() {
    for seed in 1..=12 {
        run(seed * 0x9e37_79b9, 1000);
    }
}
