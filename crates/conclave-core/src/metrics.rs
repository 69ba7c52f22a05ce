//! Metric names shared by every protocol, so dashboards read the same series whatever runs.
//!
//! Every series carries the label `protocol`. Histograms use explicit buckets (see
//! [`FSYNC_BUCKETS`] and [`LATENCY_BUCKETS`]); meanings follow etcd's, which operators know.

pub const BUILD_INFO: &str = "conclave_build_info";
pub const IS_LEADER: &str = "conclave_is_leader";
pub const HAS_LEADER: &str = "conclave_has_leader";
pub const LEADER_CHANGES_TOTAL: &str = "conclave_leader_changes_total";
pub const TERM: &str = "conclave_term";
pub const PROPOSALS_TOTAL: &str = "conclave_proposals_total";
pub const PROPOSALS_PENDING: &str = "conclave_proposals_pending";
pub const PROPOSAL_DURATION_SECONDS: &str = "conclave_proposal_duration_seconds";
pub const READ_DURATION_SECONDS: &str = "conclave_read_duration_seconds";
pub const COMMIT_INDEX: &str = "conclave_commit_index";
pub const APPLIED_INDEX: &str = "conclave_applied_index";
pub const PEER_MESSAGES_SENT_TOTAL: &str = "conclave_peer_messages_sent_total";
pub const PEER_MESSAGES_RECEIVED_TOTAL: &str = "conclave_peer_messages_received_total";
pub const PEER_BYTES_SENT_TOTAL: &str = "conclave_peer_bytes_sent_total";
pub const PEER_BYTES_RECEIVED_TOTAL: &str = "conclave_peer_bytes_received_total";
pub const PEER_MESSAGES_DROPPED_TOTAL: &str = "conclave_peer_messages_dropped_total";
pub const PEER_ROUND_TRIP_SECONDS: &str = "conclave_peer_round_trip_seconds";
pub const WAL_FSYNC_DURATION_SECONDS: &str = "conclave_wal_fsync_duration_seconds";
pub const WAL_FSYNCS_TOTAL: &str = "conclave_wal_fsyncs_total";
pub const MEMBERS: &str = "conclave_members";
/// `conclave_snapshot_duration_seconds{stage}`: `pause` is how long the node thread stopped to
/// freeze the state (the node serves nothing meanwhile); `encode` is the state's encoding and
/// `write` the file's framing, write and syncs, both on the snapshot thread while the node goes
/// on (a state machine that cannot freeze is encoded during the pause).
pub const SNAPSHOT_DURATION_SECONDS: &str = "conclave_snapshot_duration_seconds";
pub const SNAPSHOTS_TOTAL: &str = "conclave_snapshots_total";
pub const SNAPSHOT_BYTES: &str = "conclave_snapshot_bytes";

/// `conclave_proposals_total{outcome}` label values.
pub const OUTCOME_COMMITTED: &str = "committed";
pub const OUTCOME_FAILED: &str = "failed";
pub const OUTCOME_REJECTED: &str = "rejected";

/// WAL fsync buckets: 0.1 ms doubling up to about 6.5 s, as DESIGN.md asks (0.1 ms × 2^n).
pub const FSYNC_BUCKETS: [f64; 17] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768, 6.5536,
];

/// Request latency buckets: 0.1 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The name of a protocol-specific series: `conclave_<protocol>_<counter>`.
pub fn protocol_series(protocol: &str, counter: &str) -> String {
    format!("conclave_{protocol}_{counter}")
}
