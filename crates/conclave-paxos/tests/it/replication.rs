//! Phase 2 per command: replication, batching, pipelining, recovery of in-flight slots by a
//! new leader, gap filling and catch-up.

use crate::cluster::Cluster;
use conclave_core::{NodeId, Protocol};
use conclave_paxos::{Message, PaxosConfig};

// Reference: Paxos Made Simple §3 — commands applied in slot order everywhere.
#[test]
fn commands_are_chosen_and_applied_in_order_on_every_replica() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    for i in 0..10 {
        c.propose(1, &format!("cmd{i}"));
        c.deliver_all();
    }
    c.ticks(10);
    let expected: Vec<String> = (0..10).map(|i| format!("cmd{i}")).collect();
    for id in 1..=3 {
        assert_eq!(c.commands(id), expected, "node {id}");
    }
    c.check_prefixes();
}

#[test]
fn proposals_at_a_follower_are_forwarded_and_applied() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.propose(2, "from-2");
    c.deliver_all();
    c.ticks(6);
    for id in 1..=3 {
        assert_eq!(c.commands(id), vec!["from-2".to_string()]);
    }
}

// Batching: the proposals of one event loop go out as one Accept per peer.
#[test]
fn proposals_between_two_readies_share_one_accept_per_peer() {
    let config = PaxosConfig { max_batch_entries: 4, ..PaxosConfig::default() };
    let mut c = Cluster::with_config(3, config);
    c.warm_up();
    c.elect(1);
    c.ticks(1);
    c.queue.clear();
    let node = c.node_mut(1);
    for i in 0..10 {
        node.propose(conclave_core::RequestId(i), bytes::Bytes::from(format!("p{i}")));
    }
    c.process(NodeId(1));
    let sizes: Vec<usize> = c
        .queue
        .iter()
        .filter(|(_, to, _)| *to == NodeId(2))
        .filter_map(|(_, _, m)| match m {
            Message::Accept { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![4, 4, 2], "batches of at most max_batch_entries");
    c.deliver_all();
    assert_eq!(c.node(1).commit_index(), 10);
}

// Pipelining: at most α slots past the commit index are in flight.
#[test]
fn the_pipelining_window_bounds_slots_in_flight() {
    let config = PaxosConfig { max_inflight_slots: 3, ..PaxosConfig::default() };
    let mut c = Cluster::with_config(3, config);
    c.warm_up();
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    for i in 0..6 {
        c.propose(1, &format!("w{i}"));
    }
    c.deliver_all();
    let (_, last) = c.node(1).log_bounds();
    assert_eq!(last, 3, "only α slots proposed while nothing is chosen");
    c.heal();
    c.ticks(10);
    assert_eq!(c.commands(3).len(), 6);
}

// Reference: Paxos Made Simple §3 — a new leader completes the slots its predecessor left in
// flight (P2c); a proposal that reached no acceptor is simply lost. (Gaps below a reported
// slot cannot arise here — acceptors accept in slot order — but the no-op filling itself is
// checked in `effects`.)
#[test]
fn a_new_leader_recovers_in_flight_slots() {
    let mut c = Cluster::new(5);
    c.warm_up();
    c.elect(1);
    c.ticks(1);
    // Slot 1 reaches nodes 2 and 3 (chosen by 1, 2, 3); slots 2 and 3 reach node 2 only;
    // slot 4 reaches nobody. The leader is cut off right after sending.
    c.isolate(1);
    c.cut.remove(&(NodeId(1), NodeId(2)));
    c.cut.remove(&(NodeId(1), NodeId(3)));
    c.cut.remove(&(NodeId(2), NodeId(1)));
    c.cut.remove(&(NodeId(3), NodeId(1)));
    c.propose(1, "s1");
    c.deliver_all();
    c.cut.insert((NodeId(1), NodeId(3)));
    c.cut.insert((NodeId(2), NodeId(1)));
    c.propose(1, "s2");
    c.propose(1, "s3");
    c.deliver_all();
    c.isolate(1);
    c.propose(1, "s4");
    c.deliver_all();
    assert_eq!(c.node(1).commit_index(), 1, "only slot 1 is known chosen");
    assert_eq!(c.node(2).accepted(3).unwrap().1.data, "s3");
    assert!(c.node(3).accepted(2).is_none());
    // Node 4 takes over; its quorum is itself, 2 and 3 (the first two to answer).
    c.warm_up();
    c.elect(4);
    c.ticks(5);
    assert_eq!(c.commands(4), vec!["s1", "s2", "s3"]);
    c.heal();
    c.ticks(30);
    c.check_prefixes();
    assert_eq!(c.commands(1), vec!["s1", "s2", "s3"], "the old leader learns the outcome");
    assert_eq!(c.node(1).commit_index(), 3, "slot 4 was never chosen");
}

// Reference: learners catch up on chosen values they missed.
#[test]
fn a_lagging_follower_catches_up_from_the_leader() {
    let mut c = Cluster::new(3);
    c.warm_up();
    c.elect(1);
    c.isolate(3);
    for i in 0..100 {
        c.propose(1, &format!("c{i}"));
    }
    c.deliver_all();
    assert_eq!(c.node(1).commit_index(), 100);
    assert_eq!(c.node(3).commit_index(), 0);
    c.heal();
    c.ticks(10);
    assert_eq!(c.commands(3).len(), 100);
    c.check_prefixes();
    let counters = c.node(1).counters();
    assert!(counters.iter().any(|(n, v)| *n == "catchup_entries_total" && *v >= 100));
}

#[test]
fn leader_churn_under_load_keeps_applied_sequences_consistent() {
    let mut c = Cluster::new(5);
    let mut proposed = 0;
    for round in 0..6u64 {
        let leader = c.run_until_leader(300);
        for _ in 0..5 {
            c.propose(leader.0, &format!("r{round}-{proposed}"));
            proposed += 1;
        }
        // Cut the leader off mid-way through delivery.
        for _ in 0..7 {
            c.deliver_one();
        }
        c.isolate(leader.0);
        c.ticks(40);
        c.heal();
        c.check_prefixes();
    }
    c.ticks(50);
    c.check_prefixes();
    let lens: Vec<usize> = (1..=5).map(|id| c.replica(id).applied.len()).collect();
    assert!(lens.iter().all(|l| *l == lens[0]), "all caught up: {lens:?}");
}
