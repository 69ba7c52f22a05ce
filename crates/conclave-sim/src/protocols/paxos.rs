//! Multi-Paxos in the simulator: the adapter that builds replicas, and the checker of Paxos's
//! safety properties (Lamport, "Paxos Made Simple" §2):
//!
//! - **At most one value is chosen per slot** (§2.1, safety): a value is chosen once a majority
//!   of acceptors accepted it at one ballot. The checker records every (slot, ballot, value)
//!   each replica makes durable, so it sees a value become chosen even if no learner learns it.
//! - **One value per ballot per slot** (§2.2: a proposer issues one proposal per number).
//! - **A chosen value never changes**: whatever a learner holds at or below its commit index,
//!   or applies, is the value chosen there, on every replica, forever.
//! - **One leader per ballot**, and a ballot led only by the node it names.
//! - **An acceptor never forgets a promise** (§2.2, P1a across crashes, and §2.4): the promised
//!   ballot a replica showed after carrying out a `Ready` (so after making it durable) never
//!   goes down, not even across a restart.
//!
//! Applied sequences being prefixes of each other is the simulator's generic state machine
//! safety check, for every protocol.
//!
//! The checker reads replicas through [`PaxosView`], so its unit tests can plant violations in
//! fake replicas.

use super::{Checker, Observation, SimProtocol};
use bytes::Bytes;
use conclave_core::{DetRng, Entry, EntryKind, Membership, NodeId, Recovered};
use conclave_paxos::{Ballot, Paxos, PaxosConfig, PlantedBug};
use std::collections::{BTreeMap, BTreeSet};

/// The protocol type this module adapts.
pub type Adapter = Paxos;

impl SimProtocol for Paxos {
    const NAME: &'static str = "paxos";
    const PLANTS: &'static [&'static str] =
        &["answer-prepare-before-persisting", "ignore-accepted-values-in-promises"];

    type Config = PaxosConfig;
    type Checker = PaxosChecker;

    /// Defaults for the timeouts; leases, batch sizes and the pipelining window vary, so that
    /// seeds cover reads through the log as well as leases, and windows small enough to stall.
    fn config(rng: &mut DetRng, plant: Option<&str>) -> PaxosConfig {
        let mut config = PaxosConfig::default();
        if rng.chance(0.4) {
            config.lease_ms = 0;
        }
        config.max_batch_entries = [1, 2, 8, 64][rng.below(4) as usize];
        config.max_inflight_slots = [1, 2, 8, 128][rng.below(4) as usize];
        config.planted_bug = plant.map(|name| match name {
            "answer-prepare-before-persisting" => PlantedBug::AnswerPrepareBeforePersisting,
            "ignore-accepted-values-in-promises" => PlantedBug::IgnoreAcceptedValuesInPromises,
            other => panic!("paxos has no planted bug {other}"),
        });
        config
    }

    fn tick_interval_ms(config: &PaxosConfig) -> u64 {
        config.tick_interval_ms
    }

    fn build(
        id: NodeId,
        membership: &Membership,
        config: &PaxosConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Paxos, String> {
        Paxos::new(id, membership.clone(), config.clone(), recovered, seed)
            .map_err(|e| e.to_string())
    }
}

/// What the checker reads from a replica.
pub trait PaxosView {
    fn promised(&self) -> Ballot;
    /// The ballot it leads at, if it leads.
    fn leading(&self) -> Option<Ballot>;
    fn commit_index(&self) -> u64;
    /// The value held for a slot at or below the commit index (`None` when compacted).
    fn chosen(&self, slot: u64) -> Option<&Entry>;
    /// Every record held, for a replica just restarted from its storage.
    fn records(&self) -> Vec<Entry>;
}

impl PaxosView for Paxos {
    fn promised(&self) -> Ballot {
        Paxos::promised(self)
    }
    fn leading(&self) -> Option<Ballot> {
        self.is_leader().then(|| self.current_ballot())
    }
    fn commit_index(&self) -> u64 {
        Paxos::commit_index(self)
    }
    fn chosen(&self, slot: u64) -> Option<&Entry> {
        Paxos::chosen(self, slot)
    }
    fn records(&self) -> Vec<Entry> {
        let (first, last) = self.log_bounds();
        (first..=last).filter_map(|s| self.accepted(s).map(|(_, e)| e.clone())).collect()
    }
}

type Value = (EntryKind, Bytes);

fn value(entry: &Entry) -> Value {
    (entry.kind, entry.data.clone())
}

