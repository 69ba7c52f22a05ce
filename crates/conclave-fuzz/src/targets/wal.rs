//! The write-ahead log's recovery: damaged segment and snapshot files, reopened.
//!
//! Each input is one file of a scenario's store (see [`crate::seeds::wal`]) with its bytes
//! damaged the way disks and crashes damage them — flipped bits, overwritten or zeroed
//! ranges, a cut-off tail, garbage appended — while the other files stay intact.
//! [`FileStore::open`] must then either refuse (`Err`, naming the damage) or recover a state
//! the log really went through: the state after some prefix of the scenario's records. Never
//! a panic, never an entry, hard state or snapshot that was not written, never a mix of two
//! points in history. A store that opened must also take the next write and recover it.

use crate::corpus;
use crate::mutate::Mutator;
use crate::runner::{self, CheckResult, Failure, Input, Report, Seed, Verdict};
use crate::seeds::wal::{Batch, Scenario, scenarios};
use crate::settings::FuzzSettings;
use bytes::Bytes;
use conclave_core::{Entry, Recovered, Snapshot};
use conclave_storage::{FileStore, LogStore, WriteBatch};
use std::path::Path;

pub const TARGET: &str = "wal";

/// Damaged files are cut to this length (the largest segment is 64 KiB plus a record).
pub const MAX_INPUT_BYTES: usize = 128 * 1024;

/// What recovery may serve: the snapshot, hard state and log entries at one point in history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    pub snapshot: Option<Snapshot>,
    pub hard_state: Option<Bytes>,
    pub entries: Vec<Entry>,
}

impl LogState {
    fn last_index(&self) -> u64 {
        self.entries.last().map(|e| e.index).unwrap_or_else(|| self.snapshot_index())
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn of(recovered: &Recovered) -> Self {
        Self {
            snapshot: recovered.snapshot.clone(),
            hard_state: recovered.hard_state.clone(),
            entries: recovered.entries.clone(),
        }
    }
}

/// Every state the scenario's log passes through, record by record, in the order the file
/// store writes a batch's records: snapshot marker, hard state, truncation, entries.
pub fn history(scenario: &Scenario) -> Vec<LogState> {
    let mut state = LogState::default();
    let mut states = vec![state.clone()];
    for batch in &scenario.batches {
        apply(&mut state, batch, &mut states);
    }
    states
}

fn apply(state: &mut LogState, batch: &Batch, states: &mut Vec<LogState>) {
    if let Some(snapshot) = &batch.snapshot {
        let index = snapshot.meta.index;
        state.entries.retain(|e| e.index > index);
        state.snapshot = Some(snapshot.clone());
        states.push(state.clone());
    }
    if let Some(hard_state) = &batch.hard_state {
        state.hard_state = Some(hard_state.clone());
        states.push(state.clone());
    }
    let truncate_from = match (&batch.snapshot, batch.discard_log) {
        (Some(snapshot), true) => Some(snapshot.meta.index + 1),
        _ => batch.entries.first().map(|e| e.index).filter(|&i| i <= state.last_index()),
    };
    if let Some(from) = truncate_from {
        state.entries.retain(|e| e.index < from);
        states.push(state.clone());
    }
    // A batch's entries may be split over several records, so every prefix is a state.
    let snapshot_index = state.snapshot_index();
    for entry in batch.entries.iter().filter(|e| e.index > snapshot_index) {
        state.entries.push(entry.clone());
        states.push(state.clone());
    }
}

/// The scenarios with their files (from the corpus) and their histories.
pub struct WalWorld {
    scenarios: Vec<(Scenario, Vec<Seed>, Vec<LogState>)>,
    /// For each seed (in corpus order): its scenario and its index in that scenario's files.
    files: Vec<(usize, usize)>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for WalWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWorld").field("files", &self.files.len()).finish_non_exhaustive()
    }
}

