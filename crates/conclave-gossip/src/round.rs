//! What happens as time passes: gossip rounds, failure detection, tombstone collection, Merkle
//! rounds and reaching seeds.
//!
//! Each round (every `gossip_interval`) a replica bumps its heartbeat, updates suspicion, lets
//! flow control publish its own writes, collects tombstones that are safe to drop, and opens a
//! scuttlebutt exchange with `fanout` random live peers — or with every seed when it knows no
//! live peer, which is how a replica that lost everyone rejoins. Every `merkle_interval` it also
//! compares Merkle trees with one random peer and contacts one seed it has lost track of, so
//! that two halves of a healed partition, each having pruned the other, find each other again.

use crate::config::PlantedBug;
use crate::gossip::Gossip;
use crate::message::Body;
use bytes::Bytes;
use conclave_core::NodeId;

impl Gossip {
    pub(crate) fn on_tick(&mut self) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(self.config.ticks(self.config.gossip_interval_ms)) {
            self.gossip_round();
        }
        if self.ticks.is_multiple_of(self.config.ticks(self.config.merkle_interval_ms)) {
            self.merkle_round();
            self.contact_lost_seed();
        }
        self.after_event();
    }

    fn gossip_round(&mut self) {
        self.stats.rounds += 1;
        self.members.beat();
        for pruned in self.members.check(self.ticks) {
            self.acked.remove(&pruned);
        }
        // Sending is an event: the round's messages carry the clock moved to physical time.
        let now_ms = self.physical_ms();
        self.clock.local_event(now_ms);
        let allowance = self.flow.start_round();
        self.publish(allowance);
        self.collect_tombstones();
        for peer in self.targets() {
            self.send_syn(peer);
        }
    }

    fn send_syn(&mut self, peer: NodeId) {
        let body = Body::Syn {
            members: self.members.digest(),
            digest: self.have.clone(),
            congested: self.flow.congested(),
        };
        self.send(peer, body);
    }

    /// `fanout` distinct random live peers; every seed when no peer is live.
    fn targets(&mut self) -> Vec<NodeId> {
        let mut live: Vec<NodeId> = self.members.live().collect();
        if live.is_empty() {
            return self.seeds.clone();
        }
        let n = self.config.fanout.min(live.len());
        // A partial Fisher-Yates shuffle: the first `n` are a uniform sample.
        for i in 0..n {
            let j = i + self.rng.below((live.len() - i) as u64) as usize;
            live.swap(i, j);
        }
        live.truncate(n);
        live
    }

    /// Opens a round with one seed not currently live, if any (and some peer is: otherwise
    /// every seed is contacted each round anyway).
    fn contact_lost_seed(&mut self) {
        if self.members.live_count() == 0 {
            return;
        }
        let lost: Vec<NodeId> =
            self.seeds.iter().copied().filter(|&s| !self.members.is_live(s)).collect();
        if lost.is_empty() {
            return;
        }
        let seed = lost[self.rng.below(lost.len() as u64) as usize];
        self.send_syn(seed);
    }

    /// Drops tombstones every live member has acknowledged, once their grace period is over.
    ///
    /// Two conditions make dropping safe. Each live member's digest covers the tombstone, so
    /// none of them still needs it. And this replica covers everything any live member has
    /// acknowledged, so no write at or below the new watermark that a live member knows of is
    /// still on its way here — refusing such writes later can only refuse stale ones.
    fn collect_tombstones(&mut self) {
        if self.store.tombstone_count() == 0 {
            return;
        }
        let early = self.config.planted_bug == Some(PlantedBug::CollectTombstonesEarly);
        let live: Vec<NodeId> = self.members.live().collect();
        if !early && !live.iter().all(|p| self.acked.get(p).is_none_or(|v| self.have.dominates(v)))
        {
            return;
        }
        let now_ms = self.physical_ms();
        let grace_ms = self.config.tombstone_grace_ms;
        let ripe: Vec<Bytes> = self
            .store
            .tombstones()
            .filter(|&(stamp, key)| {
                let aged = self
                    .store
                    .get(key)
                    .is_some_and(|v| now_ms.saturating_sub(v.applied_ms) >= grace_ms);
                let seen = live
                    .iter()
                    .all(|p| self.acked.get(p).is_some_and(|v| v.get(stamp.node) >= stamp.hlc));
                aged && (early || seen)
            })
            .map(|(_, key)| key.clone())
            .collect();
        for key in ripe {
            if self.store.collect(&key, !early).is_some() {
                self.stats.tombstones_collected += 1;
                self.out.hard_state_dirty |= !early;
            }
        }
    }
}
