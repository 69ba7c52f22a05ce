//! Totem-specific counters, exported by the driver as `conclave_totem_<name>`.

/// Counts of protocol events on this member, and one gauge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Token visits at this member (one per rotation).
    pub token_rotations: u64,
    /// Regular messages rebroadcast on a retransmission request or in recovery.
    pub retransmits: u64,
    /// Rings installed.
    pub ring_changes: u64,
    /// Ticks between the last two token visits (a gauge).
    pub token_rotation_ticks: u64,
    /// Times the token was declared lost.
    pub token_losses: u64,
    /// Times this member resent the token it had forwarded.
    pub token_retransmits: u64,
    /// Gather states entered.
    pub gathers: u64,
    /// Log synchronisations sent as the new primary component's source.
    pub syncs_sent: u64,
    /// Snapshots sent in those synchronisations.
    pub snapshots_sent: u64,
    /// Proposals and reads refused outside the primary component.
    pub rejected: u64,
}

impl Counters {
    pub fn export(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("token_rotations_total", self.token_rotations),
            ("retransmits_total", self.retransmits),
            ("ring_changes_total", self.ring_changes),
            ("token_rotation_ticks", self.token_rotation_ticks),
            ("token_losses_total", self.token_losses),
            ("token_retransmits_total", self.token_retransmits),
            ("gathers_total", self.gathers),
            ("syncs_sent_total", self.syncs_sent),
            ("snapshots_sent_total", self.snapshots_sent),
            ("rejected_total", self.rejected),
        ]
    }
}
