//! Commitment (§5.4.2): a leader commits only entries of its own term by counting replicas.
//! The Figure 8 scenario, with and without the planted bug that drops the rule.

use crate::network::{Network, Store, config};
use bytes::Bytes;
use conclave_core::{Entry, NodeId, Protocol, Role};
use conclave_raft::{HardState, PlantedBug, RaftConfig, RaftMessage};
use std::collections::BTreeSet;

fn entry(index: u64, term: u64, s: &'static str) -> Entry {
    Entry::command(index, term, Bytes::from_static(s.as_bytes()))
}

/// The data of every non-empty entry replica `id` applied (these entries carry no driver header).
fn applied(net: &Network, id: u64) -> Vec<String> {
    net.node(id)
        .applied
        .iter()
        .filter(|(_, _, data)| !data.is_empty())
        .map(|(_, _, data)| String::from_utf8(data.to_vec()).unwrap())
        .collect()
}

fn store(entries: Vec<Entry>, term: u64, voted_for: Option<u64>) -> Store {
    let hs = HardState { term, voted_for: voted_for.map(NodeId), commit: 1 };
    Store { hard_state: Some(hs.encode()), snapshot: None, entries }
}

/// Figure 8 (c): S1 leads term 4 and has just copied its term-2 entry at index 2 onto S2 and S3
/// — a majority — but its own term-4 no-op reached nobody. S5 holds a term-3 entry at index 2.
fn figure_8(planted_bug: Option<PlantedBug>) -> Network {
    let config = RaftConfig {
        pre_vote: false,
        check_quorum: false,
        max_entries_per_append: 1,
        planted_bug,
        ..config()
    };
    let mut net = Network::new(5, config);
    net.strict = planted_bug.is_none();
    let one = entry(1, 1, "one");
    let stores = [
        store(vec![one.clone(), entry(2, 2, "two-from-s1")], 3, None),
        store(vec![one.clone()], 3, None),
        store(vec![one.clone()], 3, None),
        store(vec![one.clone()], 3, None),
        store(vec![one, entry(2, 3, "two-from-s5")], 3, Some(5)),
    ];
    for (i, store) in stores.into_iter().enumerate() {
        let id = i as u64 + 1;
        net.nodes.get_mut(&NodeId(id)).unwrap().store = store;
        net.restart(id);
    }
    net.deliver_all();
    net.crash(5);
    net.isolate(4);
    // S1's first append to each follower (its no-op after index 2) is refused, as they lack
    // index 2; every later append that carries the no-op is lost.
    let mut probed = BTreeSet::new();
    let mut no_op_lost = |_: NodeId, to: NodeId, m: &RaftMessage| match m {
        RaftMessage::AppendEntries { entries, .. } if entries.iter().any(|e| e.index >= 3) => {
            probed.insert(to)
        }
        _ => true,
    };
    while net.raft(1).role() != Role::Leader {
        net.raft_mut(1).tick();
        net.deliver_filtered(&mut no_op_lost);
    }
    net.deliver_filtered(&mut no_op_lost);
    assert_eq!(net.raft(1).term(), 4);
    for id in [2, 3] {
        assert_eq!(net.raft(id).term_at(2), Some(2), "S{id} holds S1's entry");
        assert_eq!(net.raft(id).last_index(), 2);
    }
    net
}

/// Figure 8 (d): S1 crashes; S5 is elected with the votes of S2, S3 and S4 and overwrites
/// index 2 with its own term-3 entry. (S2 and S3 restart too, so that they forget S1 at once
/// instead of refusing votes for an election timeout, thesis §4.2.3.)
fn figure_8_d(net: &mut Network) {
    net.crash(1);
    for id in [2, 3] {
        net.crash(id);
        net.restart(id);
    }
    net.heal();
    net.restart(5);
    net.elect(5);
    net.deliver_all();
    assert_eq!(net.raft(5).commit_index(), 3);
}

// Reference: §5.4.2 and Figure 8 — an entry of a previous term stored on a majority is not
// committed by counting; it commits only once an entry of the leader's term does.
#[test]
fn previous_term_entries_are_not_committed_by_counting() {
    let mut net = figure_8(None);
    assert_eq!(net.raft(1).commit_index(), 1);
    assert_eq!(applied(&net, 1), vec!["one"]);
    figure_8_d(&mut net);
    // S5's entry replaced S1's everywhere, and nobody had applied S1's.
    assert_eq!(applied(&net, 5), vec!["one", "two-from-s5"]);
    assert_eq!(applied(&net, 2), vec!["one", "two-from-s5"]);
    net.assert_state_machine_safety();
    // S1 comes back and its uncommitted entry is overwritten too.
    net.restart(1);
    net.tick_all(10);
    assert_eq!(applied(&net, 1), vec!["one", "two-from-s5"]);
    net.assert_state_machine_safety();
}

// Reference: §5.4.2 and Figure 8 — the planted bug commits by counting and the cluster then loses
// a committed entry: S1 applied its entry at index 2 and S5 later applies a different one there.
#[test]
fn planted_bug_commit_by_counting_breaks_state_machine_safety() {
    let mut net = figure_8(Some(PlantedBug::CommitPreviousTermByCounting));
    assert_eq!(net.raft(1).commit_index(), 2);
    assert_eq!(applied(&net, 1), vec!["one", "two-from-s1"]);
    figure_8_d(&mut net);
    assert_eq!(applied(&net, 5), vec!["one", "two-from-s5"]);
    assert_eq!(net.state_machine_conflicts(), vec![2]);
    // The new leader was elected without the entry S1 had committed.
    assert_eq!(net.violations, vec!["leader 5 of term 5 lacks committed entry 2".to_string()]);
}

// Reference: §5.4.2 — the no-op a leader appends at once (§8) commits the previous terms'
// entries as soon as it reaches a majority.
#[test]
fn the_leaders_no_op_commits_earlier_entries() {
    let mut net = figure_8(None);
    // Let the no-op through now.
    net.deliver_all();
    net.tick_all(3);
    assert_eq!(net.raft(1).commit_index(), 3);
    assert_eq!(applied(&net, 1), vec!["one", "two-from-s1"]);
    assert_eq!(applied(&net, 2), vec!["one", "two-from-s1"]);
    net.assert_state_machine_safety();
}
