//! The gossip protocol through `conclave_core::Protocol`: effects for a given event.

use crate::cluster::{Cluster, fast_config, id};
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{ConsensusError, EntryKind, Membership, Protocol, Recovered, RequestId};
use conclave_gossip::{Gossip, GossipConfig, Hlc};
use conclave_kv::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, Output, PutRequest,
    RequestOp, TxnRequest,
};

fn lone() -> Gossip {
    let mut g =
        Gossip::new(id(1), Membership::new([id(1), id(2)]), fast_config(), Recovered::default(), 7)
            .unwrap();
    let _ = g.ready();
    g
}

fn proposal(request: u64, command: Command) -> Bytes {
    Proposal { origin: id(1), request: RequestId(request), command: command.encode() }.encode()
}

#[test]
fn a_proposal_is_applied_at_once() {
    let mut g = lone();
    let data = proposal(5, Command::Put(PutRequest::new("k", "v")));
    g.propose(RequestId(5), data.clone());
    let ready = g.ready();
    assert_eq!(ready.entries.len(), 1);
    assert_eq!(ready.committed, ready.entries, "committed in the same ready as persisted");
    let entry = &ready.committed[0];
    assert_eq!((entry.index, entry.kind, &entry.data), (1, EntryKind::Command, &data));
    assert_eq!(Hlc::unpack(entry.term), g.get(b"k").unwrap().stamp.hlc, "term carries the stamp");
    g.propose(RequestId(6), proposal(6, Command::Put(PutRequest::new("k", "w"))));
    assert_eq!(g.ready().committed[0].index, 2, "the local apply sequence");
    assert_eq!(g.status().commit_index, 2);
}

#[test]
fn linearizable_reads_and_compares_are_unsupported() {
    let mut g = lone();
    g.read(RequestId(1));
    let txn = TxnRequest {
        compare: vec![Compare::new(
            "k",
            CompareResult::Equal,
            CompareTarget::Value(Bytes::from("v")),
        )],
        success: vec![RequestOp::Put(PutRequest::new("k", "w"))],
        failure: vec![],
    };
    g.propose(RequestId(2), proposal(2, Command::Txn(txn)));
    g.propose(RequestId(3), proposal(3, Command::Put(PutRequest::new("k", "v").with_lease(9))));
    let ready = g.ready();
    assert!(ready.committed.is_empty() && ready.entries.is_empty());
    let requests: Vec<u64> = ready.rejected.iter().map(|r| r.request.0).collect();
    assert_eq!(requests, vec![1, 2, 3]);
    for r in &ready.rejected {
        assert!(
            matches!(r.error, ConsensusError::Unsupported { protocol: "gossip", .. }),
            "{:?}",
            r.error
        );
    }
    let guarantees = g.guarantees();
    assert!(!guarantees.linearizable_reads && !guarantees.linearizable_writes);
    assert!(!guarantees.atomic_compare_and_swap && !guarantees.has_leader);
    assert_eq!(guarantees.fault_tolerance, None);
    assert_eq!(g.status().leader, None);
}

#[test]
fn txns_without_compares_and_range_deletes_replicate_per_key() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "p/1", "a");
    cluster.put(id(1), "p/2", "b");
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest::new("t/1", "x")),
            RequestOp::DeleteRange(DeleteRangeRequest::key("p/1")),
        ],
        failure: vec![],
    };
    let request = cluster.propose(id(1), Command::Txn(txn));
    assert!(matches!(cluster.node(id(1)).outputs[&request], Output::Txn(_)));
    cluster.propose(id(1), Command::DeleteRange(DeleteRangeRequest::prefix("p/")));
    cluster.ticks_until(50, Cluster::converged).expect("converges");
    let keys: Vec<Bytes> = cluster.kv_contents(id(2)).into_keys().collect();
    assert_eq!(keys, vec![Bytes::from("t/1")]);
    assert!(cluster.gossip(id(2)).get(b"p/2").unwrap().is_tombstone());
}

