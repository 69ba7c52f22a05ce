//! Raft in the simulator: the adapter that builds replicas, and the checker of Raft's safety
//! properties (Figure 3 of the paper):
//!
//! - **Election Safety** (§5.2): at most one leader per term, ever.
//! - **Log Matching** (§5.3): entries with the same index and term hold the same command and
//!   follow the same term; checked on every persisted entry against the first copy seen.
//! - **Leader Completeness** (§5.4): a leader of term T holds every entry committed before any
//!   node reached term T.
//! - A replica never replaces an entry at or below its own commit index (§5.4.1).
//!
//! State Machine Safety (§5.4.3) is the simulator's generic check, for every protocol.
//!
//! The checker reads replicas through [`RaftView`], so its unit tests can plant violations in
//! fake replicas.

use super::{Checker, Observation, SimProtocol};
use bytes::Bytes;
use conclave_core::{DetRng, Entry, Membership, NodeId, Recovered, Role};
use conclave_raft::{PlantedBug, Raft, RaftConfig};
use std::collections::BTreeMap;

/// The protocol type this module adapts.
pub type Adapter = Raft;

impl SimProtocol for Raft {
    const NAME: &'static str = "raft";
    const PLANTS: &'static [&'static str] =
        &["commit-previous-term-by-counting", "read-from-deposed-leader", "phantom-ready"];

    type Config = RaftConfig;
    type Checker = RaftChecker;

    /// Defaults for the timeouts; the optional features and the batching limits vary, so that
    /// seeds cover pre-vote and check-quorum on and off, lease reads, and appends small enough
    /// to replicate a log in pieces.
    fn config(rng: &mut DetRng, plant: Option<&str>) -> RaftConfig {
        let mut config = RaftConfig { pre_vote: rng.chance(0.7), ..RaftConfig::default() };
        config.check_quorum = rng.chance(0.7);
        config.lease_read = config.check_quorum && rng.chance(0.3);
        config.max_entries_per_append = [1, 1, 2, 4, 16, 256][rng.below(6) as usize];
        config.max_inflight_appends = [1, 2, 8, 64][rng.below(4) as usize];
        config.snapshot_keep_entries = [0, 10, 100, 5_000][rng.below(4) as usize];
        config.planted_bug = plant.map(|name| match name {
            "commit-previous-term-by-counting" => PlantedBug::CommitPreviousTermByCounting,
            "read-from-deposed-leader" => PlantedBug::ReadFromDeposedLeader,
            "phantom-ready" => PlantedBug::PhantomReady,
            other => panic!("raft has no planted bug {other}"),
        });
        config
    }

    fn tick_interval_ms(config: &RaftConfig) -> u64 {
        config.tick_interval_ms
    }

    fn build(
        id: NodeId,
        membership: &Membership,
        config: &RaftConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Raft, String> {
        Raft::new(id, membership.clone(), config.clone(), recovered, seed)
            .map_err(|e| e.to_string())
    }
}

/// What the checker reads from a replica.
pub trait RaftView {
    fn term(&self) -> u64;
    fn role(&self) -> Role;
    fn commit_index(&self) -> u64;
    fn first_index(&self) -> u64;
    fn term_at(&self, index: u64) -> Option<u64>;
}

impl RaftView for Raft {
    fn term(&self) -> u64 {
        Raft::term(self)
    }
    fn role(&self) -> Role {
        Raft::role(self)
    }
    fn commit_index(&self) -> u64 {
        Raft::commit_index(self)
    }
    fn first_index(&self) -> u64 {
        Raft::first_index(self)
    }
    fn term_at(&self, index: u64) -> Option<u64> {
        Raft::term_at(self, index)
    }
}

/// Raft's invariants, checked incrementally from what each replica does.
#[derive(Debug, Default)]
pub struct RaftChecker {
    /// The leader of each term.
    leaders: BTreeMap<u64, NodeId>,
    /// The first copy seen of each (index, term): the term before it (if known) and its data.
    entries: BTreeMap<(u64, u64), (Option<u64>, Bytes)>,
    /// Term of every entry applied anywhere (so committed).
    committed: BTreeMap<u64, u64>,
    /// For every term: the highest committed index when a node first reached it.
    committed_when_reached: BTreeMap<u64, u64>,
    /// Each replica's commit index when last observed.
    commit_seen: BTreeMap<NodeId, u64>,
}

