//! Raft's knobs, their defaults, their validation, and their conversion into ticks.
//!
//! Every duration is configured in milliseconds (units last in the name) and converted once,
//! at construction, into a number of ticks of `tick_interval_ms`: the protocol itself only
//! ever counts ticks.

use crate::RaftError;
use serde::{Deserialize, Serialize};

/// Configuration of one Raft replica. Every replica of a cluster should use the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// How often the driver calls `tick()`.
    pub tick_interval_ms: u64,
    /// Lower bound of the randomized election timeout (Raft §5.2). Also the window during which
    /// a follower that hears from its leader refuses pre-votes and votes (thesis §9.6, §4.2.3).
    pub election_timeout_ms_min: u64,
    /// Upper bound of the randomized election timeout; a new value is drawn for every election.
    pub election_timeout_ms_max: u64,
    /// How often a leader sends heartbeats when it has nothing else to send.
    pub heartbeat_interval_ms: u64,
    /// Run a pre-vote round before a real election, so that a node that was cut off does not
    /// bump everyone's term when it comes back (thesis §9.6).
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a majority within the minimum election
    /// timeout (thesis §6.2).
    pub check_quorum: bool,
    /// Serve linearizable reads on the leader from a lease instead of a heartbeat round.
    /// Assumes that clocks run at rates that differ by less than about 10% (thesis §6.4.1).
    /// Replicas then also refuse votes for `election_timeout_ms_min` after they start, since a
    /// restart forgets which leader they acknowledged.
    pub lease_read: bool,
    /// Most entries in one AppendEntries message.
    pub max_entries_per_append: usize,
    /// Most bytes of entry data in one AppendEntries message (one larger entry is still sent
    /// alone).
    pub max_append_bytes: usize,
    /// Most AppendEntries messages in flight to one follower before the leader waits for
    /// acknowledgements (pipelining window).
    pub max_inflight_appends: usize,
    /// Entries kept in the log below a snapshot, so that slightly lagging followers can still
    /// be caught up with entries rather than a whole snapshot.
    pub snapshot_keep_entries: u64,
    /// Test-only: deliberately break one rule so that checkers can be shown to catch it.
    #[doc(hidden)]
    #[serde(skip)]
    pub planted_bug: Option<PlantedBug>,
}

/// A deliberate violation of one of Raft's rules, for proving that the simulator's checkers
/// catch it. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Commit any index stored on a majority, including entries of previous terms
    /// (drops the rule of Raft §5.4.2; Figure 8 then loses a committed entry).
    CommitPreviousTermByCounting,
    /// Answer reads at once with the leader's local commit index, with no leadership check and
    /// no check-quorum step-down, so that a deposed leader serves stale reads.
    ReadFromDeposedLeader,
    /// Once a replica has led, say there is a `Ready` forever, and hand out empty ones: the
    /// driver contract's bug that would spin a node thread.
    PhantomReady,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            tick_interval_ms: 10,
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            heartbeat_interval_ms: 50,
            pre_vote: true,
            check_quorum: true,
            lease_read: false,
            max_entries_per_append: 256,
            max_append_bytes: 1024 * 1024,
            max_inflight_appends: 64,
            snapshot_keep_entries: 5000,
            planted_bug: None,
        }
    }
}

impl RaftConfig {
    /// Checks every field; the error names the field, its value and what is accepted.
    pub fn validate(&self) -> Result<(), RaftError> {
        fn invalid(field: &'static str, value: impl ToString, accepted: String) -> RaftError {
            RaftError::InvalidConfig { field, value: value.to_string(), accepted }
        }
        if self.tick_interval_ms == 0 {
            return Err(invalid("tick_interval_ms", 0, "a positive number of milliseconds".into()));
        }
        let tick = self.tick_interval_ms;
        if self.heartbeat_interval_ms < tick {
            return Err(invalid(
                "heartbeat_interval_ms",
                self.heartbeat_interval_ms,
                format!("at least tick_interval_ms ({tick})"),
            ));
        }
        if self.election_timeout_ms_min < 2 * self.heartbeat_interval_ms {
            return Err(invalid(
                "election_timeout_ms_min",
                self.election_timeout_ms_min,
                format!(
                    "at least twice heartbeat_interval_ms ({})",
                    2 * self.heartbeat_interval_ms
                ),
            ));
        }
        if self.election_timeout_ms_max < self.election_timeout_ms_min {
            return Err(invalid(
                "election_timeout_ms_max",
                self.election_timeout_ms_max,
                format!("at least election_timeout_ms_min ({})", self.election_timeout_ms_min),
            ));
        }
        if self.lease_read && self.ticks().lease == 0 {
            return Err(invalid(
                "election_timeout_ms_min",
                self.election_timeout_ms_min,
                format!(
                    "with lease_read, long enough for a lease of at least one tick (>= {} ms)",
                    4 * tick
                ),
            ));
        }
        if self.max_entries_per_append == 0 {
            return Err(invalid("max_entries_per_append", 0, "at least 1".into()));
        }
        if self.max_append_bytes == 0 {
            return Err(invalid("max_append_bytes", 0, "at least 1".into()));
        }
        if self.max_inflight_appends == 0 {
            return Err(invalid("max_inflight_appends", 0, "at least 1".into()));
        }
        Ok(())
    }

    /// The timeouts as numbers of ticks. Only meaningful once [`RaftConfig::validate`] passed.
    pub(crate) fn ticks(&self) -> Ticks {
        let tick = self.tick_interval_ms.max(1);
        let election_min = self.election_timeout_ms_min.div_ceil(tick).max(1);
        let election_max = (self.election_timeout_ms_max / tick).max(election_min);
        let heartbeat = (self.heartbeat_interval_ms / tick).max(1);
        // A follower refuses votes for at least `election_min - 1` whole ticks after it hears
        // from the leader; the leader's lease starts when it sent the round, and its own tick
        // phase costs one more tick. A tenth more is left for clock-rate drift.
        let lease = (election_min * 9 / 10).saturating_sub(2);
        Ticks { election_min, election_max, heartbeat, lease }
    }
}

/// Timeouts converted to ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub election_min: u64,
    pub election_max: u64,
    pub heartbeat: u64,
    pub lease: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_convert_to_ticks() {
        let config = RaftConfig::default();
        config.validate().unwrap();
        let ticks = config.ticks();
        assert_eq!(ticks, Ticks { election_min: 15, election_max: 30, heartbeat: 5, lease: 11 });
    }
}