/// Paxos's invariants, checked incrementally from what each replica does.
#[derive(Debug, Default)]
pub struct PaxosChecker {
    /// Every proposal seen in a durable record: (slot, packed ballot) → value and the
    /// acceptors that hold or held it.
    proposals: BTreeMap<(u64, u64), (Value, BTreeSet<NodeId>)>,
    /// The value chosen in each slot, and the ballot a majority accepted it at.
    chosen: BTreeMap<u64, (Value, u64)>,
    /// The value learners hold as chosen in each slot, and who showed it first.
    learned: BTreeMap<u64, (Value, NodeId)>,
    /// Each replica's commit index when last observed (learned slots below it are checked).
    commit_seen: BTreeMap<NodeId, u64>,
    /// The highest promise each replica showed after a `Ready`.
    promised_seen: BTreeMap<NodeId, Ballot>,
    /// The leader of each ballot.
    leaders: BTreeMap<Ballot, NodeId>,
}

impl Checker<Paxos> for PaxosChecker {
    fn observe(&mut self, event: &Observation<'_, Paxos>) -> Result<(), String> {
        let quorum = event.cluster.size() / 2 + 1;
        self.check(event.id, event.node, event.persisted, event.applied, event.restarted, quorum)
    }
}

impl PaxosChecker {
    /// Checks what replica `id` just did: `persisted` and `applied` entries, or a restart.
    pub fn check(
        &mut self,
        id: NodeId,
        node: &impl PaxosView,
        persisted: &[Entry],
        applied: &[Entry],
        restarted: bool,
        quorum: usize,
    ) -> Result<(), String> {
        self.check_promise(id, node, restarted)?;
        if restarted {
            // A torn write may have been kept without being observed: count what is stored.
            self.record_votes(id, &node.records(), quorum)?;
            self.commit_seen.insert(id, 0);
        }
        self.record_votes(id, persisted, quorum)?;
        self.check_learned(id, node, applied)?;
        if let Some(ballot) = node.leading() {
            if ballot.node != id {
                return Err(format!("ballot ownership: n{id} leads at ballot {ballot}"));
            }
            if let Some(other) = self.leaders.insert(ballot, id)
                && other != id
            {
                return Err(format!("one leader per ballot: n{other} and n{id} led {ballot}"));
            }
        }
        Ok(())
    }

    fn check_promise(
        &mut self,
        id: NodeId,
        node: &impl PaxosView,
        restarted: bool,
    ) -> Result<(), String> {
        let promised = node.promised();
        let seen = self.promised_seen.entry(id).or_default();
        if promised < *seen {
            let when = if restarted { " after restarting" } else { "" };
            return Err(format!(
                "promise forgotten: n{id} promised {seen} and{when} holds only {promised}"
            ));
        }
        *seen = promised;
        Ok(())
    }