#[test]
fn a_winning_remote_write_is_applied_with_the_writer_as_origin() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.put(id(1), "k", "v");
    cluster.ticks_until(50, Cluster::converged).expect("converges");
    let log = &cluster.node(id(2)).disk.log;
    let entry = log.iter().find(|e| e.kind == EntryKind::Command).expect("an entry on node 2");
    let header = Proposal::decode(&entry.data).unwrap();
    assert_eq!(header.origin, id(1));
    assert_eq!(header.request, RequestId(0), "nobody waits on a replicated write");
    assert_eq!(Command::decode(&header.command).unwrap(), Command::Put(PutRequest::new("k", "v")));
}

#[test]
fn a_write_quorum_holds_the_answer_until_peers_hold_the_write() {
    let config = GossipConfig { write_quorum: 2, write_quorum_timeout_ms: 1_000, ..fast_config() };
    let mut cluster = Cluster::new(3, config);
    cluster.ticks(5);
    let request = cluster.put(id(1), "k", "v");
    assert!(!cluster.node(id(1)).outputs.contains_key(&request), "not answered before the quorum");
    cluster.ticks_until(20, |c| c.node(id(1)).outputs.contains_key(&request)).expect("answered");
    assert!(cluster.gossip(id(1)).acknowledged_by(id(2)).is_some());
    // Cut off from its peers, a write times out — but stays applied and spreads later.
    cluster.isolate(id(1));
    let late = cluster.put(id(1), "late", "x");
    cluster.ticks(110);
    let rejected = &cluster.node(id(1)).rejected;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].request, late);
    assert!(matches!(rejected[0].error, ConsensusError::Timeout(1_000)));
    assert!(!cluster.node(id(1)).outputs.contains_key(&late), "no success after the timeout");
    assert_eq!(cluster.kv_value(id(1), "late").unwrap(), "x");
    assert_eq!(cluster.counter(id(1), "write_quorum_timeouts_total"), 1);
    cluster.heal();
    cluster.ticks_until(100, Cluster::converged).expect("converges");
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let run = || {
        let mut cluster = Cluster::new(5, fast_config());
        for i in 0..20 {
            cluster.put(id(1 + i % 5), &format!("k{}", i % 7), &format!("v{i}"));
            cluster.ticks(3);
        }
        cluster.ticks(50);
        (cluster.delivered.clone(), cluster.gossip(id(3)).merkle_root())
    };
    assert_eq!(run(), run());
}

#[test]
fn messages_name_their_kind() {
    let mut cluster = Cluster::new(2, fast_config());
    cluster.ticks(30);
    let kinds: std::collections::BTreeSet<&str> = cluster.delivered.iter().map(|d| d.2).collect();
    assert!(kinds.contains("syn") && kinds.contains("ack") && kinds.contains("ack2"));
    assert!(kinds.contains("merkle_probe"));
}

#[test]
fn malformed_messages_do_not_panic() {
    use conclave_gossip::{Body, Deltas, Heartbeat, Message, Stamp, Update, VersionVector};
    let mut g = lone();
    let far = Hlc { physical_ms: u64::MAX, logical: u16::MAX };
    let mut digest = VersionVector::new();
    digest.raise(id(2), far);
    let update = |key: &'static str| Update {
        key: Bytes::from(key),
        value: Some(Bytes::from("v")),
        stamp: Stamp::new(far, id(2)),
    };
    let bodies = vec![
        Body::Syn {
            members: vec![(id(1), Heartbeat { generation: u64::MAX, counter: u64::MAX })],
            digest: digest.clone(),
            congested: true,
        },
        Body::Ack {
            members: vec![(id(2), Heartbeat { generation: 1, counter: 1 })],
            digest: digest.clone(),
            deltas: Deltas { updates: vec![update(""), update("k")], through: digest.clone() },
            congested: false,
        },
        Body::Ack2 { digest: digest.clone(), deltas: Deltas::default() },
        Body::Receipt { digest },
        Body::MerkleProbe { children: vec![1; 3] },
        Body::MerkleLeaves { subtrees: vec![(200, vec![1, 2]), (3, vec![])] },
        Body::MerkleEntries {
            leaves: vec![1_000, u16::MAX],
            updates: vec![update("x")],
            reply: true,
        },
    ];
    for body in bodies {
        g.step(id(2), Message { hlc: far, body });
        let _ = g.ready();
        g.tick();
        let _ = g.ready();
    }
    assert_eq!(g.get(b""), None, "the empty key is never taken from a peer");
    assert!(g.value(b"k").is_some());
}
