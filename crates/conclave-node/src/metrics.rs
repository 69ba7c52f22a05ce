//! The driver's half of the shared metric vocabulary (see `conclave_core::metrics`).
//!
//! Handles are registered once per node and label set, so the hot path only bumps atomics.
//! With no recorder installed (tests, the simulator) every handle is a no-op.

use conclave_core::metrics as names;
use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Describes every series the driver exports. Call once after installing a recorder.
pub fn describe() {
    describe_gauge!(names::BUILD_INFO, "Build information: version and protocol; always 1");
    describe_gauge!(names::IS_LEADER, "1 if this node is the leader, else 0");
    describe_gauge!(names::HAS_LEADER, "1 if this node knows a leader, else 0");
    describe_counter!(names::LEADER_CHANGES_TOTAL, "Leader changes seen by this node");
    describe_gauge!(names::TERM, "Raft term, Paxos ballot round or Totem ring sequence");
    describe_counter!(
        names::PROPOSALS_TOTAL,
        "Client proposals by outcome: committed, failed (timed out or stopped), rejected"
    );
    describe_gauge!(
        names::PROPOSALS_PENDING,
        "Proposals accepted by this node and not yet answered"
    );
    describe_histogram!(
        names::PROPOSAL_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from proposal to applied"
    );
    describe_histogram!(
        names::READ_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to obtain a read barrier, by consistency"
    );
    describe_histogram!(
        names::SNAPSHOT_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to take a snapshot: pause (the node thread stopped to freeze the state), encode and write (on the snapshot thread)"
    );
    describe_counter!(names::SNAPSHOTS_TOTAL, "Snapshots this node took and installed");
    describe_gauge!(names::SNAPSHOT_BYTES, "Encoded size of the last snapshot this node took");
    describe_gauge!(names::COMMIT_INDEX, "Highest index known committed");
    describe_gauge!(names::APPLIED_INDEX, "Highest index applied to the state machine");
    describe_counter!(names::PEER_MESSAGES_SENT_TOTAL, "Protocol messages sent, by peer and kind");
    describe_counter!(
        names::PEER_MESSAGES_RECEIVED_TOTAL,
        "Protocol messages received, by peer and kind"
    );
    describe_counter!(
        names::PEER_BYTES_SENT_TOTAL,
        metrics::Unit::Bytes,
        "Encoded protocol message bytes sent, by peer"
    );
    describe_counter!(
        names::PEER_BYTES_RECEIVED_TOTAL,
        metrics::Unit::Bytes,
        "Encoded protocol message bytes received, by peer"
    );
    describe_histogram!(
        names::WAL_FSYNC_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Latency of one WAL fdatasync"
    );
    describe_counter!(names::WAL_FSYNCS_TOTAL, "WAL fdatasync calls");
    describe_counter!(
        names::PEER_MESSAGES_DROPPED_TOTAL,
        "Payloads dropped because a peer's send queue was full or the payload too large"
    );
    describe_histogram!(
        names::PEER_ROUND_TRIP_SECONDS,
        metrics::Unit::Seconds,
        "Round trip of a ping to a peer over the peer transport"
    );
    describe_gauge!(names::MEMBERS, "Members in this node's view of the cluster");
}

/// The series of a protocol with a leader.
#[derive(Debug)]
pub struct LeaderMetrics {
    pub is_leader: Gauge,
    pub has_leader: Gauge,
    pub leader_changes: Counter,
}

/// Registered metric handles for one node.
#[derive(Debug)]
pub struct NodeMetrics {
    protocol: &'static str,
    /// Leader series, only for protocols that elect a leader (absent for gossip and Totem,
    /// so that "no leader" alerts never fire for them).
    pub leadership: Option<LeaderMetrics>,
    pub term: Gauge,
    pub committed: Counter,
    pub failed: Counter,
    pub rejected: Counter,
    pub pending: Gauge,
    pub proposal_duration: Histogram,
    pub read_linearizable: Histogram,
    pub read_local: Histogram,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub fsync_duration: Histogram,
    pub fsyncs: Counter,
    pub members: Gauge,
    pub snapshot_pause: Histogram,
    pub snapshot_encode: Histogram,
    pub snapshot_write: Histogram,
    pub snapshots: Counter,
    pub snapshot_bytes: Gauge,
    peers: Mutex<BTreeMap<(u64, &'static str, bool), Counter>>,
    peer_bytes: Mutex<BTreeMap<(u64, bool), Counter>>,
    protocol_series: Mutex<BTreeMap<&'static str, Series>>,
}

/// A protocol-specific series: names ending in `_total` are counters, the rest gauges.
#[derive(Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
}

