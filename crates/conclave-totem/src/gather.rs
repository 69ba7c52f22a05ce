//! The gather state of the membership protocol (Totem §4.2): agreeing on who forms the next ring.
//!
//! Each gathering member keeps a `proc_set` (members it believes should be in the ring) and a
//! `fail_set` (members it has given up on), and broadcasts them in join messages. Sets only
//! grow: a join adds the members and the failures it names (Totem §4.2). Consensus is reached
//! when every member of `proc_set − fail_set` has sent a join with exactly this member's two
//! sets.
//!
//! Failures spread: whoever hears of one adopts it. So failures must only be declared when they
//! are real, or a grudge against a live member passes from gather to gather and rings keep
//! re-forming without one member or another. Hence two departures from the paper's letter:
//! at the consensus timeout only the members not heard from since the previous timeout are
//! declared failed (a member heard from that still disagrees is failed only at the second such
//! timeout in a row, as a safety net); and a join that names this member as failed is ignored
//! rather than answered by failing its sender, which the timeout then does if the sender stays
//! out of reach. Gathering therefore always ends, at worst in a ring of one.

use crate::message::Join;
use conclave_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// One member's gather state.
#[derive(Clone, Debug)]
pub(crate) struct Gather {
    pub proc_set: BTreeSet<NodeId>,
    pub fail_set: BTreeSet<NodeId>,
    /// The latest join received from each member during this gather.
    joins: BTreeMap<NodeId, Join>,
    /// Members heard from since the consensus timer last started.
    heard: BTreeSet<NodeId>,
    /// Consensus timeouts in a row at which every prospective member had been heard from.
    stalls: u32,
    /// Ticks since this member last sent its join.
    pub join_elapsed: u64,
    /// Ticks since gathering began or the consensus timer last fired.
    pub consensus_elapsed: u64,
}

impl Gather {
    pub fn new(me: NodeId, proc_set: impl IntoIterator<Item = NodeId>) -> Self {
        let mut proc_set: BTreeSet<NodeId> = proc_set.into_iter().collect();
        proc_set.insert(me);
        Self {
            proc_set,
            fail_set: BTreeSet::new(),
            joins: BTreeMap::new(),
            heard: BTreeSet::new(),
            stalls: 0,
            join_elapsed: 0,
            consensus_elapsed: 0,
        }
    }

