//! Totem's knobs, their defaults, their validation, and their conversion into ticks.
//!
//! Durations are configured in milliseconds (units last in the name) and converted once, at
//! construction, into whole ticks of `tick_interval_ms`: the protocol itself only counts ticks.
//! The defaults follow Corosync's (token 1000 ms, retransmit about a quarter of it, consensus
//! 1.2 times the token, window 50, 17 messages per visit), which re-form a ring that lost a
//! member and resume writes in about 2.5 s.

use crate::TotemError;
use serde::{Deserialize, Serialize};

/// When a replicated command is applied and its client answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Once every member of the ring has the message (Totem's safe delivery). Acknowledged
    /// writes then survive any failure that leaves a primary component.
    #[default]
    Safe,
    /// As soon as every message before it has arrived here (Totem's agreed delivery). Faster by
    /// up to a token rotation, but an acknowledged write can be lost, and a replica can apply a
    /// write that the next primary component never sees; the protocol then reports
    /// `linearizable_writes = false`.
    Agreed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Agreed => "agreed",
        }
    }
}

/// A deliberate violation of one of Totem's rules, for proving that the simulator's checkers
/// catch it. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit (and answer clients) on agreed order while still claiming safe delivery and
    /// linearizable writes.
    AckAgreedAsSafe,
    /// Treat every ring as the primary component, so that a minority ring accepts and applies
    /// writes.
    MinorityAcceptsWrites,
}

/// Configuration of one Totem member. Every member of a cluster should use the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TotemConfig {
    /// How often the driver calls `tick()`.
    pub tick_interval_ms: u64,
    /// A member that has not seen the regular token for this long declares it lost and starts
    /// the membership protocol (Totem §4, "token loss timeout").
    pub token_timeout_ms: u64,
    /// A member that forwarded the token and has seen no sign of it since resends it after
    /// this long (Totem §3.3, "token retransmission timeout").
    pub token_retransmit_ms: u64,
    /// On an idle ring the representative keeps the token this long before passing it on, so
    /// that an idle ring does not spin; a proposal or read releases it at once. 0 disables.
    pub token_hold_ms: u64,
    /// How often a gathering member resends its join message (Totem §4.2, "join timeout").
    pub join_timeout_ms: u64,
    /// A gathering member that has not reached consensus on the membership after this long
    /// declares failed the members it has not heard from, and one period later those that
    /// still disagree (Totem §4.2, "consensus timeout").
    pub consensus_timeout_ms: u64,
    /// How often the representative of a ring that lacks some configured members announces
    /// the ring to them, so that rings separated by a partition merge once it heals.
    pub merge_timeout_ms: u64,
    /// Most messages broadcast by all members together in one token rotation, and how far the
    /// ring's highest sequence number may run ahead of its all-received-up-to (Totem §3.5).
    pub window_size: u32,
    /// Most messages one member broadcasts per token visit (Totem §3.5).
    pub max_messages_per_visit: u32,
    /// When a command is committed: on safe delivery (default) or on agreed delivery.
    pub delivery: Delivery,
    /// Test-only: deliberately break one rule so that checkers can be shown to catch it.
    #[doc(hidden)]
    #[serde(skip)]
    pub planted_bug: Option<PlantedBug>,
}

impl Default for TotemConfig {
    fn default() -> Self {
        Self {
            tick_interval_ms: 10,
            token_timeout_ms: 1000,
            token_retransmit_ms: 238,
            token_hold_ms: 10,
            join_timeout_ms: 50,
            consensus_timeout_ms: 1200,
            merge_timeout_ms: 200,
            window_size: 50,
            max_messages_per_visit: 17,
            delivery: Delivery::Safe,
            planted_bug: None,
        }
    }
}