impl Checker<Raft> for RaftChecker {
    fn observe(&mut self, event: &Observation<'_, Raft>) -> Result<(), String> {
        self.check(event.id, event.node, event.persisted, event.applied, event.restarted)
    }
}

impl RaftChecker {
    /// Checks what replica `id` just did: `persisted` and `applied` entries, or a restart.
    pub fn check(
        &mut self,
        id: NodeId,
        node: &impl RaftView,
        persisted: &[Entry],
        applied: &[Entry],
        restarted: bool,
    ) -> Result<(), String> {
        let term = node.term();
        let highest_committed = self.committed.keys().next_back().copied().unwrap_or(0);
        self.committed_when_reached.entry(term).or_insert(highest_committed);
        if restarted {
            self.commit_seen.insert(id, node.commit_index());
        }
        self.check_persisted(id, node, persisted)?;
        for entry in applied {
            if let Some(&t) = self.committed.get(&entry.index)
                && t != entry.term
            {
                return Err(format!(
                    "state machine safety: n{id} applied index {} of term {}, committed with term {t}",
                    entry.index, entry.term
                ));
            }
            self.committed.insert(entry.index, entry.term);
        }
        self.commit_seen.insert(id, node.commit_index());
        if node.role() == Role::Leader {
            self.check_leader(id, node, term)?;
        }
        Ok(())
    }

