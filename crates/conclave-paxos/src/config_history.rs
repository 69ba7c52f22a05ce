//! Which acceptors govern which slots: reconfiguration through the log.
//!
//! A membership entry chosen in slot `s` governs every slot from `s + α` on, where α is the
//! pipelining window (`max_inflight_slots`) — Lamport's α from "Paxos Made Simple" §3. A leader
//! never proposes in a slot beyond `commit + α`, so the configuration of every slot it proposes
//! in is fixed by slots that are already chosen and known to it.

use conclave_core::{Membership, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// Memberships keyed by the first slot they govern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigHistory {
    configs: BTreeMap<u64, Membership>,
}

impl ConfigHistory {
    /// A history that starts with `initial` governing every slot from 1.
    pub fn new(initial: Membership) -> Self {
        Self { configs: BTreeMap::from([(1, initial)]) }
    }

    /// Rebuilds a history from its stored pairs; `None` when there are none.
    pub fn from_pairs(pairs: Vec<(u64, Membership)>) -> Option<Self> {
        if pairs.is_empty() {
            return None;
        }
        Some(Self { configs: pairs.into_iter().collect() })
    }

    pub fn to_pairs(&self) -> Vec<(u64, Membership)> {
        self.configs.iter().map(|(s, m)| (*s, m.clone())).collect()
    }

    /// The membership that governs `slot`.
    pub fn at(&self, slot: u64) -> &Membership {
        self.configs
            .range(..=slot)
            .next_back()
            .or_else(|| self.configs.iter().next())
            .map(|(_, m)| m)
            .expect("a config history is never empty")
    }

    /// Records that `membership` governs slots from `from_slot` on. Returns whether it is new.
    pub fn insert(&mut self, from_slot: u64, membership: Membership) -> bool {
        self.configs.insert(from_slot, membership.clone()) != Some(membership)
    }

    /// Whether some known membership only starts governing after `slot`.
    pub fn has_change_after(&self, slot: u64) -> bool {
        self.configs.range(slot + 1..).next().is_some()
    }

    /// Every node that is a voter for `slot` or for any later slot already known.
    pub fn members_from(&self, slot: u64) -> BTreeSet<NodeId> {
        let mut all: BTreeSet<NodeId> = self.at(slot).voters.clone();
        for m in self.configs.range(slot + 1..).map(|(_, m)| m) {
            all.extend(m.voters.iter().copied());
        }
        all
    }

    /// Forgets memberships that no slot from `slot` on can use.
    pub fn prune_below(&mut self, slot: u64) {
        let Some((&keep, _)) = self.configs.range(..=slot).next_back() else { return };
        self.configs.retain(|&s, _| s >= keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u64]) -> Membership {
        Membership::new(ids.iter().map(|&i| NodeId(i)))
    }

    #[test]
    fn lookup_insert_and_prune() {
        let mut h = ConfigHistory::new(members(&[1, 2, 3]));
        assert!(h.insert(10, members(&[1, 2, 3, 4])));
        assert!(!h.insert(10, members(&[1, 2, 3, 4])));
        assert_eq!(h.at(9), &members(&[1, 2, 3]));
        assert_eq!(h.at(10), &members(&[1, 2, 3, 4]));
        assert!(h.has_change_after(9));
        assert!(!h.has_change_after(10));
        assert_eq!(h.members_from(5).len(), 4);
        h.prune_below(12);
        assert_eq!(h.to_pairs(), vec![(10, members(&[1, 2, 3, 4]))]);
        assert_eq!(h.at(3), &members(&[1, 2, 3, 4]), "lookups below the oldest fall back to it");
    }
}
