//! Version vectors: per origin, the newest write a replica is known to cover.
//!
//! Scuttlebutt (van Renesse et al. 2008, §3.2) summarises a replica's state by one number per
//! participant: the highest version of that participant's updates it has seen. Here the version
//! of a write is its HLC reading at the writer, which strictly increases per writer, so "covers
//! origin `o` through `h`" means: every write `o` made with a reading at or below `h` is held,
//! or something that superseded it is held or still on its way through a lower version of its
//! own origin. The digest a replica sends is its vector; the digest a peer last sent is what
//! that peer acknowledged holding.

use crate::hlc::Hlc;
use conclave_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One covered reading per origin; a missing origin is covered through [`Hlc::ZERO`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<NodeId, Hlc>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, origin: NodeId) -> Hlc {
        self.0.get(&origin).copied().unwrap_or(Hlc::ZERO)
    }

    /// Raises `origin`'s entry to `to` if that is higher; returns whether it moved.
    pub fn raise(&mut self, origin: NodeId, to: Hlc) -> bool {
        if to == Hlc::ZERO {
            return false;
        }
        let slot = self.0.entry(origin).or_insert(Hlc::ZERO);
        if to > *slot {
            *slot = to;
            true
        } else {
            false
        }
    }

    /// Raises every entry to at least `other`'s; digests may arrive out of order, so an older
    /// one never lowers what a peer was already known to hold.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&origin, &h) in &other.0 {
            self.raise(origin, h);
        }
    }

    /// Whether this vector covers at least as much as `other` for every origin.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(&origin, &h)| self.get(origin) >= h)
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Hlc)> + '_ {
        self.0.iter().map(|(&o, &h)| (o, h))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The largest reading in the vector.
    pub fn max(&self) -> Hlc {
        self.0.values().copied().max().unwrap_or(Hlc::ZERO)
    }
}

impl FromIterator<(NodeId, Hlc)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, Hlc)>>(iter: I) -> Self {
        let mut v = Self::new();
        for (o, h) in iter {
            v.raise(o, h);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_never_lowers() {
        let mut a: VersionVector = [(NodeId(1), Hlc::new(5, 0))].into_iter().collect();
        let b: VersionVector =
            [(NodeId(1), Hlc::new(3, 0)), (NodeId(2), Hlc::new(1, 0))].into_iter().collect();
        a.merge(&b);
        assert_eq!(a.get(NodeId(1)), Hlc::new(5, 0));
        assert_eq!(a.get(NodeId(2)), Hlc::new(1, 0));
        assert!(a.dominates(&b));
        assert!(!b.dominates(&a));
    }
}
