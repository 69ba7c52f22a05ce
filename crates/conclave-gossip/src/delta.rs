//! Composing scuttlebutt deltas within a byte budget (van Renesse et al. 2008, §3.2).
//!
//! For every origin where this replica covers more than the peer's digest says the peer does,
//! the deltas are the writes held from that origin above the peer's entry, in version order.
//! When they do not all fit, each origin's share must stay a prefix of its own sequence (the
//! peer's digest entry then moves to the last version it got, with no gap below it). Among
//! origins the order is "scuttle-breadth": one write from each origin in turn, starting at a
//! rotating origin, so that no origin — however busy — takes the whole message.

use crate::hlc::Hlc;
use crate::message::{Deltas, Update, WireSize, varint_len};
use crate::store::LwwStore;
use crate::versions::VersionVector;
use conclave_core::NodeId;

/// Deltas for one peer, and whether some were left out for lack of room.
#[derive(Clone, Debug, Default)]
pub struct Composed {
    pub deltas: Deltas,
    pub overflow: bool,
}

/// Running size of a [`Deltas`] under construction, as postcard will encode it.
#[derive(Default)]
struct Size {
    updates: usize,
    update_bytes: usize,
    through: usize,
    through_bytes: usize,
}

impl Size {
    fn total(&self) -> usize {
        varint_len(self.updates as u64)
            + self.update_bytes
            + varint_len(self.through as u64)
            + self.through_bytes
    }

    fn with_update(&self, bytes: usize) -> usize {
        varint_len(self.updates as u64 + 1)
            + self.update_bytes
            + bytes
            + varint_len(self.through as u64)
            + self.through_bytes
    }

    fn with_through(&self, bytes: usize) -> usize {
        self.total() - varint_len(self.through as u64) + varint_len(self.through as u64 + 1) + bytes
    }
}

/// The deltas a peer whose digest is `peer` lacks, given what this replica covers (`have`),
/// in at most `budget` bytes. A single update larger than the budget is sent alone, so that an
/// oversized value still travels. `rotation` picks the origin that goes first.
pub fn compose(
    store: &LwwStore,
    have: &VersionVector,
    peer: &VersionVector,
    budget: usize,
    rotation: usize,
) -> Composed {
    let mut origins: Vec<(NodeId, Hlc, Hlc)> =
        have.iter().filter(|&(o, h)| h > peer.get(o)).map(|(o, h)| (o, peer.get(o), h)).collect();
    if origins.is_empty() {
        return Composed::default();
    }
    let start = rotation % origins.len();
    origins.rotate_left(start);

    let mut cursors: Vec<_> =
        origins.iter().map(|&(o, after, through)| store.origin_range(o, after, through)).collect();
    // Per origin: still sending, exhausted (its through may be sent), or blocked by the budget.
    let mut done = vec![false; origins.len()];
    let mut blocked = vec![false; origins.len()];
    let mut size = Size::default();
    let mut out = Composed::default();

    while done.iter().zip(&blocked).any(|(d, b)| !d && !b) {
        for i in 0..origins.len() {
            if done[i] || blocked[i] {
                continue;
            }
            let Some((_, key)) = cursors[i].next() else {
                done[i] = true;
                continue;
            };
            let Some(update) = store.update(key) else {
                continue;
            };
            let bytes = update.wire_size();
            if size.with_update(bytes) > budget && !out.deltas.updates.is_empty() {
                blocked[i] = true;
                out.overflow = true;
                continue;
            }
            size.updates += 1;
            size.update_bytes += bytes;
            out.deltas.updates.push(update);
        }
    }

    // Origins sent in full: the peer now covers them as far as we do, even where the writes
    // in between were superseded and so are no longer held.
    for (i, &(origin, _, through)) in origins.iter().enumerate() {
        if !done[i] || blocked[i] {
            continue;
        }
        let bytes = origin.wire_size() + through.wire_size();
        if size.with_through(bytes) > budget {
            out.overflow = true;
            continue;
        }
        size.through += 1;
        size.through_bytes += bytes;
        out.deltas.through.raise(origin, through);
    }
    out
}

/// What a peer may conclude from deltas it received: each update's origin is covered through
/// the update's reading, and each `through` entry as far as it says.
pub fn coverage(deltas: &Deltas) -> impl Iterator<Item = (NodeId, Hlc)> + '_ {
    deltas.updates.iter().map(|u: &Update| (u.stamp.node, u.stamp.hlc)).chain(deltas.through.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Stamp;
    use bytes::Bytes;

    fn store_with(origins: &[(u64, u64)]) -> (LwwStore, VersionVector) {
        let mut store = LwwStore::new(false);
        let mut have = VersionVector::new();
        for &(node, writes) in origins {
            for i in 1..=writes {
                let stamp = Stamp::new(Hlc::new(i, 0), NodeId(node));
                let key = Bytes::from(format!("{node}/{i}"));
                store.set(key, Some(Bytes::from(vec![0u8; 100])), stamp, 0);
                have.raise(NodeId(node), stamp.hlc);
            }
        }
        (store, have)
    }

    #[test]
    fn everything_fits_and_through_covers_each_origin() {
        let (store, have) = store_with(&[(1, 3), (2, 2)]);
        let out = compose(&store, &have, &VersionVector::new(), 64 * 1024, 0);
        assert!(!out.overflow);
        assert_eq!(out.deltas.updates.len(), 5);
        assert_eq!(out.deltas.through, have);
    }

    #[test]
    fn breadth_interleaves_origins_and_stays_a_prefix() {
        let (store, have) = store_with(&[(1, 10), (2, 10)]);
        let out = compose(&store, &have, &VersionVector::new(), 600, 0);
        assert!(out.overflow);
        assert!(out.deltas.wire_size() <= 600);
        let nodes: Vec<u64> = out.deltas.updates.iter().map(|u| u.stamp.node.0).collect();
        assert_eq!(&nodes[..4], &[1, 2, 1, 2]);
        for node in [1, 2] {
            let versions: Vec<u64> = out
                .deltas
                .updates
                .iter()
                .filter(|u| u.stamp.node.0 == node)
                .map(|u| u.stamp.hlc.physical_ms)
                .collect();
            let prefix: Vec<u64> = (1..=versions.len() as u64).collect();
            assert_eq!(versions, prefix);
        }
    }
}
