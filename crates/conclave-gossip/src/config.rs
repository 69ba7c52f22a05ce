//! Every knob of the gossip protocol, with defaults and validation.

use conclave_core::NodeId;
use serde::{Deserialize, Serialize};

/// Deliberate mistakes the simulator's tests plant to prove its checkers catch them.
/// Never set in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlantedBug {
    /// Collects a tombstone as soon as its grace period has passed, without waiting for every
    /// live member to acknowledge it and without raising the collected-through watermark: a
    /// peer that never saw the delete brings the old value back.
    CollectTombstonesEarly,
    /// Compares writes by the physical part of their HLC alone, ignoring the logical counter
    /// and the node tiebreak (an incumbent keeps a tie): with skewed clocks, a write made after
    /// another was seen can carry the same physical time and lose.
    LwwByWallClockOnly,
}

/// Settings of one gossip replica. Times are in milliseconds of logical time (ticks multiplied
/// by `tick_interval_ms`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipConfig {
    /// How often the driver ticks the protocol.
    pub tick_interval_ms: u64,
    /// How often this replica starts a gossip round (a digest exchange with `fanout` peers).
    pub gossip_interval_ms: u64,
    /// How many random live peers each round contacts.
    pub fanout: usize,
    /// The byte budget of one message: deltas beyond it wait for the next round.
    pub mtu_bytes: usize,
    /// How often this replica compares Merkle trees with one random peer, to repair what
    /// digests missed, and contacts a seed it has lost track of.
    pub merkle_interval_ms: u64,
    /// Silence after which a member is suspected (still gossiped with, not counted as healthy).
    pub suspect_timeout_ms: u64,
    /// Silence after which a member is declared dead and pruned from the member list.
    pub dead_timeout_ms: u64,
    /// How long a tombstone is kept, at least, after every live member has acknowledged it.
    pub tombstone_grace_ms: u64,
    /// Answer a client's write only after this many peers acknowledged holding it (0: answer
    /// once applied locally).
    pub write_quorum: usize,
    /// How long a write waits for `write_quorum` acknowledgements before its client is told
    /// it timed out (the write stays applied and keeps spreading).
    pub write_quorum_timeout_ms: u64,
    /// Nodes contacted to join, and to rejoin after losing every peer. Empty: the initial
    /// members.
    pub seeds: Vec<NodeId>,
    /// Added to `ticks × tick_interval_ms` to make this replica's physical clock. A driver
    /// passes the wall clock at start; the simulator passes simulated time plus a skew.
    pub clock_offset_ms: i64,
    /// Flow control: the most own updates published per round when nothing is congested.
    pub flow_rate_max_per_round: u32,
    /// Flow control: the floor the publish rate never drops below under congestion.
    pub flow_rate_min_per_round: u32,
    /// Test-only: deliberately break one rule so that checkers can be shown to catch it.
    /// Never read from a config file.
    #[doc(hidden)]
    #[serde(skip)]
    pub planted_bug: Option<PlantedBug>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            tick_interval_ms: 10,
            gossip_interval_ms: 100,
            fanout: 3,
            mtu_bytes: 64 * 1024,
            merkle_interval_ms: 1_000,
            suspect_timeout_ms: 2_000,
            dead_timeout_ms: 10_000,
            tombstone_grace_ms: 5_000,
            write_quorum: 0,
            write_quorum_timeout_ms: 2_000,
            seeds: Vec::new(),
            clock_offset_ms: 0,
            flow_rate_max_per_round: 4_096,
            flow_rate_min_per_round: 16,
            planted_bug: None,
        }
    }
}

/// The smallest budget that still fits a digest, a member list and a few updates.
pub const MTU_BYTES_MIN: usize = 512;

/// A setting out of range: names the key, the bad value and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid gossip.{key} = {value}: expected {accepted}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub accepted: &'static str,
}

impl GossipConfig {
    /// Checks every setting; the first bad one is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, value: &dyn ToString, accepted| {
            Err(ConfigError { key, value: value.to_string(), accepted })
        };
        if self.tick_interval_ms == 0 {
            return bad("tick_interval_ms", &self.tick_interval_ms, "a positive number");
        }
        let multiples = [
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("merkle_interval_ms", self.merkle_interval_ms),
        ];
        for (key, value) in multiples {
            if value < self.tick_interval_ms {
                return bad(key, &value, "at least tick_interval_ms");
            }
        }
        if self.fanout == 0 {
            return bad("fanout", &self.fanout, "at least 1");
        }
        if self.mtu_bytes < MTU_BYTES_MIN {
            return bad("mtu_bytes", &self.mtu_bytes, "at least 512");
        }
        if self.suspect_timeout_ms < 2 * self.gossip_interval_ms {
            return bad(
                "suspect_timeout_ms",
                &self.suspect_timeout_ms,
                "at least twice gossip_interval_ms",
            );
        }
        if self.dead_timeout_ms <= self.suspect_timeout_ms {
            return bad("dead_timeout_ms", &self.dead_timeout_ms, "more than suspect_timeout_ms");
        }
        if self.write_quorum > 0 && self.write_quorum_timeout_ms < self.gossip_interval_ms {
            return bad(
                "write_quorum_timeout_ms",
                &self.write_quorum_timeout_ms,
                "at least gossip_interval_ms when write_quorum > 0",
            );
        }
        if self.flow_rate_min_per_round == 0 {
            return bad("flow_rate_min_per_round", &self.flow_rate_min_per_round, "at least 1");
        }
        if self.flow_rate_max_per_round < self.flow_rate_min_per_round {
            return bad(
                "flow_rate_max_per_round",
                &self.flow_rate_max_per_round,
                "at least flow_rate_min_per_round",
            );
        }
        Ok(())
    }

    /// A duration in milliseconds as a whole number of ticks (at least one).
    pub(crate) fn ticks(&self, ms: u64) -> u64 {
        ms.div_ceil(self.tick_interval_ms).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        GossipConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let config = GossipConfig { fanout: 0, ..GossipConfig::default() };
        let error = config.validate().unwrap_err();
        assert_eq!(error.to_string(), "invalid gossip.fanout = 0: expected at least 1");
    }
}
