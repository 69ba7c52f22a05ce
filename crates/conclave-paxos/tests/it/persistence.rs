//! The acceptor's "persist before answering" rule, shown by the crash it protects against.

use crate::cluster::Cluster;
use conclave_core::{NodeId, Protocol};
use conclave_paxos::{Message, PaxosConfig, PlantedBug};
use std::collections::BTreeMap;

/// Node 1 leads at B1 and sends an accept for slot 2 to node 3 that is delayed. Node 2 wins
/// phase 1 at B2 with node 3's promise and proposes another value in slot 2. Node 3 crashes
/// and restarts; then the delayed accept and node 2's accept arrive. Returns the distinct
/// values a majority of acceptors accepted in slot 2.
fn delayed_accept_across_a_crash(config: PaxosConfig) -> Vec<bytes::Bytes> {
    let mut c = Cluster::with_config(3, config);
    c.warm_up();
    c.elect(1);
    c.propose(1, "a");
    c.ticks(6); // a heartbeat tells everyone slot 1 is chosen
    assert_eq!(c.node(3).commit_index(), 1);
    // Node 1 proposes v1 in slot 2; its accept to node 3 is held back, the one to 2 is lost.
    c.isolate(1);
    c.propose(1, "v1");
    let held: Vec<_> = c
        .queue
        .iter()
        .filter(|(f, t, m)| {
            *f == NodeId(1) && *t == NodeId(3) && matches!(m, Message::Accept { .. })
        })
        .cloned()
        .collect();
    assert_eq!(held.len(), 1);
    c.queue.clear();
    // Nodes 2 and 3 stop hearing from node 1; node 2 wins with node 3's promise.
    for _ in 0..16 {
        for id in [2, 3] {
            c.replicas.get_mut(&NodeId(id)).unwrap().node.tick();
            c.process(NodeId(id));
        }
        c.queue.retain(|(f, _, _)| *f != NodeId(2) && *f != NodeId(3));
    }
    c.heal();
    c.isolate(1);
    c.elect(2);
    // Node 2 proposes v2 in slot 2; its accept to node 3 is in flight when node 3 crashes.
    c.propose(2, "v2");
    let to3: Vec<_> = c.queue.iter().filter(|(_, t, _)| *t == NodeId(3)).cloned().collect();
    c.queue.clear();
    c.crash_restart(3);
    c.heal();
    for m in held.into_iter().chain(to3) {
        c.queue.push_back(m);
    }
    let mut values: BTreeMap<bytes::Bytes, ()> = BTreeMap::new();
    loop {
        for (slot, _, e) in c.chosen_by_acceptors() {
            if slot == 2 {
                values.insert(e.data.clone(), ());
            }
        }
        if !c.deliver_one() {
            break;
        }
    }
    values.into_keys().collect()
}

// Reference: Paxos Made Simple §2.2 and §2.4 ("an acceptor must remember ... even if it
// fails and is then restarted").
#[test]
fn a_persisted_promise_keeps_a_delayed_accept_out() {
    let chosen = delayed_accept_across_a_crash(PaxosConfig::default());
    assert_eq!(chosen, vec![bytes::Bytes::from_static(b"v2")]);
}

#[test]
fn the_planted_bug_lets_two_values_be_chosen() {
    let config = PaxosConfig {
        planted_bug: Some(PlantedBug::AnswerPrepareBeforePersisting),
        ..PaxosConfig::default()
    };
    let chosen = delayed_accept_across_a_crash(config);
    assert_eq!(chosen.len(), 2, "v1 by nodes 1 and 3 at B1, then v2 by 2 and 3 at B2: {chosen:?}");
}
