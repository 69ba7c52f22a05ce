//! Linearizable reads: the leader's lease, the read marker through the log, forwarding.

use crate::cluster::Cluster;
use conclave_core::{ConsensusError, NodeId, Protocol, ReadState};
use conclave_paxos::PaxosConfig;

// Reference: leader leases (a majority acknowledged within lease_ms) serve reads locally.
#[test]
fn a_leader_with_a_lease_answers_at_once_with_its_commit_index() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.propose(1, "x");
    c.deliver_all();
    assert!(!c.node(1).has_lease() || c.node(1).commit_index() == 1);
    c.ticks(6); // one heartbeat round acknowledged
    assert!(c.node(1).has_lease());
    c.queue.clear();
    let request = c.read(1);
    assert_eq!(c.replica(1).reads, vec![ReadState { request, index: 1 }]);
    assert!(c.queue.is_empty(), "a lease read sends nothing");
}

#[test]
fn the_lease_runs_out_without_acknowledgements() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.ticks(6);
    assert!(c.node(1).has_lease());
    c.isolate(1);
    c.ticks(11);
    assert!(!c.node(1).has_lease(), "lease_ms (10 ticks) after the last acknowledged round");
    assert!(c.node(1).is_leader(), "but the failure detector has not fired yet");
    // Without the lease the read goes through the log, and cannot complete cut off.
    let request = c.read(1);
    assert!(c.replica(1).reads.iter().all(|r| r.request != request));
    c.ticks(10);
    assert!(!c.node(1).is_leader());
    let rejected = &c.replica(1).rejected;
    assert!(
        rejected
            .iter()
            .any(|r| r.request == request && r.error == ConsensusError::NotLeader { leader: None })
    );
}

// Reference: read through the log — a read marker slot; the read is served once it is chosen.
#[test]
fn without_leases_reads_go_through_the_log() {
    let config = PaxosConfig { lease_ms: 0, ..PaxosConfig::default() };
    let mut c = Cluster::with_config(3, config);
    c.warm_up();
    c.elect(1);
    c.propose(1, "x");
    c.deliver_all();
    let request = c.read(1);
    assert!(c.replica(1).reads.is_empty(), "not before the marker is chosen");
    c.deliver_all();
    assert_eq!(c.replica(1).reads, vec![ReadState { request, index: 2 }]);
    let counters = c.node(1).counters();
    assert!(counters.contains(&("log_reads_total", 1)));
    assert!(counters.contains(&("lease_reads_total", 0)));
}

#[test]
fn followers_forward_reads_to_the_leader() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.propose(1, "x");
    c.ticks(6);
    let request = c.read(3);
    c.deliver_all();
    assert_eq!(c.replica(3).reads, vec![ReadState { request, index: 1 }]);
}

#[test]
fn reads_without_a_known_leader_are_refused() {
    let mut c = Cluster::new(3);
    let request = c.read(2);
    let rejected = &c.replica(2).rejected;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].request, request);
    assert_eq!(rejected[0].error, ConsensusError::NotLeader { leader: None });
    let _ = NodeId(0);
}

#[test]
fn forwarded_reads_to_a_lost_leader_time_out() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.isolate(1);
    let request = c.read(2);
    c.ticks(31);
    let rejected = &c.replica(2).rejected;
    assert!(rejected.iter().any(|r| r.request == request && r.error.is_retryable()));
}
