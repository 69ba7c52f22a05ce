//! What a failed run reports, and the check every protocol gets: state machine safety.
//!
//! State machine safety (Raft §5.4.3, and the same promise for every protocol that orders a
//! log): no two replicas apply different entries at the same index. Together with each
//! replica applying indexes one after another, this makes every replica's applied sequence a
//! prefix of one and the same sequence.
//!
//! At most once: a proposal (named by its header's origin node and request id) is ordered
//! once. A protocol that appends a proposal twice — say, because the network delivered a
//! forwarded proposal twice — makes a client's single write happen twice.

use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{Entry, EntryKind};
use std::collections::BTreeMap;
use std::fmt;

/// A broken invariant, with when it was seen and by which check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time, in milliseconds.
    pub at_ms: u64,
    /// The check that failed, e.g. `raft election safety` or `linearizability`.
    pub check: String,
    pub detail: String,
}

impl Violation {
    pub fn new(now_us: u64, check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { at_ms: now_us / 1_000, check: check.into(), detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[at {} ms] {}: {}", self.at_ms, self.check, self.detail.trim_end())
    }
}

/// The first application of each index anywhere, and how far each replica has applied.
#[derive(Debug)]
pub(crate) struct StateMachineSafety {
    first_applied: BTreeMap<u64, (u64, EntryKind, Bytes, usize)>,
    last_applied: Vec<u64>,
    /// Whether replicas share one sequence (see `SimProtocol::SHARED_LOG`); if not, only each
    /// replica's own order is checked.
    shared: bool,
    /// The index at which each proposal (origin, request) was ordered.
    proposals: BTreeMap<(u64, u64), u64>,
}

impl StateMachineSafety {
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            first_applied: BTreeMap::new(),
            last_applied: vec![0; nodes],
            shared: true,
            proposals: BTreeMap::new(),
        }
    }

    /// Checks only that each replica applies its own indexes in order: for protocols whose
    /// replicas apply writes in their own order.
    pub(crate) fn per_replica(nodes: usize) -> Self {
        Self { shared: false, ..Self::new(nodes) }
    }

    /// Replica `node` applied `entry`.
    pub(crate) fn applied(&mut self, node: usize, entry: &Entry) -> Result<(), String> {
        let expected = self.last_applied[node] + 1;
        if entry.index != expected {
            return Err(format!(
                "n{} applied index {} right after index {}",
                node + 1,
                entry.index,
                expected - 1
            ));
        }
        self.last_applied[node] = entry.index;
        if !self.shared {
            return Ok(());
        }
        match self.first_applied.get(&entry.index) {
            None => {
                let first = (entry.term, entry.kind, entry.data.clone(), node);
                self.first_applied.insert(entry.index, first);
                self.ordered_once(entry)
            }
            Some((term, kind, data, first))
                if *term != entry.term || *kind != entry.kind || *data != entry.data =>
            {
                Err(format!(
                    "n{} applied {:?} entry (index {}, term {}) but n{} applied {:?} entry (index {}, term {}) there",
                    node + 1,
                    entry.kind,
                    entry.index,
                    entry.term,
                    first + 1,
                    kind,
                    entry.index,
                    term
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks that the proposal in `entry`, applied first at its index, was not ordered before.
    fn ordered_once(&mut self, entry: &Entry) -> Result<(), String> {
        if entry.kind != EntryKind::Command {
            return Ok(());
        }
        let Some(proposal) = Proposal::decode(&entry.data) else { return Ok(()) };
        let key = (proposal.origin.0, proposal.request.0);
        match self.proposals.insert(key, entry.index) {
            Some(earlier) if earlier != entry.index => Err(format!(
                "at most once: the proposal of n{} request {} was applied at index {earlier} and again at index {}",
                proposal.origin, proposal.request, entry.index
            )),
            _ => Ok(()),
        }
    }

    /// Replica `node` installed a snapshot through `index` from a peer.
    pub(crate) fn installed(&mut self, node: usize, index: u64) -> Result<(), String> {
        if index < self.last_applied[node] {
            return Err(format!(
                "n{} installed a snapshot through index {index} after applying through {}",
                node + 1,
                self.last_applied[node]
            ));
        }
        self.last_applied[node] = index;
        Ok(())
    }

    /// Replica `node` restarted with its state machine restored through `index`.
    pub(crate) fn restarted(&mut self, node: usize, index: u64) {
        self.last_applied[node] = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &'static str) -> Entry {
        Entry::command(index, term, Bytes::from_static(data.as_bytes()))
    }

    // Reference: Raft §5.4.3 (State Machine Safety).
    #[test]
    fn different_entries_at_one_index_are_caught() {
        let mut check = StateMachineSafety::new(2);
        check.applied(0, &entry(1, 1, "a")).unwrap();
        check.applied(1, &entry(1, 1, "a")).unwrap();
        check.applied(0, &entry(2, 1, "b")).unwrap();
        let error = check.applied(1, &entry(2, 2, "c")).unwrap_err();
        assert!(error.contains("n2 applied") && error.contains("n1 applied"), "{error}");
    }

    #[test]
    fn a_proposal_ordered_twice_is_caught() {
        use conclave_core::{NodeId, RequestId};
        let data = Proposal { origin: NodeId(2), request: RequestId(7), command: Bytes::new() };
        let mut check = StateMachineSafety::new(1);
        check.applied(0, &Entry::command(1, 1, data.encode())).unwrap();
        let error = check.applied(0, &Entry::command(2, 1, data.encode())).unwrap_err();
        assert!(error.starts_with("at most once"), "{error}");
    }

    #[test]
    fn gaps_and_regressions_are_caught() {
        let mut check = StateMachineSafety::new(1);
        check.applied(0, &entry(1, 1, "a")).unwrap();
        assert!(check.applied(0, &entry(3, 1, "c")).is_err());
        check.installed(0, 10).unwrap();
        assert!(check.installed(0, 5).is_err());
        check.restarted(0, 0);
        check.applied(0, &entry(1, 1, "a")).unwrap();
    }
}