impl NodeMetrics {
    /// Registers the node's series; `has_leader` says whether the protocol elects a leader.
    pub fn new(protocol: &'static str, has_leader: bool) -> Self {
        let p = ("protocol", protocol);
        gauge!(names::BUILD_INFO, "protocol" => protocol, "version" => env!("CARGO_PKG_VERSION"))
            .set(1.0);
        Self {
            protocol,
            leadership: has_leader.then(|| LeaderMetrics {
                is_leader: gauge!(names::IS_LEADER, &[p]),
                has_leader: gauge!(names::HAS_LEADER, &[p]),
                leader_changes: counter!(names::LEADER_CHANGES_TOTAL, &[p]),
            }),
            term: gauge!(names::TERM, &[p]),
            committed: counter!(names::PROPOSALS_TOTAL, "protocol" => protocol, "outcome" => names::OUTCOME_COMMITTED),
            failed: counter!(names::PROPOSALS_TOTAL, "protocol" => protocol, "outcome" => names::OUTCOME_FAILED),
            rejected: counter!(names::PROPOSALS_TOTAL, "protocol" => protocol, "outcome" => names::OUTCOME_REJECTED),
            pending: gauge!(names::PROPOSALS_PENDING, &[p]),
            proposal_duration: histogram!(names::PROPOSAL_DURATION_SECONDS, &[p]),
            read_linearizable: histogram!(names::READ_DURATION_SECONDS, "protocol" => protocol, "consistency" => "linearizable"),
            read_local: histogram!(names::READ_DURATION_SECONDS, "protocol" => protocol, "consistency" => "local"),
            commit_index: gauge!(names::COMMIT_INDEX, &[p]),
            applied_index: gauge!(names::APPLIED_INDEX, &[p]),
            fsync_duration: histogram!(names::WAL_FSYNC_DURATION_SECONDS, &[p]),
            fsyncs: counter!(names::WAL_FSYNCS_TOTAL, &[p]),
            members: gauge!(names::MEMBERS, &[p]),
            snapshot_pause: histogram!(names::SNAPSHOT_DURATION_SECONDS, "protocol" => protocol, "stage" => "pause"),
            snapshot_encode: histogram!(names::SNAPSHOT_DURATION_SECONDS, "protocol" => protocol, "stage" => "encode"),
            snapshot_write: histogram!(names::SNAPSHOT_DURATION_SECONDS, "protocol" => protocol, "stage" => "write"),
            snapshots: counter!(names::SNAPSHOTS_TOTAL, &[p]),
            snapshot_bytes: gauge!(names::SNAPSHOT_BYTES, &[p]),
            peers: Mutex::default(),
            peer_bytes: Mutex::default(),
            protocol_series: Mutex::default(),
        }
    }

    /// Counts one message to (`sent`) or from a peer, and its bytes.
    pub fn peer_message(&self, peer: u64, kind: &'static str, sent: bool, bytes: usize) {
        let protocol = self.protocol;
        let mut peers = self.peers.lock().expect("metrics lock poisoned");
        peers
            .entry((peer, kind, sent))
            .or_insert_with(|| {
                let name = if sent {
                    names::PEER_MESSAGES_SENT_TOTAL
                } else {
                    names::PEER_MESSAGES_RECEIVED_TOTAL
                };
                counter!(name, "protocol" => protocol, "peer" => peer.to_string(), "kind" => kind)
            })
            .increment(1);
        drop(peers);
        let mut peer_bytes = self.peer_bytes.lock().expect("metrics lock poisoned");
        peer_bytes
            .entry((peer, sent))
            .or_insert_with(|| {
                let name = if sent {
                    names::PEER_BYTES_SENT_TOTAL
                } else {
                    names::PEER_BYTES_RECEIVED_TOTAL
                };
                counter!(name, "protocol" => protocol, "peer" => peer.to_string())
            })
            .increment(bytes as u64);
    }

    /// Exports a protocol-specific value as `conclave_<protocol>_<name>`: a counter when the
    /// name ends in `_total` (the protocol reports its running total), a gauge otherwise.
    pub fn protocol_value(&self, name: &'static str, value: u64) {
        let protocol = self.protocol;
        let mut series = self.protocol_series.lock().expect("metrics lock poisoned");
        let series = series.entry(name).or_insert_with(|| {
            let full = names::protocol_series(protocol, name);
            let help = format!("{protocol}-specific: {}", name.replace('_', " "));
            if name.ends_with("_total") {
                describe_counter!(full.clone(), help);
                Series::Counter(counter!(full, "protocol" => protocol))
            } else {
                describe_gauge!(full.clone(), help);
                Series::Gauge(gauge!(full, "protocol" => protocol))
            }
        });
        match series {
            Series::Counter(c) => c.absolute(value),
            Series::Gauge(g) => g.set(value as f64),
        }
    }
}