impl TotemConfig {
    /// Checks every field; the error names the field, its value and what is accepted.
    pub fn validate(&self) -> Result<(), TotemError> {
        fn invalid(field: &'static str, value: impl ToString, accepted: String) -> TotemError {
            TotemError::InvalidConfig { field, value: value.to_string(), accepted }
        }
        let tick = self.tick_interval_ms;
        if tick == 0 {
            return Err(invalid("tick_interval_ms", 0, "a positive number of milliseconds".into()));
        }
        for (field, value) in [
            ("token_retransmit_ms", self.token_retransmit_ms),
            ("join_timeout_ms", self.join_timeout_ms),
            ("merge_timeout_ms", self.merge_timeout_ms),
        ] {
            if value < tick {
                return Err(invalid(field, value, format!("at least tick_interval_ms ({tick})")));
            }
        }
        if self.token_timeout_ms < 2 * self.token_retransmit_ms {
            return Err(invalid(
                "token_timeout_ms",
                self.token_timeout_ms,
                format!(
                    "at least twice token_retransmit_ms ({}), so that a lost token is resent \
                     before it is declared lost",
                    2 * self.token_retransmit_ms
                ),
            ));
        }
        if self.token_hold_ms >= self.token_retransmit_ms {
            return Err(invalid(
                "token_hold_ms",
                self.token_hold_ms,
                format!("less than token_retransmit_ms ({})", self.token_retransmit_ms),
            ));
        }
        if self.consensus_timeout_ms <= self.token_timeout_ms {
            return Err(invalid(
                "consensus_timeout_ms",
                self.consensus_timeout_ms,
                format!(
                    "more than token_timeout_ms ({}), so that a representative whose commit \
                     token was lost gathers again before the others give up on it",
                    self.token_timeout_ms
                ),
            ));
        }
        if self.join_timeout_ms * 2 > self.consensus_timeout_ms {
            return Err(invalid(
                "join_timeout_ms",
                self.join_timeout_ms,
                format!("at most half of consensus_timeout_ms ({})", self.consensus_timeout_ms / 2),
            ));
        }
        if self.window_size == 0 {
            return Err(invalid("window_size", 0, "a positive number of messages".into()));
        }
        if self.max_messages_per_visit == 0 || self.max_messages_per_visit > self.window_size {
            return Err(invalid(
                "max_messages_per_visit",
                self.max_messages_per_visit,
                format!("between 1 and window_size ({})", self.window_size),
            ));
        }
        Ok(())
    }

    /// The configuration's durations in ticks (at least one tick each, rounded up).
    pub(crate) fn ticks(&self) -> Ticks {
        let t = |ms: u64| ms.div_ceil(self.tick_interval_ms).max(1);
        Ticks {
            token_timeout: t(self.token_timeout_ms),
            token_retransmit: t(self.token_retransmit_ms),
            token_hold: if self.token_hold_ms == 0 { 0 } else { t(self.token_hold_ms) },
            join_timeout: t(self.join_timeout_ms),
            consensus_timeout: t(self.consensus_timeout_ms),
            merge_timeout: t(self.merge_timeout_ms),
        }
    }

    /// The order commands are really committed on, planted bugs included.
    pub(crate) fn effective_delivery(&self) -> Delivery {
        match self.planted_bug {
            Some(PlantedBug::AckAgreedAsSafe) => Delivery::Agreed,
            _ => self.delivery,
        }
    }
}

/// The configured durations, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub token_timeout: u64,
    pub token_retransmit: u64,
    pub token_hold: u64,
    pub join_timeout: u64,
    pub consensus_timeout: u64,
    pub merge_timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        TotemConfig::default().validate().unwrap();
        let ticks = TotemConfig::default().ticks();
        assert_eq!(ticks.token_timeout, 100);
        assert_eq!(ticks.token_retransmit, 24);
        assert_eq!(ticks.token_hold, 1);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = TotemConfig { max_messages_per_visit: 51, ..TotemConfig::default() };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("max_messages_per_visit = 51"), "{err}");
        let bad = TotemConfig { consensus_timeout_ms: 900, ..TotemConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("consensus_timeout_ms"));
        let bad = TotemConfig { tick_interval_ms: 0, ..TotemConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("tick_interval_ms"));
    }
}
