//! Protocol-specific counters, exported by the driver as `conclave_paxos_<name>`.

/// Monotonic counts of what this replica did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    /// Phase 1 rounds started (`conclave_paxos_phase1_total`).
    pub phase1_total: u64,
    /// Times the leader this replica follows changed to a known one.
    pub leader_changes_total: u64,
    /// Reads answered from the leader's lease.
    pub lease_reads_total: u64,
    /// Reads answered through a slot in the log.
    pub log_reads_total: u64,
    /// Proposals this replica forwarded to its leader.
    pub forwarded_proposals_total: u64,
    /// Chosen values sent to lagging learners.
    pub catchup_entries_total: u64,
    /// Snapshots sent to learners that needed compacted slots.
    pub snapshots_sent_total: u64,
    /// Prepares refused (a promise at least as high, or loyalty to a live leader).
    pub prepares_rejected_total: u64,
    /// Times this leader stepped down because no majority answered for a minimum timeout.
    pub quorum_step_downs_total: u64,
}

impl Counters {
    /// The counters as `Protocol::counters` reports them, with the current ballot round.
    pub fn export(&self, ballot_round: u64) -> Vec<(&'static str, u64)> {
        vec![
            ("phase1_total", self.phase1_total),
            ("ballot", ballot_round),
            ("leader_changes_total", self.leader_changes_total),
            ("lease_reads_total", self.lease_reads_total),
            ("log_reads_total", self.log_reads_total),
            ("forwarded_proposals_total", self.forwarded_proposals_total),
            ("catchup_entries_total", self.catchup_entries_total),
            ("snapshots_sent_total", self.snapshots_sent_total),
            ("prepares_rejected_total", self.prepares_rejected_total),
            ("quorum_step_downs_total", self.quorum_step_downs_total),
        ]
    }
}
