//! The last-writer-wins map every replica holds, with the indexes gossip needs.
//!
//! Each key maps to its newest write — a value or a tombstone — and that write's [`Stamp`].
//! Alongside: an index per origin in version order (what scuttlebutt sends), the keys of each
//! Merkle leaf with the leaf hashes (what repair compares), the tombstones in stamp order (what
//! collection scans), and per leaf the collected-through watermark: the stamp of the newest
//! tombstone collected from that leaf. A write to an absent key at or below its leaf's watermark
//! is refused, because it may be a value some collected tombstone deleted: that is what keeps a
//! peer holding an old value from resurrecting it.

use crate::hlc::{Hlc, Stamp};
use crate::merkle::{self, LEAVES, MerkleTree};
use crate::message::Update;
use bytes::Bytes;
use conclave_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// A key's newest write as this replica holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
    pub stamp: Stamp,
    /// Local physical time at which this replica applied the write (tombstone grace runs from
    /// here).
    pub applied_ms: u64,
}

impl Versioned {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// What merging a remote write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The write won and is now held.
    Applied,
    /// The write lost to (or equals) what is held.
    Stale,
    /// The key is absent and the write is at or below its leaf's collected-through watermark.
    Refused { watermark: Stamp },
}

/// The LWW map and its indexes.
#[derive(Clone, Debug)]
pub struct LwwStore {
    map: BTreeMap<Bytes, Versioned>,
    by_origin: BTreeMap<NodeId, BTreeSet<(Hlc, Bytes)>>,
    tombstones: BTreeSet<(Stamp, Bytes)>,
    leaf_keys: Vec<BTreeSet<Bytes>>,
    merkle: MerkleTree,
    watermarks: BTreeMap<u16, Stamp>,
    /// Wrapping sum of the entry hashes of live (non-tombstone) keys.
    live_hash: u64,
    /// Planted bug: rank writes by physical milliseconds alone.
    wall_clock_only: bool,
}

