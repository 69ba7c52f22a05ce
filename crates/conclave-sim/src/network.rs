//! The simulated network between replicas: per-message delay (which also reorders), loss,
//! duplication, and partitions that block directed links.
//!
//! Clients are not on this network: they reach every replica with a small delay whatever the
//! partition, which is what lets a client keep talking to a leader that the other replicas
//! can no longer hear (the setting for stale reads).

use conclave_core::DetRng;
use std::collections::BTreeSet;

/// How links misbehave in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFaults {
    pub delay_us_min: u64,
    pub delay_us_max: u64,
    /// Per thousand messages: lost.
    pub drop_permille: u64,
    /// Per thousand messages: delivered twice (the copy with its own delay).
    pub duplicate_permille: u64,
    /// Per thousand messages: delayed by up to ten times `delay_us_max` (a slow path).
    pub slow_permille: u64,
}

/// What happened to the messages of a run, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub blocked: u64,
}

#[derive(Debug)]
pub(crate) struct Network {
    faults: LinkFaults,
    /// Directed links that carry nothing: (from, to).
    blocked: BTreeSet<(usize, usize)>,
    /// Whether loss, duplication and slow paths are on (off once the faults stop).
    lossy: bool,
    /// Bumped by every new partition, so that a scheduled heal of an older one does nothing.
    pub(crate) partition: u64,
    rng: DetRng,
    pub(crate) stats: NetworkStats,
}

impl Network {
    pub(crate) fn new(faults: LinkFaults, rng: DetRng) -> Self {
        Self {
            faults,
            blocked: BTreeSet::new(),
            lossy: true,
            partition: 0,
            rng,
            stats: NetworkStats::default(),
        }
    }

    /// The delays after which a message sent now from `from` to `to` arrives: none if it is
    /// lost, two if it is duplicated.
    pub(crate) fn route(&mut self, from: usize, to: usize) -> Vec<u64> {
        self.stats.sent += 1;
        if self.is_blocked(from, to) {
            self.stats.blocked += 1;
            return Vec::new();
        }
        if self.lossy && self.rng.below(1000) < self.faults.drop_permille {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let mut delays = vec![self.delay()];
        if self.lossy && self.rng.below(1000) < self.faults.duplicate_permille {
            self.stats.duplicated += 1;
            delays.push(self.delay());
        }
        delays
    }

    fn delay(&mut self) -> u64 {
        let LinkFaults { delay_us_min, delay_us_max, .. } = self.faults;
        let mut delay = self.rng.range_inclusive(delay_us_min, delay_us_max);
        if self.lossy && self.rng.below(1000) < self.faults.slow_permille {
            delay += self.rng.range_inclusive(0, 9 * delay_us_max);
        }
        delay
    }

    /// Whether the link is cut now. Checked again at delivery: a partition also eats what
    /// was in flight.
    pub(crate) fn is_blocked(&self, from: usize, to: usize) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from, to))
    }

    /// Replaces any partition by one that separates `side` from every other node, both ways.
    pub(crate) fn split(&mut self, side: &[usize], nodes: usize) -> u64 {
        self.heal();
        for &a in side {
            for b in (0..nodes).filter(|b| !side.contains(b)) {
                self.blocked.insert((a, b));
                self.blocked.insert((b, a));
            }
        }
        self.partition
    }

    /// Replaces any partition by one that cuts the given directed links only.
    pub(crate) fn cut_one_way(&mut self, links: &[(usize, usize)]) -> u64 {
        self.heal();
        self.blocked.extend(links.iter().copied());
        self.partition
    }

    /// Ends any partition.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
        self.partition += 1;
    }

    /// Stops loss, duplication and slow paths; delays stay.
    pub(crate) fn calm(&mut self) {
        self.lossy = false;
    }

    /// The directed links currently cut, for traces.
    pub(crate) fn describe_partition(&self) -> String {
        let links: Vec<String> =
            self.blocked.iter().map(|(a, b)| format!("n{}->n{}", a + 1, b + 1)).collect();
        if links.is_empty() { "none".into() } else { links.join(" ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults() -> LinkFaults {
        LinkFaults {
            delay_us_min: 1_000,
            delay_us_max: 5_000,
            drop_permille: 0,
            duplicate_permille: 0,
            slow_permille: 0,
        }
    }

    #[test]
    fn asymmetric_partition_blocks_one_direction_only() {
        let mut net = Network::new(faults(), DetRng::new(1));
        net.cut_one_way(&[(0, 1)]);
        assert!(net.route(0, 1).is_empty());
        assert_eq!(net.route(1, 0).len(), 1);
        net.heal();
        assert_eq!(net.route(0, 1).len(), 1);
    }

    #[test]
    fn split_blocks_both_ways_across_sides_only() {
        let mut net = Network::new(faults(), DetRng::new(1));
        net.split(&[0], 3);
        assert!(net.is_blocked(0, 1) && net.is_blocked(2, 0));
        assert!(!net.is_blocked(1, 2));
    }

    #[test]
    fn loss_and_duplication_follow_their_rates_and_stop_when_calm() {
        let mut lossy = faults();
        lossy.drop_permille = 200;
        lossy.duplicate_permille = 200;
        let mut net = Network::new(lossy, DetRng::new(5));
        let deliveries: usize = (0..10_000).map(|_| net.route(0, 1).len()).sum();
        assert!(net.stats.dropped > 1_500 && net.stats.duplicated > 1_000, "{:?}", net.stats);
        assert!(deliveries > 9_000 && deliveries < 11_000);
        net.calm();
        assert!((0..1_000).all(|_| net.route(0, 1).len() == 1));
        for delay in (0..1_000).flat_map(|_| net.route(1, 0)) {
            assert!((1_000..=5_000).contains(&delay));
        }
    }
}
