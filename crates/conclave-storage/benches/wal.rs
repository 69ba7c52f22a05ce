//! Write-ahead log throughput: appends per second, fsyncs per second and mean sync latency for
//! 256-byte entries, with one sync per append (batch 1) and one sync per 100 appends (batch 100,
//! group commit), fdatasync on. A last line with fdatasync off shows what the disk costs.
//!
//! It prints figures and asserts nothing about speed. The store lives in a temporary directory
//! under `CONCLAVE_BENCH_DIR` if set (point it at the disk you care about), else the system's
//! temporary directory.
//!
//! `cargo bench -p conclave-storage --bench wal`

use bytes::Bytes;
use conclave_core::Entry;
use conclave_storage::{FileStore, FileStoreOptions, LogStore, WriteBatch};
use std::time::{Duration, Instant};

const ENTRY_BYTES: usize = 256;
const BUDGET: Duration = Duration::from_millis(1200);

struct Figures {
    appends: u64,
    syncs: u64,
    sync_time: Duration,
    elapsed: Duration,
}

fn run(batch: u64, options: FileStoreOptions) -> Figures {
    let root = match std::env::var_os("CONCLAVE_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let (mut store, _) = FileStore::open(root.path(), options).expect("open the store");
    let data = Bytes::from(vec![0xAB; ENTRY_BYTES]);
    let mut figures =
        Figures { appends: 0, syncs: 0, sync_time: Duration::ZERO, elapsed: Duration::ZERO };
    let started = Instant::now();
    while started.elapsed() < BUDGET {
        for _ in 0..batch {
            figures.appends += 1;
            let entry = [Entry::command(figures.appends, 1, data.clone())];
            store.write(&WriteBatch { entries: &entry, ..Default::default() }).expect("write");
        }
        let sync_started = Instant::now();
        store.sync().expect("sync");
        figures.sync_time += sync_started.elapsed();
        figures.syncs += 1;
    }
    figures.elapsed = started.elapsed();
    figures
}

fn report(label: &str, f: &Figures) {
    let seconds = f.elapsed.as_secs_f64();
    println!(
        "{label:<28} {:>10.0} appends/s {:>9.0} fsyncs/s   mean sync {:>8.3} ms   ({} appends, {} syncs, {seconds:.2} s)",
        f.appends as f64 / seconds,
        f.syncs as f64 / seconds,
        f.sync_time.as_secs_f64() * 1000.0 / f.syncs.max(1) as f64,
        f.appends,
        f.syncs,
    );
}

fn main() {
    println!("wal: {ENTRY_BYTES}-byte entries, one write() per append");
    let durable = FileStoreOptions::default();
    report("batch 1   (fdatasync on)", &run(1, durable.clone()));
    report("batch 100 (fdatasync on)", &run(100, durable.clone()));
    let no_sync = FileStoreOptions { unsafe_no_fsync: true, ..durable };
    report("batch 100 (fdatasync off)", &run(100, no_sync));
}
