//! Flow control: how many of its own writes a replica publishes to gossip per round.
//!
//! Anti-entropy has a fixed capacity: `fanout` messages of `mtu_bytes` per round. When writes
//! arrive faster than that, deltas pile up and every replica falls behind; and a replica that
//! writes a lot could fill every message with its own updates. Following van Renesse et al.
//! (2008, §4), each replica bounds the rate at which it submits its own updates and adapts the
//! bound by additive increase and multiplicative decrease (the congestion-avoidance rule of
//! Jacobson that the paper builds on): when a message overflowed its budget — this replica's,
//! or one a peer reported as congested — the rate halves; otherwise it grows by a fixed step.
//! Replicas seeing the same congestion signals converge on equal shares, so a busy writer
//! cannot starve the others. Writes still apply locally at once; only their publication (the
//! digest entry peers pull them by) waits, and [`crate::delta`] interleaves origins so that
//! what is published is sent fairly.

/// Fraction of the rate kept after a congested round.
const DECREASE_FACTOR: f64 = 0.5;
/// Rounds to climb back from the floor to the ceiling without congestion.
const INCREASE_ROUNDS: f64 = 64.0;

#[derive(Clone, Debug)]
pub struct FlowControl {
    rate: f64,
    credit: f64,
    min: f64,
    max: f64,
    congested: bool,
}

impl FlowControl {
    pub fn new(min_per_round: u32, max_per_round: u32) -> Self {
        let max = f64::from(max_per_round);
        Self { rate: max, credit: max, min: f64::from(min_per_round), max, congested: false }
    }

    /// Something overflowed its budget this round (here, or at a peer that said so).
    pub fn note_congestion(&mut self) {
        self.congested = true;
    }

    pub fn congested(&self) -> bool {
        self.congested
    }

    /// Starts a round: adapts the rate to last round's signal and returns how many own writes
    /// may be published now.
    pub fn start_round(&mut self) -> usize {
        self.rate = if self.congested {
            (self.rate * DECREASE_FACTOR).max(self.min)
        } else {
            (self.rate + (self.max - self.min) / INCREASE_ROUNDS).min(self.max)
        };
        self.congested = false;
        // Unused credit does not pile up beyond one round's worth: a quiet writer gets no burst
        // larger than its rate.
        self.credit = (self.credit + self.rate).min(self.rate);
        self.credit.floor() as usize
    }

    /// Own writes that may still be published this round.
    pub fn available(&self) -> usize {
        self.credit.floor() as usize
    }

    /// Records that `n` own writes were published from this round's allowance.
    pub fn spend(&mut self, n: usize) {
        self.credit = (self.credit - n as f64).max(0.0);
    }

    /// The current rate, in own writes per round.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_congestion_and_climbs_back() {
        let mut flow = FlowControl::new(16, 1024);
        assert_eq!(flow.start_round(), 1024);
        flow.note_congestion();
        assert_eq!(flow.start_round(), 512);
        flow.note_congestion();
        flow.start_round();
        assert_eq!(flow.rate(), 256.0);
        for _ in 0..100 {
            flow.start_round();
        }
        assert_eq!(flow.rate(), 1024.0);
    }
}