    /// Counts the acceptors of each proposal; a majority makes its value chosen.
    fn record_votes(&mut self, id: NodeId, records: &[Entry], quorum: usize) -> Result<(), String> {
        for entry in records {
            let slot = entry.index;
            let ballot = Ballot::from_u64(entry.term);
            let (first_value, voters) = self
                .proposals
                .entry((slot, entry.term))
                .or_insert_with(|| (value(entry), BTreeSet::new()));
            if *first_value != value(entry) {
                return Err(format!(
                    "one value per ballot: n{id} holds a different value in slot {slot} at \
                     ballot {ballot} than another acceptor did"
                ));
            }
            voters.insert(id);
            if voters.len() < quorum {
                continue;
            }
            match self.chosen.get(&slot) {
                None => {
                    self.chosen.insert(slot, (value(entry), entry.term));
                }
                Some((chosen, at)) if *chosen != value(entry) => {
                    return Err(format!(
                        "two values chosen in slot {slot}: {:?} at ballot {} and {:?} at \
                         ballot {ballot} (majority completed by n{id})",
                        chosen.0,
                        Ballot::from_u64(*at),
                        entry.kind
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What a learner holds as chosen (or applies) must be what is chosen, and never change.
    fn check_learned(
        &mut self,
        id: NodeId,
        node: &impl PaxosView,
        applied: &[Entry],
    ) -> Result<(), String> {
        let commit = node.commit_index();
        let from = self.commit_seen.get(&id).copied().unwrap_or(0).min(commit);
        let held = (from + 1..=commit).filter_map(|s| node.chosen(s).cloned());
        for entry in held.chain(applied.iter().cloned()).collect::<Vec<_>>() {
            let slot = entry.index;
            if let Some((chosen, at)) = self.chosen.get(&slot)
                && *chosen != value(&entry)
            {
                return Err(format!(
                    "learned value not chosen: n{id} holds {:?} as chosen in slot {slot}, \
                     but a majority accepted {:?} at ballot {}",
                    entry.kind,
                    chosen.0,
                    Ballot::from_u64(*at)
                ));
            }
            match self.learned.get(&slot) {
                Some((learned, first)) if *learned != value(&entry) => {
                    return Err(format!(
                        "chosen value changed: n{id} holds {:?} in slot {slot}, n{first} held \
                         {:?}",
                        entry.kind, learned.0
                    ));
                }
                Some(_) => {}
                None => {
                    self.learned.insert(slot, (value(&entry), id));
                }
            }
        }
        self.commit_seen.insert(id, commit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Fake {
        promised: Ballot,
        leading: Option<Ballot>,
        log: Vec<Entry>,
        commit: u64,
    }

    impl PaxosView for Fake {
        fn promised(&self) -> Ballot {
            self.promised
        }
        fn leading(&self) -> Option<Ballot> {
            self.leading
        }
        fn commit_index(&self) -> u64 {
            self.commit
        }
        fn chosen(&self, slot: u64) -> Option<&Entry> {
            if slot > self.commit { None } else { self.log.get(slot as usize - 1) }
        }
        fn records(&self) -> Vec<Entry> {
            self.log.clone()
        }
    }

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn cmd(index: u64, ballot: Ballot, data: &'static str) -> Entry {
        Entry::command(index, ballot.to_u64(), Bytes::from_static(data.as_bytes()))
    }

    // Reference: Paxos Made Simple §2.1 — only a single value is chosen.
    #[test]
    fn two_values_chosen_in_one_slot_are_caught() {
        let mut checker = PaxosChecker::default();
        let node = Fake::default();
        let (n1, n2, n3) = (NodeId(1), NodeId(2), NodeId(3));
        checker.check(n1, &node, &[cmd(1, b(1, 1), "a")], &[], false, 2).unwrap();
        checker.check(n2, &node, &[cmd(1, b(1, 1), "a")], &[], false, 2).unwrap();
        checker.check(n3, &node, &[cmd(1, b(2, 3), "x")], &[], false, 2).unwrap();
        let error = checker.check(n2, &node, &[cmd(1, b(2, 3), "x")], &[], false, 2).unwrap_err();
        assert!(error.starts_with("two values chosen in slot 1"), "{error}");
    }

    // Reference: Paxos Made Simple §2.2 — one proposal per proposal number.
    #[test]
    fn two_values_at_one_ballot_are_caught() {
        let mut checker = PaxosChecker::default();
        let node = Fake::default();
        checker.check(NodeId(1), &node, &[cmd(4, b(1, 1), "a")], &[], false, 2).unwrap();
        let error =
            checker.check(NodeId(2), &node, &[cmd(4, b(1, 1), "b")], &[], false, 2).unwrap_err();
        assert!(error.starts_with("one value per ballot"), "{error}");
    }

    #[test]
    fn a_learned_value_that_changes_is_caught() {
        let mut checker = PaxosChecker::default();
        let first = Fake { log: vec![cmd(1, b(1, 1), "a")], commit: 1, ..Fake::default() };
        checker.check(NodeId(1), &first, &[], &[], false, 3).unwrap();
        let other = Fake { log: vec![cmd(1, b(2, 2), "z")], commit: 1, ..Fake::default() };
        let error = checker.check(NodeId(2), &other, &[], &[], false, 3).unwrap_err();
        assert!(error.starts_with("chosen value changed"), "{error}");
        let mut checker = PaxosChecker::default();
        checker.check(NodeId(1), &first, &[], &[], false, 3).unwrap();
        let applied = [cmd(1, b(2, 2), "z")];
        let error =
            checker.check(NodeId(3), &Fake::default(), &[], &applied, false, 3).unwrap_err();
        assert!(error.starts_with("chosen value changed"), "{error}");
    }

    // Reference: Paxos Made Simple §2.4 — an acceptor remembers its promise across a restart.
    #[test]
    fn a_promise_forgotten_in_a_crash_is_caught() {
        let mut checker = PaxosChecker::default();
        let before = Fake { promised: b(3, 2), ..Fake::default() };
        checker.check(NodeId(1), &before, &[], &[], false, 2).unwrap();
        let after = Fake { promised: b(1, 1), ..Fake::default() };
        let error = checker.check(NodeId(1), &after, &[], &[], true, 2).unwrap_err();
        assert!(error.starts_with("promise forgotten"), "{error}");
    }

    #[test]
    fn two_leaders_of_one_ballot_are_caught() {
        let mut checker = PaxosChecker::default();
        let leader = Fake { leading: Some(b(2, 1)), ..Fake::default() };
        checker.check(NodeId(1), &leader, &[], &[], false, 2).unwrap();
        let error = checker.check(NodeId(2), &leader, &[], &[], false, 2).unwrap_err();
        assert!(error.starts_with("ballot ownership"), "{error}");
    }
}