impl LwwStore {
    pub fn new(wall_clock_only: bool) -> Self {
        Self {
            map: BTreeMap::new(),
            by_origin: BTreeMap::new(),
            tombstones: BTreeSet::new(),
            leaf_keys: vec![BTreeSet::new(); LEAVES],
            merkle: MerkleTree::default(),
            watermarks: BTreeMap::new(),
            live_hash: 0,
            wall_clock_only,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.map.get(key)
    }

    /// Every key with its newest write, tombstones included.
    pub fn map(&self) -> &BTreeMap<Bytes, Versioned> {
        &self.map
    }

    pub fn merkle(&self) -> &MerkleTree {
        &self.merkle
    }

    /// A hash of every live key with its stamp: equal on two replicas that hold the same
    /// values, whatever tombstones each still keeps.
    pub fn live_hash(&self) -> u64 {
        self.live_hash
    }

    /// Whether a write stamped `incoming` replaces one stamped `current`.
    pub fn wins(&self, incoming: &Stamp, current: &Stamp) -> bool {
        if self.wall_clock_only {
            incoming.hlc.physical_ms > current.hlc.physical_ms
        } else {
            incoming > current
        }
    }

    /// Merges a write from a peer by last-writer-wins.
    pub fn merge(&mut self, update: &Update, now_ms: u64) -> Merge {
        match self.map.get(&update.key) {
            Some(current) if !self.wins(&update.stamp, &current.stamp) => Merge::Stale,
            Some(_) => {
                self.set(update.key.clone(), update.value.clone(), update.stamp, now_ms);
                Merge::Applied
            }
            None => match self.watermarks.get(&merkle::leaf_of(&update.key)) {
                Some(&watermark) if update.stamp <= watermark => Merge::Refused { watermark },
                _ => {
                    self.set(update.key.clone(), update.value.clone(), update.stamp, now_ms);
                    Merge::Applied
                }
            },
        }
    }

    /// Holds `value` (or a tombstone) for `key` at `stamp`, whatever was there: the path of
    /// local writes, which are newer than anything held, and of recovery.
    pub fn set(&mut self, key: Bytes, value: Option<Bytes>, stamp: Stamp, now_ms: u64) {
        self.remove(&key);
        let leaf = merkle::leaf_of(&key);
        let hash = merkle::entry_hash(&key, &stamp, value.is_none());
        self.merkle.insert(leaf, hash);
        if value.is_some() {
            self.live_hash = self.live_hash.wrapping_add(hash);
        }
        self.leaf_keys[usize::from(leaf)].insert(key.clone());
        self.by_origin.entry(stamp.node).or_default().insert((stamp.hlc, key.clone()));
        if value.is_none() {
            self.tombstones.insert((stamp, key.clone()));
        }
        self.map.insert(key, Versioned { value, stamp, applied_ms: now_ms });
    }

    fn remove(&mut self, key: &Bytes) -> Option<Versioned> {
        let old = self.map.remove(key)?;
        let leaf = merkle::leaf_of(key);
        let hash = merkle::entry_hash(key, &old.stamp, old.is_tombstone());
        self.merkle.remove(leaf, hash);
        if !old.is_tombstone() {
            self.live_hash = self.live_hash.wrapping_sub(hash);
        }
        self.leaf_keys[usize::from(leaf)].remove(key);
        if let Some(index) = self.by_origin.get_mut(&old.stamp.node) {
            index.remove(&(old.stamp.hlc, key.clone()));
            if index.is_empty() {
                self.by_origin.remove(&old.stamp.node);
            }
        }
        if old.is_tombstone() {
            self.tombstones.remove(&(old.stamp, key.clone()));
        }
        Some(old)
    }

    /// Drops the tombstone of `key`. With `raise_watermark`, its leaf's watermark rises to the
    /// tombstone's stamp so the deleted value can never come back.
    pub fn collect(&mut self, key: &Bytes, raise_watermark: bool) -> Option<Stamp> {
        if !self.map.get(key).is_some_and(Versioned::is_tombstone) {
            return None;
        }
        let old = self.remove(key)?;
        if raise_watermark {
            let slot = self.watermarks.entry(merkle::leaf_of(key)).or_insert(old.stamp);
            *slot = (*slot).max(old.stamp);
        }
        Some(old.stamp)
    }

    /// Tombstones, oldest stamp first.
    pub fn tombstones(&self) -> impl Iterator<Item = (&Stamp, &Bytes)> {
        self.tombstones.iter().map(|(s, k)| (s, k))
    }

    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Keys holding a value (not a tombstone) in etcd's `key`/`range_end` convention: an empty
    /// `range_end` names `key` alone, `"\0"` every key from `key` on, anything else
    /// `[key, range_end)`.
    pub fn live_keys_in(&self, key: &Bytes, range_end: &Bytes) -> Vec<Bytes> {
        let upper = match &range_end[..] {
            [] => Bound::Included(&key[..]),
            [0] => Bound::Unbounded,
            end if end > &key[..] => Bound::Excluded(end),
            _ => return Vec::new(),
        };
        self.map
            .range::<[u8], _>((Bound::Included(&key[..]), upper))
            .filter(|(_, v)| !v.is_tombstone())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Writes held from `origin` with readings in `(after, through]`, in version order.
    pub fn origin_range(
        &self,
        origin: NodeId,
        after: Hlc,
        through: Hlc,
    ) -> impl Iterator<Item = (Hlc, &Bytes)> {
        let lower = (after.successor(), Bytes::new());
        self.by_origin
            .get(&origin)
            .into_iter()
            .flat_map(move |index| index.range(lower.clone()..))
            .take_while(move |(h, _)| *h <= through)
            .map(|(h, k)| (*h, k))
    }

    /// Writes held from `origin` with readings above `after` (a peer's version lag).
    pub fn count_after(&self, origin: NodeId, after: Hlc) -> usize {
        self.origin_range(origin, after, Hlc::new(crate::hlc::PHYSICAL_MS_MAX, u16::MAX)).count()
    }

    /// Origins with at least one write held.
    pub fn origins(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_origin.keys().copied()
    }

    /// The write held for `key`, as an update.
    pub fn update(&self, key: &Bytes) -> Option<Update> {
        self.map.get(key).map(|v| Update {
            key: key.clone(),
            value: v.value.clone(),
            stamp: v.stamp,
        })
    }

    /// Every write held in `leaf`, in key order (none for a leaf that does not exist).
    pub fn leaf_updates(&self, leaf: u16) -> Vec<Update> {
        let Some(keys) = self.leaf_keys.get(usize::from(leaf)) else { return Vec::new() };
        keys.iter().filter_map(|k| self.update(k)).collect()
    }

    pub fn watermarks(&self) -> &BTreeMap<u16, Stamp> {
        &self.watermarks
    }

    /// Restores watermarks recovered from the hard state.
    pub fn restore_watermarks(&mut self, watermarks: impl IntoIterator<Item = (u16, Stamp)>) {
        for (leaf, stamp) in watermarks {
            let slot = self.watermarks.entry(leaf).or_insert(stamp);
            *slot = (*slot).max(stamp);
        }
    }

    /// The largest stamp held or collected, so a recovered clock starts above it.
    pub fn max_hlc(&self) -> Hlc {
        let held = self.by_origin.values().filter_map(|i| i.last().map(|(h, _)| *h)).max();
        let collected = self.watermarks.values().map(|s| s.hlc).max();
        held.into_iter().chain(collected).max().unwrap_or(Hlc::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, node: u64) -> Stamp {
        Stamp::new(Hlc::new(ms, 0), NodeId(node))
    }

    fn update(key: &'static str, value: Option<&'static str>, s: Stamp) -> Update {
        Update { key: Bytes::from(key), value: value.map(Bytes::from), stamp: s }
    }

    #[test]
    fn origin_range_is_in_version_order_and_bounded() {
        let mut store = LwwStore::new(false);
        store.set(Bytes::from("b"), Some(Bytes::from("1")), stamp(2, 1), 0);
        store.set(Bytes::from("a"), Some(Bytes::from("1")), stamp(3, 1), 0);
        store.set(Bytes::from("c"), Some(Bytes::from("1")), stamp(1, 1), 0);
        let keys: Vec<_> = store
            .origin_range(NodeId(1), Hlc::new(1, 0), Hlc::new(3, 0))
            .map(|(_, k)| k.clone())
            .collect();
        assert_eq!(keys, vec![Bytes::from("b"), Bytes::from("a")]);
        assert_eq!(store.count_after(NodeId(1), Hlc::ZERO), 3);
    }

    #[test]
    fn live_hash_ignores_tombstones() {
        let mut a = LwwStore::new(false);
        let mut b = LwwStore::new(false);
        a.set(Bytes::from("k"), Some(Bytes::from("v")), stamp(1, 1), 0);
        b.set(Bytes::from("k"), Some(Bytes::from("v")), stamp(1, 1), 0);
        a.set(Bytes::from("gone"), None, stamp(2, 1), 0);
        assert_eq!(a.live_hash(), b.live_hash());
        assert_ne!(a.merkle().root(), b.merkle().root());
        a.set(Bytes::from("k"), None, stamp(3, 1), 0);
        assert_eq!(a.live_hash(), 0);
    }

    #[test]
    fn collected_tombstone_refuses_older_writes() {
        let mut store = LwwStore::new(false);
        store.set(Bytes::from("k"), None, stamp(10, 1), 0);
        assert_eq!(store.collect(&Bytes::from("k"), true), Some(stamp(10, 1)));
        assert_eq!(store.tombstone_count(), 0);
        let old = update("k", Some("v"), stamp(5, 2));
        assert_eq!(store.merge(&old, 0), Merge::Refused { watermark: stamp(10, 1) });
        let newer = update("k", Some("w"), stamp(11, 2));
        assert_eq!(store.merge(&newer, 0), Merge::Applied);
    }
}
