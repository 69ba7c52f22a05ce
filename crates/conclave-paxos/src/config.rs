//! Multi-Paxos's knobs, their defaults, their validation, and their conversion into ticks.
//!
//! Every duration is configured in milliseconds (units last in the name) and converted once, at
//! construction, into a number of ticks of `tick_interval_ms`: the protocol only counts ticks.

use crate::PaxosError;
use serde::{Deserialize, Serialize};

/// Configuration of one Paxos replica. Every replica of a cluster must use the same
/// `max_inflight_slots` (it fixes when a reconfiguration takes effect); the other values should
/// match too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaxosConfig {
    /// How often the driver calls `tick()`.
    pub tick_interval_ms: u64,
    /// How often the leader sends a heartbeat (its ballot and commit index) to every member.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized failure-detector timeout: a member that has not heard from
    /// a leader for this long may run phase 1. Also the window during which a member that heard
    /// from its leader refuses other proposers' prepares — the promise that backs leases.
    pub leader_timeout_ms_min: u64,
    /// Upper bound of the randomized timeout; a new value is drawn each time the timer restarts.
    pub leader_timeout_ms_max: u64,
    /// How long a leader may serve linearizable reads locally after a majority acknowledged one
    /// of its messages. 0 turns leases off (every read then goes through the log). Must stay
    /// below `leader_timeout_ms_min` by at least two ticks; the remaining gap is the tolerance
    /// for clock-rate drift between replicas.
    pub lease_ms: u64,
    /// Most slots in one Accept (or catch-up) message.
    pub max_batch_entries: usize,
    /// α: most slots past the commit index that a leader may have in flight (pipelining window).
    /// A membership change chosen in slot `s` governs slots from `s + α` on.
    pub max_inflight_slots: u64,
    /// Most proposals a leader queues while its pipelining window is full; more are refused.
    pub max_pending_proposals: usize,
    /// Test-only: deliberately break one rule so that checkers can be shown to catch it.
    #[doc(hidden)]
    #[serde(skip)]
    pub planted_bug: Option<PlantedBug>,
}

/// A deliberate violation of one of Paxos's rules, for proving that the simulator's checkers
/// catch it. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Answer a prepare without putting the promise into the hard state, so that a crash
    /// forgets it (breaks the acceptor's "persist before answering" rule).
    AnswerPrepareBeforePersisting,
    /// A new leader proposes its own values (or no-ops) even where promises report accepted
    /// values (breaks Paxos Made Simple §2.2, P2c).
    IgnoreAcceptedValuesInPromises,
}

impl Default for PaxosConfig {
    fn default() -> Self {
        Self {
            tick_interval_ms: 10,
            heartbeat_interval_ms: 50,
            leader_timeout_ms_min: 150,
            leader_timeout_ms_max: 300,
            lease_ms: 100,
            max_batch_entries: 64,
            max_inflight_slots: 128,
            max_pending_proposals: 4096,
            planted_bug: None,
        }
    }
}

impl PaxosConfig {
    /// Checks every field; the error names the field, its value and what is accepted.
    pub fn validate(&self) -> Result<(), PaxosError> {
        fn invalid(field: &'static str, value: impl ToString, accepted: String) -> PaxosError {
            PaxosError::InvalidConfig { field, value: value.to_string(), accepted }
        }
        let tick = self.tick_interval_ms;
        if tick == 0 {
            return Err(invalid("tick_interval_ms", 0, "a positive number of milliseconds".into()));
        }
        if self.heartbeat_interval_ms < tick {
            return Err(invalid(
                "heartbeat_interval_ms",
                self.heartbeat_interval_ms,
                format!("at least tick_interval_ms ({tick})"),
            ));
        }
        if self.leader_timeout_ms_min < 2 * self.heartbeat_interval_ms {
            return Err(invalid(
                "leader_timeout_ms_min",
                self.leader_timeout_ms_min,
                format!(
                    "at least twice heartbeat_interval_ms ({})",
                    2 * self.heartbeat_interval_ms
                ),
            ));
        }
        if self.leader_timeout_ms_max < self.leader_timeout_ms_min {
            return Err(invalid(
                "leader_timeout_ms_max",
                self.leader_timeout_ms_max,
                format!("at least leader_timeout_ms_min ({})", self.leader_timeout_ms_min),
            ));
        }
        let lease_max = self.leader_timeout_ms_min.saturating_sub(2 * tick);
        if self.lease_ms != 0 && (self.lease_ms < tick || self.lease_ms > lease_max) {
            return Err(invalid(
                "lease_ms",
                self.lease_ms,
                format!(
                    "0 (no leases) or {tick}..={lease_max}: at least one tick and at most \
                     leader_timeout_ms_min minus two ticks"
                ),
            ));
        }
        if self.max_batch_entries == 0 {
            return Err(invalid("max_batch_entries", 0, "at least 1".into()));
        }
        if self.max_inflight_slots == 0 {
            return Err(invalid("max_inflight_slots", 0, "at least 1".into()));
        }
        if self.max_pending_proposals == 0 {
            return Err(invalid("max_pending_proposals", 0, "at least 1".into()));
        }
        Ok(())
    }

    /// The timeouts as numbers of ticks. Only meaningful once [`PaxosConfig::validate`] passed.
    pub(crate) fn ticks(&self) -> Ticks {
        let tick = self.tick_interval_ms.max(1);
        // Rounding goes the safe way: the stickiness window (which protects leases) rounds up,
        // the lease rounds down.
        let timeout_min = self.leader_timeout_ms_min.div_ceil(tick).max(1);
        let timeout_max = (self.leader_timeout_ms_max / tick).max(timeout_min);
        let heartbeat = (self.heartbeat_interval_ms / tick).max(1);
        let lease = self.lease_ms / tick;
        Ticks { timeout_min, timeout_max, heartbeat, lease }
    }
}

/// Timeouts converted to ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub timeout_min: u64,
    pub timeout_max: u64,
    pub heartbeat: u64,
    pub lease: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_convert_to_ticks() {
        let config = PaxosConfig::default();
        config.validate().unwrap();
        assert_eq!(
            config.ticks(),
            Ticks { timeout_min: 15, timeout_max: 30, heartbeat: 5, lease: 10 }
        );
    }

    #[test]
    fn errors_name_field_value_and_range() {
        let config = PaxosConfig { lease_ms: 140, ..PaxosConfig::default() };
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid paxos config: lease_ms = 140; accepted: 0 (no leases) or 10..=130: at least \
             one tick and at most leader_timeout_ms_min minus two ticks"
        );
        let config = PaxosConfig { leader_timeout_ms_max: 100, ..PaxosConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("leader_timeout_ms_max = 100"));
        let config = PaxosConfig { max_inflight_slots: 0, ..PaxosConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("max_inflight_slots = 0"));
        let config = PaxosConfig { lease_ms: 0, ..PaxosConfig::default() };
        config.validate().unwrap();
    }
}
