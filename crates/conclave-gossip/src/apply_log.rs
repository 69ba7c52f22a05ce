//! The local apply sequence: log entries in the order this replica applies them.
//!
//! Every write this replica applies — a client's, or a peer's that won last-writer-wins — is
//! appended here and handed out as committed at once, so the local store applies it and the
//! waiting client is answered. With a write quorum `W`, a client's write is held back until `W`
//! peers acknowledged holding it; since the store applies entries strictly in index order,
//! whatever was appended after it waits too. A held write whose quorum does not come in time is
//! released anyway — it is applied here and keeps spreading — but its client is told it timed
//! out, which is the truth: it may or may not reach `W` peers.

use crate::hlc::Hlc;
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{ConsensusError, Entry, EntryKind, RequestId};
use std::collections::VecDeque;

/// Why an entry is held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub request: RequestId,
    /// The newest stamp of the write; acknowledgements must cover it.
    pub hlc: Hlc,
    pub deadline_tick: u64,
}

#[derive(Debug)]
struct Pending {
    entry: Entry,
    hold: Option<Hold>,
}

#[derive(Debug)]
pub struct ApplyLog {
    next_index: u64,
    commit_index: u64,
    queue: VecDeque<Pending>,
    released: Vec<Entry>,
}

impl ApplyLog {
    /// A log whose last entry is `last_index`; `recovered` entries are handed out again so the
    /// store (restored from its snapshot) applies them.
    pub fn new(last_index: u64, recovered: Vec<Entry>) -> Self {
        Self {
            next_index: last_index + 1,
            commit_index: last_index,
            queue: VecDeque::new(),
            released: recovered,
        }
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The index of the last entry handed out as committed.
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// Appends a command entry and returns it (for the `entries` to persist).
    pub fn append(&mut self, term: u64, data: Bytes, hold: Option<Hold>) -> Entry {
        self.push(Entry::command(self.next_index, term, data), hold)
    }

    /// Appends an entry built for the next index by `build`.
    pub fn append_with(&mut self, build: impl FnOnce(u64) -> Entry) -> Entry {
        let entry = build(self.next_index);
        debug_assert_eq!(
            entry.index, self.next_index,
            "an appended entry must take the next index"
        );
        self.push(entry, None)
    }

    fn push(&mut self, entry: Entry, hold: Option<Hold>) -> Entry {
        self.next_index += 1;
        self.queue.push_back(Pending { entry: entry.clone(), hold });
        entry
    }

    /// Whether some entry waits for acknowledgements.
    pub fn is_holding(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Releases entries from the front while nothing holds them: a hold ends when `acks` of its
    /// stamp reach `quorum`, or at its deadline — then the client gets `Timeout` and the entry
    /// is applied with no caller waiting on it. Returns the timed-out requests.
    pub fn release(
        &mut self,
        quorum: usize,
        now_tick: u64,
        timeout_ms: u64,
        acks: impl Fn(Hlc) -> usize,
    ) -> Vec<(RequestId, ConsensusError)> {
        let mut timed_out = Vec::new();
        while let Some(front) = self.queue.front() {
            let unmet = front.hold.filter(|hold| acks(hold.hlc) < quorum);
            if let Some(hold) = unmet {
                if now_tick < hold.deadline_tick {
                    break;
                }
                timed_out.push((hold.request, ConsensusError::Timeout(timeout_ms)));
            }
            let mut pending = self.queue.pop_front().expect("front exists");
            if unmet.is_some() {
                pending.entry.data = without_caller(&pending.entry);
            }
            self.hand_out(pending.entry);
        }
        timed_out
    }

    fn hand_out(&mut self, entry: Entry) {
        self.commit_index = entry.index;
        self.released.push(entry);
    }

    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    pub fn take_released(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.released)
    }
}

/// The entry's data with request id 0 in its header, so applying it answers nobody.
fn without_caller(entry: &Entry) -> Bytes {
    match (entry.kind, Proposal::decode(&entry.data)) {
        (EntryKind::Command, Some(p)) => {
            Proposal { origin: p.origin, request: RequestId(0), command: p.command }.encode()
        }
        _ => entry.data.clone(),
    }
}
