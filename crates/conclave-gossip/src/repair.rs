//! Merkle repair: finding and fixing what digests missed (Dynamo, DeCandia et al. 2007, §4.7).
//!
//! Every `merkle_interval` a replica sends one random live peer the hashes of its tree's top
//! level ([`Body::MerkleProbe`]). The peer answers with its leaf hashes under each child that
//! differs ([`Body::MerkleLeaves`]); the opener sends its entries of each differing leaf
//! ([`Body::MerkleEntries`] with `reply`), and the peer merges them and answers with its own
//! entries of those leaves that the opener lacks or holds older. Writes repaired this way do
//! not move the version vector: they say nothing about what else their origin wrote.

use crate::gossip::Gossip;
use crate::message::{Body, Update, WireSize};
use crate::store::LwwStore;
use conclave_core::NodeId;
use std::collections::BTreeMap;

impl Gossip {
    /// Opens a Merkle comparison with one random live peer.
    pub(crate) fn merkle_round(&mut self) {
        let live: Vec<NodeId> = self.members.live().collect();
        if live.is_empty() {
            return;
        }
        let peer = live[self.rng.below(live.len() as u64) as usize];
        self.stats.merkle_rounds += 1;
        let children = self.store.merkle().children();
        self.send(peer, Body::MerkleProbe { children });
    }

    /// Answers with the leaf hashes under each differing child, as many subtrees as fit in
    /// the budget (at least one); the others differ still at the next comparison.
    pub(crate) fn on_merkle_probe(&mut self, from: NodeId, children: &[u64]) {
        let tree = self.store.merkle();
        let budget = self.entries_budget(0);
        let mut used = 0;
        let mut subtrees: Vec<(u8, Vec<u64>)> = Vec::new();
        for child in tree.differing_children(children) {
            let hashes = tree.leaves_of(child).to_vec();
            let bytes = 1 + hashes.wire_size();
            if used + bytes > budget && !subtrees.is_empty() {
                break;
            }
            used += bytes;
            subtrees.push((child, hashes));
        }
        if !subtrees.is_empty() {
            self.send(from, Body::MerkleLeaves { subtrees });
        }
    }

    pub(crate) fn on_merkle_leaves(&mut self, from: NodeId, subtrees: &[(u8, Vec<u64>)]) {
        let leaves: Vec<u16> = subtrees
            .iter()
            .flat_map(|(child, hashes)| self.store.merkle().differing_leaves(*child, hashes))
            .collect();
        if leaves.is_empty() {
            return;
        }
        let budget = self.entries_budget(leaves.len());
        let (leaves, updates) = fill_leaves(&self.store, &leaves, budget);
        self.send(from, Body::MerkleEntries { leaves, updates, reply: true });
    }

    pub(crate) fn on_merkle_entries(
        &mut self,
        from: NodeId,
        leaves: &[u16],
        updates: &[Update],
        reply: bool,
    ) {
        let mut repairs = Vec::new();
        for update in updates {
            if self.merge_update(update, &mut repairs) {
                self.stats.merkle_repairs += 1;
            }
        }
        if !reply {
            self.send_repairs(from, repairs);
            return;
        }
        // What the opener lacks: our writes in those leaves that beat what it sent for the key.
        let sent: BTreeMap<_, _> = updates.iter().map(|u| (&u.key, u.stamp)).collect();
        let mut answer = repairs;
        for &leaf in leaves {
            for mine in self.store.leaf_updates(leaf) {
                let lacks = match sent.get(&mine.key) {
                    Some(theirs) => self.store.wins(&mine.stamp, theirs),
                    None => true,
                };
                if lacks {
                    answer.push(mine);
                }
            }
        }
        let budget = self.entries_budget(0);
        let answer = fit(answer, budget);
        if !answer.is_empty() {
            self.send(
                from,
                Body::MerkleEntries { leaves: Vec::new(), updates: answer, reply: false },
            );
        }
    }

    /// Bytes left for updates in a `MerkleEntries` naming `leaves` leaves.
    fn entries_budget(&self, leaves: usize) -> usize {
        let fixed = self.clock.now().wire_size() + 1 + 10 + 3 * leaves + 10 + 1;
        self.config.mtu_bytes.saturating_sub(fixed)
    }
}

/// Whole leaves' entries, in leaf order, while they fit in `budget` (at least one leaf, cut
/// to what fits, so that a huge leaf still makes progress).
fn fill_leaves(store: &LwwStore, leaves: &[u16], budget: usize) -> (Vec<u16>, Vec<Update>) {
    let mut used = 0;
    let mut taken = Vec::new();
    let mut updates = Vec::new();
    for &leaf in leaves {
        let entries = store.leaf_updates(leaf);
        let bytes: usize = entries.iter().map(WireSize::wire_size).sum();
        if used + bytes > budget {
            if taken.is_empty() {
                updates = fit(entries, budget);
                taken.push(leaf);
            }
            break;
        }
        used += bytes;
        taken.push(leaf);
        updates.extend(entries);
    }
    (taken, updates)
}

/// The longest prefix of `updates` that fits in `budget` (at least one update).
fn fit(updates: Vec<Update>, budget: usize) -> Vec<Update> {
    let mut used = 0;
    let mut n = 0;
    for u in &updates {
        used += u.wire_size();
        if used > budget && n > 0 {
            break;
        }
        n += 1;
    }
    let mut updates = updates;
    updates.truncate(n);
    updates
}
