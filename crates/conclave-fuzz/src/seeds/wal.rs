//! Write-ahead logs to damage: scripted histories written by the real [`FileStore`].
//!
//! Each scenario is a list of batches, as a protocol's `Ready`s would ask for: hard states,
//! entries holding real key-value commands, a conflicting suffix that gets truncated, snapshots
//! (taken locally, and one received from a leader that replaces the log) and compaction that
//! deletes old segments. Small segments make the history span several files. The script is
//! pure data, so the WAL target can rebuild every state the log went through and compare what
//! recovery serves against them.

use crate::runner::Seed;
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{Entry, Membership, NodeId, RequestId, Snapshot, SnapshotMeta, StateMachine};
use conclave_kv::{Command, KvStore, PutRequest};
use conclave_storage::{FileStore, FileStoreOptions, LogStore, StorageError, WriteBatch};
use std::path::Path;

/// One `Ready`'s worth of persistence, owned.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub snapshot: Option<Snapshot>,
    pub discard_log: bool,
    pub hard_state: Option<Bytes>,
    pub entries: Vec<Entry>,
    pub compact_to: Option<u64>,
}

/// A named history and the store options it is written with.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub options: FileStoreOptions,
    pub batches: Vec<Batch>,
}

fn options(segment_size_bytes: u64) -> FileStoreOptions {
    FileStoreOptions {
        segment_size_bytes,
        max_record_bytes: segment_size_bytes.min(16 * 1024),
        snapshots_to_keep: 2,
        // Nothing here needs to survive a power cut, and fsync would slow every input.
        unsafe_no_fsync: true,
        ..FileStoreOptions::default()
    }
}

/// The command an entry carries: a put, wrapped in the driver's proposal header.
fn command(index: u64, term: u64) -> Bytes {
    let put = Command::Put(PutRequest::new(
        format!("key-{}", index % 7),
        format!("value-{index}-{term}"),
    ));
    Proposal { origin: NodeId(1), request: RequestId(index), command: put.encode() }.encode()
}

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| Entry::command(i, term, command(i, term))).collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> Bytes {
    Bytes::from(format!("term={term} vote={vote} commit={commit}"))
}

/// A snapshot of a key-value store that applied entries `1..=index` of term `term`.
fn snapshot(index: u64, term: u64) -> Snapshot {
    let mut store = KvStore::new();
    for entry in entries(1, index, term) {
        let proposal = Proposal::decode(&entry.data).expect("a header was written");
        store.apply(entry.index, Some(&proposal.command));
    }
    let meta = SnapshotMeta {
        index,
        term,
        membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
    };
    Snapshot { meta, data: store.snapshot() }
}

pub fn scenarios() -> Vec<Scenario> {
    let mut single = Vec::new();
    single.push(Batch { hard_state: Some(hard_state(1, 1, 0)), ..Batch::default() });
    for from in (1..=12u64).step_by(3) {
        single.push(Batch {
            hard_state: Some(hard_state(1, 1, from.saturating_sub(1))),
            entries: entries(from, from + 2, 1),
            ..Batch::default()
        });
    }
    // A new leader overwrites a suffix that never committed (Raft §5.3).
    single.push(Batch {
        hard_state: Some(hard_state(2, 2, 9)),
        entries: entries(10, 14, 2),
        ..Batch::default()
    });

    let mut segmented = Vec::new();
    segmented.push(Batch { hard_state: Some(hard_state(1, 1, 0)), ..Batch::default() });
    for from in (1..=30u64).step_by(2) {
        segmented.push(Batch { entries: entries(from, from + 1, 1), ..Batch::default() });
    }
    segmented.push(Batch {
        snapshot: Some(snapshot(12, 1)),
        hard_state: Some(hard_state(1, 1, 20)),
        compact_to: Some(12),
        ..Batch::default()
    });
    segmented.push(Batch { entries: entries(31, 38, 1), ..Batch::default() });
    segmented.push(Batch {
        hard_state: Some(hard_state(3, 3, 34)),
        entries: entries(35, 40, 3),
        ..Batch::default()
    });
    segmented.push(Batch {
        snapshot: Some(snapshot(33, 1)),
        compact_to: Some(33),
        ..Batch::default()
    });
    segmented.push(Batch { entries: entries(41, 45, 3), ..Batch::default() });

    let installed = vec![
        Batch {
            hard_state: Some(hard_state(1, 2, 0)),
            entries: entries(1, 6, 1),
            ..Batch::default()
        },
        // A leader's snapshot replaces the whole log (Raft §7), then replication goes on.
        Batch {
            snapshot: Some(snapshot(9, 2)),
            discard_log: true,
            hard_state: Some(hard_state(2, 2, 9)),
            ..Batch::default()
        },
        Batch { entries: entries(10, 16, 2), ..Batch::default() },
    ];

    vec![
        Scenario { name: "single-segment", options: options(64 * 1024), batches: single },
        Scenario { name: "segments-snapshots", options: options(1024), batches: segmented },
        Scenario { name: "installed-snapshot", options: options(1024), batches: installed },
    ]
}

/// Writes the scenario's history into `dir` through a real [`FileStore`], syncing after every
/// batch as the driver does.
pub fn write(scenario: &Scenario, dir: &Path) -> Result<(), StorageError> {
    let (mut store, _) = FileStore::open(dir, scenario.options.clone())?;
    for batch in &scenario.batches {
        store.write(&WriteBatch {
            snapshot: batch.snapshot.as_ref(),
            discard_log: batch.discard_log,
            hard_state: batch.hard_state.as_deref(),
            entries: &batch.entries,
            compact_to: batch.compact_to,
        })?;
        store.sync()?;
    }
    Ok(())
}

/// Every scenario's files, named `<scenario>/wal/<segment>` and `<scenario>/snap/<snapshot>`.
pub fn seeds() -> Result<Vec<Seed>, StorageError> {
    let mut seeds = Vec::new();
    for scenario in scenarios() {
        let dir = tempfile::tempdir().map_err(|e| StorageError::Io {
            op: "tempdir",
            path: "".into(),
            source: e,
        })?;
        write(&scenario, dir.path())?;
        let files = crate::corpus::load_from(dir.path()).map_err(|e| StorageError::Io {
            op: "read",
            path: dir.path().to_path_buf(),
            source: e,
        })?;
        seeds.extend(files.into_iter().map(|file| Seed {
            name: format!("{}/{}", scenario.name, file.name),
            bytes: file.bytes,
        }));
    }
    Ok(seeds)
}
