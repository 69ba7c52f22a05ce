//! The knobs of one simulated run that do not come from the seed.
//!
//! Everything else — the fault mix, network delays, clock drift, the protocol's own
//! configuration, every choice clients make — is drawn from the seed, so that one number
//! replays a run. Times are virtual milliseconds.

/// Settings shared by every seed of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Replicas in the cluster; `None` draws 3 or 5 per seed.
    pub nodes: Option<usize>,
    /// Concurrent clients issuing operations.
    pub clients: usize,
    /// Distinct keys the clients work on.
    pub keys: usize,
    /// How long faults are injected and clients run.
    pub fault_period_ms: u64,
    /// Quiet time after the faults stop and before the final write: every node is up, the
    /// network whole.
    pub quiet_period_ms: u64,
    /// How long after the quiet period the final write may take before the run counts as
    /// not live, and how long nodes then have to converge.
    pub liveness_timeout_ms: u64,
    /// A client gives up on an operation (and counts it as possibly applied) after this long.
    pub client_timeout_ms: u64,
    /// Most time a client waits between one answer and its next request.
    pub client_think_ms_max: u64,
    /// Each node's tick period is scaled by a factor drawn in `1 ± max_drift_percent / 100`.
    pub max_drift_percent: u64,
    /// A node snapshots its state machine after this many applied entries; `None` draws a
    /// value per seed (sometimes small, so that snapshot installation is exercised).
    pub snapshot_interval_entries: Option<u64>,
    /// Inject faults at all. Without them a run has only message delays and clock drift: a
    /// healthy cluster.
    pub faults: bool,
    /// Let the network deliver some messages twice.
    pub duplicate_messages: bool,
    /// A deliberately broken rule in the protocol, by name (see `SimProtocol::PLANTS`).
    pub plant: Option<String>,
    /// Print every event of the run.
    pub verbose: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: None,
            clients: 4,
            keys: 4,
            fault_period_ms: 12_000,
            quiet_period_ms: 2_000,
            liveness_timeout_ms: 8_000,
            client_timeout_ms: 1_000,
            client_think_ms_max: 10,
            max_drift_percent: 3,
            snapshot_interval_entries: None,
            faults: true,
            duplicate_messages: true,
            plant: None,
            verbose: false,
        }
    }
}

/// A setting that cannot work, with the field, its value and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} = {value}: expected {accepted}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: String,
    pub accepted: &'static str,
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, value: &dyn ToString, accepted| {
            Err(ConfigError { field, value: value.to_string(), accepted })
        };
        if let Some(nodes) = self.nodes
            && !(1..=9).contains(&nodes)
        {
            return fail("nodes", &nodes, "1 to 9");
        }
        if self.clients == 0 || self.clients > 64 {
            return fail("clients", &self.clients, "1 to 64");
        }
        if self.keys == 0 || self.keys > 1000 {
            return fail("keys", &self.keys, "1 to 1000");
        }
        if self.fault_period_ms == 0 {
            return fail("fault_period_ms", &0, "a positive number of milliseconds");
        }
        if self.liveness_timeout_ms < self.client_timeout_ms {
            return fail(
                "liveness_timeout_ms",
                &self.liveness_timeout_ms,
                "at least client_timeout_ms",
            );
        }
        if self.client_timeout_ms < 10 {
            return fail("client_timeout_ms", &self.client_timeout_ms, "at least 10 ms");
        }
        if self.max_drift_percent >= 50 {
            return fail("max_drift_percent", &self.max_drift_percent, "below 50");
        }
        if self.snapshot_interval_entries == Some(0) {
            return fail("snapshot_interval_entries", &0, "at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        SimConfig::default().validate().unwrap();
        let bad = SimConfig { clients: 0, ..SimConfig::default() };
        let error = bad.validate().unwrap_err();
        assert_eq!(error.field, "clients");
        assert_eq!(error.to_string(), "invalid clients = 0: expected 1 to 64");
    }
}
