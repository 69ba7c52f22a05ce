//! A fixed-shape hash tree over the key space, for full repair between two replicas.
//!
//! Digests only find what a peer has not yet been told about; anything they miss (an update
//! lost with a crashed relay, a replica restored from an old disk) is found by comparing hash
//! trees, as Dynamo does between replicas (DeCandia et al. 2007, §4.7). Keys fall into
//! [`LEAVES`] buckets by a hash of the key; a leaf's hash is the wrapping sum of its entries'
//! hashes, so it is kept up to date in O(1) per change and does not depend on insertion order.
//! Above the leaves, [`FANOUT`] children per node make a two-level tree: comparing roots, then
//! the differing children's leaves, finds the differing buckets in two round trips.

use crate::hlc::Stamp;

/// Children per inner node.
pub const FANOUT: usize = 16;
/// Buckets at the bottom of the tree.
pub const LEAVES: usize = FANOUT * FANOUT;

/// The leaf a key belongs to.
pub fn leaf_of(key: &[u8]) -> u16 {
    (hash_bytes(key) % LEAVES as u64) as u16
}

/// The hash an entry contributes to its leaf: key, stamp and whether it is a tombstone.
/// The value is not hashed: a stamp identifies one write, so equal stamps mean equal values.
pub fn entry_hash(key: &[u8], stamp: &Stamp, tombstone: bool) -> u64 {
    let mut h = hash_bytes(key);
    h = mix(h ^ stamp.hlc.pack());
    h = mix(h ^ stamp.node.0);
    mix(h ^ u64::from(tombstone))
}

/// FNV-1a over the bytes, finished with a strong mix so nearby keys spread over leaves.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Combines an ordered list of child hashes into their parent's hash.
fn combine(children: &[u64]) -> u64 {
    children.iter().fold(0x6a09_e667_f3bc_c908, |acc, &c| mix(acc ^ c).wrapping_add(c))
}

/// The tree: leaf hashes are maintained; inner hashes are computed when asked for.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    leaves: Vec<u64>,
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self { leaves: vec![0; LEAVES] }
    }
}

impl MerkleTree {
    /// Adds an entry's hash to its leaf.
    pub fn insert(&mut self, leaf: u16, hash: u64) {
        let slot = &mut self.leaves[usize::from(leaf)];
        *slot = slot.wrapping_add(hash);
    }

    /// Removes an entry's hash from its leaf.
    pub fn remove(&mut self, leaf: u16, hash: u64) {
        let slot = &mut self.leaves[usize::from(leaf)];
        *slot = slot.wrapping_sub(hash);
    }

    pub fn leaf(&self, leaf: u16) -> u64 {
        self.leaves[usize::from(leaf)]
    }

    /// The leaf hashes under child `child` of the root (none for a child that does not exist).
    pub fn leaves_of(&self, child: u8) -> &[u64] {
        let start = usize::from(child) * FANOUT;
        self.leaves.get(start..start + FANOUT).unwrap_or(&[])
    }

    /// The hashes of the root's children.
    pub fn children(&self) -> Vec<u64> {
        self.leaves.chunks(FANOUT).map(combine).collect()
    }

    pub fn root(&self) -> u64 {
        combine(&self.children())
    }

    /// The root's children whose hashes differ from `theirs`.
    pub fn differing_children(&self, theirs: &[u64]) -> Vec<u8> {
        let ours = self.children();
        (0..FANOUT).filter(|&i| theirs.get(i) != Some(&ours[i])).map(|i| i as u8).collect()
    }

    /// The leaves under `child` whose hashes differ from `theirs`.
    pub fn differing_leaves(&self, child: u8, theirs: &[u64]) -> Vec<u16> {
        let ours = self.leaves_of(child);
        (0..ours.len())
            .filter(|&i| theirs.get(i) != Some(&ours[i]))
            .map(|i| (usize::from(child) * FANOUT + i) as u16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use conclave_core::NodeId;

    #[test]
    fn leaf_hash_ignores_insertion_order() {
        let s1 = Stamp::new(Hlc::new(1, 0), NodeId(1));
        let s2 = Stamp::new(Hlc::new(2, 0), NodeId(2));
        let (h1, h2) = (entry_hash(b"a", &s1, false), entry_hash(b"b", &s2, true));
        let mut x = MerkleTree::default();
        let mut y = MerkleTree::default();
        x.insert(3, h1);
        x.insert(3, h2);
        y.insert(3, h2);
        y.insert(3, h1);
        assert_eq!(x.root(), y.root());
        x.remove(3, h1);
        assert_ne!(x.root(), y.root());
        assert_eq!(x.differing_children(&y.children()), vec![0]);
        assert_eq!(x.differing_leaves(0, y.leaves_of(0)), vec![3]);
    }
}
