//! Raft-specific counters, exported by the driver as `conclave_raft_<name>`.

/// Monotonic counts of protocol events on this replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Real elections started (term bumped).
    pub elections: u64,
    /// Pre-vote rounds started.
    pub pre_votes: u64,
    /// Elections this replica won.
    pub elections_won: u64,
    /// Times the known leader changed to a different one.
    pub leader_changes: u64,
    /// Times a leader stepped down for not hearing from a majority.
    pub check_quorum_step_downs: u64,
    /// Snapshots sent to followers.
    pub snapshots_sent: u64,
    /// Snapshots received and installed.
    pub snapshots_installed: u64,
    /// ReadIndex heartbeat rounds started for waiting reads.
    pub read_index_rounds: u64,
    /// Reads served from the leader lease without a round.
    pub lease_reads: u64,
    /// Batches of a follower's reads answered without a round: the follower's own request
    /// confirmed the leadership (three voters or fewer).
    pub reads_confirmed_by_follower: u64,
    /// Proposals a follower forwarded to its leader.
    pub proposals_forwarded: u64,
    /// AppendEntries rejected by this follower's consistency check.
    pub append_rejections: u64,
    /// Leadership transfers started.
    pub transfers: u64,
}

impl Counters {
    pub fn export(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("elections_total", self.elections),
            ("pre_votes_total", self.pre_votes),
            ("elections_won_total", self.elections_won),
            ("leader_changes_total", self.leader_changes),
            ("check_quorum_step_downs_total", self.check_quorum_step_downs),
            ("snapshots_sent_total", self.snapshots_sent),
            ("snapshots_installed_total", self.snapshots_installed),
            ("read_index_rounds_total", self.read_index_rounds),
            ("lease_reads_total", self.lease_reads),
            ("reads_confirmed_by_follower_total", self.reads_confirmed_by_follower),
            ("proposals_forwarded_total", self.proposals_forwarded),
            ("append_rejections_total", self.append_rejections),
            ("transfers_total", self.transfers),
        ]
    }
}