impl WalWorld {
    /// Matches the corpus files to the scripted scenarios.
    pub fn new(seeds: &[Seed]) -> Self {
        let mut scenarios: Vec<(Scenario, Vec<Seed>, Vec<LogState>)> = scenarios()
            .into_iter()
            .map(|s| {
                let h = history(&s);
                (s, Vec::new(), h)
            })
            .collect();
        let mut files = Vec::new();
        for seed in seeds {
            let (name, rest) = seed.name.split_once('/').unwrap_or((&seed.name, ""));
            let s = scenarios
                .iter()
                .position(|(scenario, _, _)| scenario.name == name)
                .unwrap_or_else(|| panic!("corpus file {} belongs to no scenario", seed.name));
            files.push((s, scenarios[s].1.len()));
            scenarios[s].1.push(Seed { name: rest.to_string(), bytes: seed.bytes.clone() });
        }
        Self { scenarios, files, dir: tempfile::tempdir().expect("a temporary directory") }
    }

    /// The final state of each scenario, and what recovery made of its undamaged files.
    pub fn recover_intact(&self) -> Vec<(&'static str, LogState, Result<LogState, String>)> {
        self.scenarios
            .iter()
            .map(|(scenario, files, history)| {
                let want = history.last().cloned().unwrap_or_default();
                let got = self
                    .open(scenario, files, None)
                    .map(|(_, r)| LogState::of(&r))
                    .map_err(|e| e.to_string());
                (scenario.name, want, got)
            })
            .collect()
    }

    fn open(
        &self,
        scenario: &Scenario,
        files: &[Seed],
        replace: Option<(usize, &[u8])>,
    ) -> Result<(FileStore, Recovered), conclave_storage::StorageError> {
        let root = self.dir.path().join("store");
        if root.exists() {
            std::fs::remove_dir_all(&root).expect("the scratch store can be removed");
        }
        for (i, file) in files.iter().enumerate() {
            let bytes = match replace {
                Some((at, bytes)) if at == i => bytes,
                _ => &file.bytes[..],
            };
            write_file(&root.join(&file.name), bytes);
        }
        FileStore::open(&root, scenario.options.clone())
    }

    /// Recovers the scenario with one file replaced by `input`, and judges the result.
    pub fn check(&self, input: &Input) -> CheckResult {
        let (s, file) = self.files[input.origin];
        let (scenario, files, history) = &self.scenarios[s];
        let (mut store, recovered) = match self.open(scenario, files, Some((file, &input.bytes))) {
            Ok(opened) => opened,
            Err(_) => return Ok(Verdict::Rejected),
        };
        let state = LogState::of(&recovered);
        if !history.contains(&state) {
            return Err(format!(
                "recovery of {} with {} damaged served a state the log never held: snapshot {:?}, \
                 hard state {:?}, entries {:?}",
                scenario.name,
                files[file].name,
                state.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term)),
                state.hard_state,
                state.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            ));
        }
        // The recovered store must go on: one more entry, synced, survives a reopen.
        let next = Entry::command(state.last_index() + 1, 9, Bytes::from_static(b"after recovery"));
        store
            .write(&WriteBatch { entries: std::slice::from_ref(&next), ..WriteBatch::default() })
            .and_then(|()| store.sync())
            .map_err(|e| format!("a store that recovered refuses the next write: {e}"))?;
        drop(store);
        let root = self.dir.path().join("store");
        let (_, again) = FileStore::open(&root, scenario.options.clone())
            .map_err(|e| format!("a store that recovered and took a write does not reopen: {e}"))?;
        if again.entries.last() != Some(&next) {
            return Err(format!(
                "the write after recovery was lost on reopen (last entry {:?})",
                again.entries.last().map(|e| (e.index, e.term))
            ));
        }
        Ok(Verdict::Accepted)
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("the scratch store's directories can be made");
    }
    std::fs::write(path, bytes).expect("the scratch store's files can be written");
}

pub fn fuzz(settings: &FuzzSettings) -> Result<Report, Failure> {
    let seeds = corpus::load(TARGET);
    let world = WalWorld::new(&seeds);
    let mutator = Mutator::in_place(MAX_INPUT_BYTES);
    runner::run(TARGET, &seeds, &mutator, settings, |input| world.check(input))
}