    /// Log Matching, and no replica rewriting what it knew committed.
    fn check_persisted(
        &mut self,
        id: NodeId,
        node: &impl RaftView,
        persisted: &[Entry],
    ) -> Result<(), String> {
        let commit_seen = self.commit_seen.get(&id).copied().unwrap_or(0);
        for (i, entry) in persisted.iter().enumerate() {
            if entry.index <= commit_seen
                && let Some(&t) = self.committed.get(&entry.index)
                && t != entry.term
            {
                return Err(format!(
                    "committed entry overwritten: n{id} replaced index {} (term {t}, at or below its commit index {commit_seen}) with an entry of term {}",
                    entry.index, entry.term
                ));
            }
            let previous = match i {
                0 => node.term_at(entry.index - 1),
                _ => Some(persisted[i - 1].term),
            };
            match self.entries.get(&(entry.index, entry.term)) {
                None => {
                    self.entries.insert((entry.index, entry.term), (previous, entry.data.clone()));
                }
                Some((first_previous, data)) => {
                    if *data != entry.data {
                        return Err(format!(
                            "log matching: n{id} holds a different entry at index {} term {} than another replica did",
                            entry.index, entry.term
                        ));
                    }
                    if let (Some(a), Some(b)) = (first_previous, previous)
                        && *a != b
                    {
                        return Err(format!(
                            "log matching: at index {} term {}, n{id} has term {b} before it where another replica had term {a}",
                            entry.index, entry.term
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Election Safety, and Leader Completeness when a leader is first seen.
    fn check_leader(&mut self, id: NodeId, node: &impl RaftView, term: u64) -> Result<(), String> {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(format!("election safety: n{other} and n{id} both led term {term}"));
            }
            return Ok(());
        }
        self.leaders.insert(term, id);
        let horizon = self.committed_when_reached.get(&term).copied().unwrap_or(0);
        let first = node.first_index();
        if first > horizon {
            return Ok(()); // every entry committed before this term is compacted here
        }
        for (&index, &committed_term) in self.committed.range(first..=horizon) {
            let held = node.term_at(index);
            if held != Some(committed_term) {
                return Err(format!(
                    "leader completeness: n{id} leads term {term} without entry {index} of term {committed_term}, committed before term {term} began (it holds {})",
                    held.map_or("nothing".into(), |t| format!("term {t}"))
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica with a log given as terms, index 1 first.
    #[derive(Debug, Default)]
    struct Fake {
        term: u64,
        leader: bool,
        commit: u64,
        log: Vec<u64>,
    }

    impl RaftView for Fake {
        fn term(&self) -> u64 {
            self.term
        }
        fn role(&self) -> Role {
            if self.leader { Role::Leader } else { Role::Follower }
        }
        fn commit_index(&self) -> u64 {
            self.commit
        }
        fn first_index(&self) -> u64 {
            1
        }
        fn term_at(&self, index: u64) -> Option<u64> {
            if index == 0 { Some(0) } else { self.log.get(index as usize - 1).copied() }
        }
    }

    fn entries(log: &[u64], from: u64) -> Vec<Entry> {
        log.iter()
            .enumerate()
            .skip(from as usize - 1)
            .map(|(i, &t)| Entry::command(i as u64 + 1, t, Bytes::from(format!("{i}@{t}"))))
            .collect()
    }

    // Reference: Raft §5.2 (Election Safety).
    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let mut checker = RaftChecker::default();
        let a = Fake { term: 2, leader: true, ..Fake::default() };
        checker.check(NodeId(1), &a, &[], &[], false).unwrap();
        checker.check(NodeId(1), &a, &[], &[], false).unwrap();
        let error = checker.check(NodeId(2), &a, &[], &[], false).unwrap_err();
        assert!(error.starts_with("election safety"), "{error}");
    }

    // Reference: Raft §5.3 (Log Matching Property).
    #[test]
    fn same_index_and_term_with_different_data_is_caught() {
        let mut checker = RaftChecker::default();
        let log = vec![1, 1];
        let node = Fake { term: 1, log: log.clone(), ..Fake::default() };
        checker.check(NodeId(1), &node, &entries(&log, 1), &[], false).unwrap();
        let mut forged = entries(&log, 2);
        forged[0].data = Bytes::from_static(b"forged");
        let error = checker.check(NodeId(2), &node, &forged, &[], false).unwrap_err();
        assert!(error.starts_with("log matching"), "{error}");
    }

    // Reference: Raft §5.3 (Log Matching: identical histories before a matching entry).
    #[test]
    fn same_entry_after_different_prefixes_is_caught() {
        let mut checker = RaftChecker::default();
        let first = Fake { term: 3, log: vec![1, 3], ..Fake::default() };
        checker.check(NodeId(1), &first, &entries(&first.log, 2), &[], false).unwrap();
        let second = Fake { term: 3, log: vec![2, 3], ..Fake::default() };
        let error =
            checker.check(NodeId(2), &second, &entries(&first.log, 2), &[], false).unwrap_err();
        assert!(error.contains("term 2 before it"), "{error}");
    }

    // Reference: Raft §5.4.2 and Figure 8: an entry committed by counting replicas of an
    // earlier term is missing from a later leader.
    #[test]
    fn leader_without_a_committed_entry_is_caught() {
        let mut checker = RaftChecker::default();
        let follower = Fake { term: 4, commit: 2, log: vec![1, 2], ..Fake::default() };
        checker.check(NodeId(1), &follower, &[], &entries(&follower.log, 1), false).unwrap();
        let leader = Fake { term: 5, leader: true, commit: 1, log: vec![1, 3] };
        let error = checker.check(NodeId(5), &leader, &[], &[], false).unwrap_err();
        assert!(error.starts_with("leader completeness"), "{error}");
    }

    // Reference: Raft §5.4.1: a term that began before an entry committed need not hold it.
    #[test]
    fn stale_leader_of_an_earlier_reached_term_is_not_flagged() {
        let mut checker = RaftChecker::default();
        let candidate = Fake { term: 5, log: vec![1], ..Fake::default() };
        checker.check(NodeId(3), &candidate, &[], &[], false).unwrap();
        let follower = Fake { term: 6, commit: 2, log: vec![1, 6], ..Fake::default() };
        checker.check(NodeId(1), &follower, &[], &entries(&follower.log, 1), false).unwrap();
        let stale = Fake { term: 5, leader: true, log: vec![1, 5], ..Fake::default() };
        checker.check(NodeId(3), &stale, &[], &[], false).unwrap();
    }

    // Reference: Raft §5.4.1: committed entries are never removed from a log.
    #[test]
    fn overwriting_an_own_committed_entry_is_caught() {
        let mut checker = RaftChecker::default();
        let node = Fake { term: 2, commit: 2, log: vec![1, 2], ..Fake::default() };
        checker
            .check(NodeId(1), &node, &entries(&node.log, 1), &entries(&node.log, 1), false)
            .unwrap();
        let rewritten = Fake { term: 3, commit: 2, log: vec![1, 3], ..Fake::default() };
        let error = checker
            .check(NodeId(1), &rewritten, &entries(&rewritten.log, 2), &[], false)
            .unwrap_err();
        assert!(error.starts_with("committed entry overwritten"), "{error}");
    }
}