    /// The members the next ring would have: `proc_set − fail_set`.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.proc_set.difference(&self.fail_set).copied().collect()
    }

    /// The member that creates the commit token once consensus is reached: the lowest id.
    pub fn representative(&self) -> Option<NodeId> {
        self.members().into_iter().next()
    }

    pub fn join(&self, ring_seq: u64) -> Join {
        Join { ring_seq, proc_set: self.proc_set.clone(), fail_set: self.fail_set.clone() }
    }

    /// Takes in a join from `from`; returns whether this member's sets changed (and so its
    /// join must be sent again).
    pub fn on_join(&mut self, me: NodeId, from: NodeId, join: Join) -> bool {
        // A member declared failed stays failed for this gather (Totem §4.2).
        if self.fail_set.contains(&from) {
            return false;
        }
        if join.fail_set.contains(&me) {
            // It cannot hear this member. The paper fails it at once; ignoring it instead leaves
            // it silent here, so it is failed at the consensus timeout unless it gathers anew
            // with this member in view (see the module documentation).
            return false;
        }
        self.heard.insert(from);
        let before = (self.proc_set.len(), self.fail_set.len());
        self.proc_set.extend(join.proc_set.iter().copied());
        self.proc_set.insert(from);
        self.fail_set.extend(join.fail_set.iter().copied());
        self.joins.insert(from, join);
        before != (self.proc_set.len(), self.fail_set.len())
    }

    /// Whether every prospective member sent a join with exactly this member's sets.
    pub fn consensus(&self, me: NodeId) -> bool {
        self.members().into_iter().filter(|&m| m != me).all(|m| self.agrees(m))
    }

    fn agrees(&self, member: NodeId) -> bool {
        self.joins
            .get(&member)
            .is_some_and(|j| j.proc_set == self.proc_set && j.fail_set == self.fail_set)
    }

    /// The consensus timer fired: the prospective members not heard from since the timer
    /// started are declared failed; if every one was heard from, those that still do not agree
    /// are. Returns whether the sets changed.
    ///
    /// Failing the silent ones first lets members that merely disagree for now (they have not
    /// yet failed the same silent member) converge instead of failing each other.
    pub fn on_consensus_timeout(&mut self, me: NodeId) -> bool {
        let others: Vec<NodeId> = self.members().into_iter().filter(|&m| m != me).collect();
        let mut failed: Vec<NodeId> =
            others.iter().copied().filter(|m| !self.heard.contains(m)).collect();
        if failed.is_empty() {
            // Everyone is alive but some still disagree: give them one more period to
            // converge before giving up on them (a safety net, e.g. for joins that cross).
            self.stalls += 1;
            if self.stalls >= 2 {
                failed = others.into_iter().filter(|&m| !self.agrees(m)).collect();
            }
        } else {
            self.stalls = 0;
        }
        self.heard.clear();
        self.consensus_elapsed = 0;
        self.fail_set.extend(failed.iter().copied());
        !failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u64) -> NodeId {
        NodeId(i)
    }

    fn set(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|&i| n(i)).collect()
    }

    // Reference: Totem §4.2 (join messages merge proc and fail sets until consensus).
    #[test]
    fn joins_merge_until_consensus() {
        let mut g = Gather::new(n(1), [n(2)]);
        assert!(!g.consensus(n(1)));
        let join3 = Join { ring_seq: 4, proc_set: set(&[3]), fail_set: set(&[]) };
        assert!(g.on_join(n(1), n(3), join3));
        assert_eq!(g.proc_set, set(&[1, 2, 3]));
        for from in [2, 3] {
            let j = Join { ring_seq: 4, proc_set: set(&[1, 2, 3]), fail_set: set(&[]) };
            assert!(!g.on_join(n(1), n(from), j));
        }
        assert!(g.consensus(n(1)));
        assert_eq!(g.representative(), Some(n(1)));
    }

    #[test]
    fn consensus_timeout_fails_the_silent() {
        let mut g = Gather::new(n(2), [n(1), n(3)]);
        let j = Join { ring_seq: 4, proc_set: set(&[1, 2, 3]), fail_set: set(&[]) };
        g.on_join(n(2), n(3), j);
        assert!(g.on_consensus_timeout(n(2)));
        assert_eq!(g.members(), set(&[2, 3]));
        // Node 3 has not yet seen node 1 fail: no consensus until it agrees.
        assert!(!g.consensus(n(2)));
        let j = Join { ring_seq: 4, proc_set: set(&[1, 2, 3]), fail_set: set(&[1]) };
        g.on_join(n(2), n(3), j);
        assert!(g.consensus(n(2)));
        // A join from a failed member is ignored.
        let j = Join { ring_seq: 9, proc_set: set(&[1]), fail_set: set(&[]) };
        assert!(!g.on_join(n(2), n(1), j));
    }

    #[test]
    fn a_member_that_failed_me_is_failed_once_silent() {
        let mut g = Gather::new(n(1), [n(2)]);
        let j = Join { ring_seq: 4, proc_set: set(&[1, 2]), fail_set: set(&[1]) };
        assert!(!g.on_join(n(1), n(2), j));
        assert!(!g.consensus(n(1)));
        assert!(g.on_consensus_timeout(n(1)));
        assert_eq!(g.members(), set(&[1]));
        assert!(g.consensus(n(1)));
    }

    #[test]
    fn failures_named_by_others_are_adopted() {
        let mut g = Gather::new(n(2), [n(1)]);
        let j = Join { ring_seq: 4, proc_set: set(&[1, 2, 3]), fail_set: set(&[4]) };
        assert!(g.on_join(n(2), n(3), j));
        assert_eq!(g.proc_set, set(&[1, 2, 3]));
        assert_eq!(g.fail_set, set(&[4]));
    }

    #[test]
    fn the_silent_are_failed_before_the_disagreeing() {
        let mut g = Gather::new(n(1), [n(2), n(3)]);
        let j = Join { ring_seq: 4, proc_set: set(&[1, 2, 3]), fail_set: set(&[]) };
        g.on_join(n(1), n(2), j.clone());
        assert!(g.on_consensus_timeout(n(1)));
        assert_eq!(g.fail_set, set(&[3]), "node 3 was silent; node 2 only disagreed");
        // Node 2 is heard from but still disagrees: it gets one more period...
        g.on_join(n(1), n(2), j.clone());
        assert!(!g.on_consensus_timeout(n(1)));
        // ...and is failed at the next one.
        g.on_join(n(1), n(2), j);
        assert!(g.on_consensus_timeout(n(1)));
        assert!(g.fail_set.contains(&n(2)));
    }
}
