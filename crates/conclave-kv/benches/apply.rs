//! What applying a put costs the state machine under the bench's conditions: 10,000 keys of
//! 256-byte values written at random, the last 100,000 revisions held (conclaved's default
//! automatic compaction, in its steps of 1,000), commands decoded and outputs encoded as the
//! node does, and a snapshot's frozen copy of the state alive for 30,000 of every 100,000 puts
//! (while its file is written, each node of the maps that a write touches is copied once). Prints microseconds per put; run with `cargo bench -p conclave-kv --bench apply`.

use bytes::Bytes;
use conclave_core::{DetRng, StateMachine};
use conclave_kv::{Command, KvStore, PutRequest};
use std::time::Instant;

/// The allocator conclaved runs with.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const KEYS: u64 = 10_000;
const RETAINED: i64 = 100_000;
const COMPACT_STEP: i64 = 1_000;
/// A snapshot is frozen every this many puts and kept for `SNAPSHOT_HELD` puts.
const SNAPSHOT_EVERY: u64 = 100_000;
const SNAPSHOT_HELD: u64 = 30_000;

fn put(key: u64, value: &Bytes) -> Bytes {
    Command::Put(PutRequest {
        key: Bytes::from(format!("key-{key:08}")),
        value: value.clone(),
        lease: 0,
        prev_kv: false,
        ignore_value: false,
        ignore_lease: false,
    })
    .encode()
}

/// Applies `count` random puts, compacting as conclaved would; returns the time spent.
fn run(store: &mut KvStore, index: &mut u64, rng: &mut DetRng, count: u64, value: &Bytes) -> f64 {
    let commands: Vec<Bytes> = (0..count).map(|_| put(rng.below(KEYS), value)).collect();
    let started = Instant::now();
    let mut frozen = None;
    for command in &commands {
        *index += 1;
        match *index % SNAPSHOT_EVERY {
            0 => frozen = store.frozen(),
            SNAPSHOT_HELD => frozen = None,
            _ => {}
        }
        std::hint::black_box(store.apply(*index, Some(command)));
        let revision = store.current_revision();
        if revision % COMPACT_STEP == 0 && revision > RETAINED {
            *index += 1;
            let compact = Command::Compact { revision: revision - RETAINED }.encode();
            std::hint::black_box(store.apply(*index, Some(&compact)));
        }
    }
    drop(frozen);
    started.elapsed().as_secs_f64()
}

fn main() {
    let value = Bytes::from(vec![b'v'; 256]);
    let mut store = KvStore::new();
    let mut rng = DetRng::new(1);
    let mut index = 0;
    for key in 0..KEYS {
        index += 1;
        store.apply(index, Some(&put(key, &value)));
    }
    // Fill the held history to its steady size before measuring.
    run(&mut store, &mut index, &mut rng, 2 * RETAINED as u64, &value);
    let count = 200_000;
    for round in 1..=3 {
        let seconds = run(&mut store, &mut index, &mut rng, count, &value);
        println!(
            "round {round}: {:.2} us per put ({count} puts, {KEYS} keys, last {RETAINED} revisions held)",
            seconds * 1e6 / count as f64
        );
    }
}
