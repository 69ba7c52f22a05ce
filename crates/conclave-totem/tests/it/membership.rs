//! The membership protocol: token loss, gather, commit, recovery, partitions and merges,
//! restarts, and the primary component (Totem §4).

use crate::net::{Cluster, n};
use conclave_core::{ConsensusError, Protocol, Role};
use conclave_totem::{ConfigurationKind, Delivered, MembershipState, RingId, TotemConfig};

fn formed(size: u64) -> Cluster {
    let mut c = Cluster::new(size, TotemConfig::default());
    let all: Vec<u64> = (1..=size).collect();
    assert!(c.run_until(3000, |c| c.ring_of(&all).is_some()), "ring formed");
    c
}

fn counter(c: &Cluster, id: u64, name: &str) -> u64 {
    c.totem(n(id)).counters().into_iter().find(|(k, _)| *k == name).unwrap().1
}

// Reference: Totem §4 (token loss → gather → commit → recovery → operational). A failed member's
// ring re-forms and writes resume within 3 s.
#[test]
fn losing_a_member_reforms_the_ring_within_three_seconds() {
    let mut c = formed(5);
    c.propose(n(1), "before");
    assert!(c.run_until(1000, |c| (1..=5).all(|i| c.is_applied(n(i), "before"))));
    let crashed_at = c.now_ms;
    c.crash(n(3));
    c.propose(n(5), "after");
    assert!(
        c.run_until(3000, |c| [1, 2, 4, 5].iter().all(|&i| c.is_applied(n(i), "after"))),
        "a write was applied by the survivors within 3 s"
    );
    let ring = c.ring_of(&[1, 2, 4, 5]).expect("a ring of the survivors");
    eprintln!("writes resumed {} ms after the crash", c.now_ms - crashed_at);
    assert!(c.now_ms - crashed_at <= 3000);
    assert_eq!(ring.rep, n(1));
    for i in [1, 2, 4, 5] {
        assert!(c.totem(n(i)).is_primary());
        assert_eq!(c.totem(n(i)).status().role, Role::Member);
        assert!(counter(&c, i, "ring_changes_total") >= 2);
    }
    c.check_applied_prefixes();
}

/// Messages of `ring` a member delivered, in order.
fn delivered_on(c: &Cluster, id: u64, ring: RingId) -> Vec<u64> {
    c.node(n(id))
        .deliveries
        .iter()
        .filter_map(|d| match d {
            Delivered::Message(m) if m.ring == ring => Some(m.seq),
            _ => None,
        })
        .collect()
}

// Reference: Totem §4.4 and extended virtual synchrony: members that move together from one
// ring to the next deliver the same messages of the first, and a transitional configuration
// of exactly them before the new regular one.
#[test]
fn survivors_deliver_the_same_old_ring_messages() {
    let mut c = formed(4);
    let old = c.totem(n(1)).ring_id().unwrap();
    // Node 4 hears nothing more, then fails while writes are in flight.
    c.set_filter(|_, to, _| to != n(4));
    for k in 0..10 {
        c.propose(n(k % 3 + 1), &format!("m{k}"));
    }
    c.run_ms(3);
    c.crash(n(4));
    c.clear_filter();
    assert!(c.run_until(4000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    let first = delivered_on(&c, 1, old);
    for i in 2..=3 {
        assert_eq!(delivered_on(&c, i, old), first, "node {i} delivered the same old-ring set");
    }
    for i in 1..=3 {
        let configs: Vec<(ConfigurationKind, Vec<u64>)> = c
            .node(n(i))
            .deliveries
            .iter()
            .filter_map(|d| match d {
                Delivered::Configuration(cfg) => {
                    Some((cfg.kind, cfg.members.iter().map(|m| m.0).collect()))
                }
                _ => None,
            })
            .collect();
        let tail = &configs[configs.len() - 2..];
        assert_eq!(tail[0], (ConfigurationKind::Transitional, vec![1, 2, 3]));
        assert_eq!(tail[1], (ConfigurationKind::Regular, vec![1, 2, 3]));
    }
    assert!(c.run_until(2000, |c| (1..=3).all(|i| c.applied_commands(n(i)).len() == 10)));
    c.check_applied_prefixes();
}

// Reference: Totem §4 with the primary-component rule: a partition leaves two rings; only the
// one with a majority of the configured members accepts writes.
#[test]
fn only_the_majority_side_of_a_partition_accepts_writes() {
    let mut c = formed(5);
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    assert!(c.run_until(4000, |c| c.ring_of(&[1, 2]).is_some() && c.ring_of(&[3, 4, 5]).is_some()));
    assert!(!c.totem(n(1)).is_primary());
    assert_eq!(c.totem(n(1)).status().role, Role::Recovering);
    assert!(c.totem(n(3)).is_primary());

    let refused = c.propose(n(1), "minority");
    let read = c.read(n(2));
    for (node, request) in [(1, refused), (2, read)] {
        let rejection = c.node(n(node)).rejected.iter().find(|r| r.request == request).unwrap();
        assert!(
            matches!(&rejection.error, ConsensusError::Unavailable(m) if m.contains("primary component")),
            "{:?}",
            rejection.error
        );
    }
    c.propose(n(4), "majority");
    assert!(c.run_until(1000, |c| (3..=5).all(|i| c.is_applied(n(i), "majority"))));
    c.run_ms(500);
    assert!(!c.is_applied(n(1), "minority") && !c.is_applied(n(1), "majority"));
    c.check_applied_prefixes();
}

// Reference: Totem §4.2 (rings merge when their members hear each other's joins). Rings split
// by a partition merge once it heals, and the minority catches up.
#[test]
fn rings_merge_after_a_partition_heals() {
    let mut c = formed(5);
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    assert!(c.run_until(4000, |c| c.ring_of(&[3, 4, 5]).is_some() && c.ring_of(&[1, 2]).is_some()));
    for k in 0..5 {
        c.propose(n(3 + k % 3), &format!("p{k}"));
    }
    assert!(c.run_until(1000, |c| c.applied_commands(n(3)).len() == 5));
    c.heal();
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3, 4, 5]).is_some()), "merged");
    c.propose(n(1), "merged");
    assert!(c.run_until(1000, |c| (1..=5).all(|i| c.applied_commands(n(i)).len() == 6)));
    assert_eq!(c.applied_commands(n(1)), c.applied_commands(n(4)));
    c.check_applied_prefixes();
}

// Reference: Totem §4 (a processor that recovers rejoins through the membership protocol).
// A node that crashes and restarts rejoins through gather and is caught up with the entries it
// missed, replayed from its own log first (as far as its durable committed index says: the
// index is written without a sync of its own, so here the sync of "two" carries the commit of
// "one").
#[test]
fn a_restarted_member_rejoins_and_catches_up() {
    let mut c = formed(3);
    c.propose(n(1), "one");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "one"))));
    c.propose(n(3), "two");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "two"))));
    c.crash(n(2));
    for k in 0..5 {
        c.propose(n(1 + 2 * (k % 2)), &format!("gone{k}"));
    }
    assert!(c.run_until(4000, |c| c.applied_commands(n(1)).len() == 7));
    c.restart(n(2));
    assert!(c.is_applied(n(2), "one"), "replayed from its own log");
    assert_eq!(c.totem(n(2)).state(), MembershipState::Gather);
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    assert!(c.run_until(1000, |c| c.applied_commands(n(2)).len() == 7));
    assert_eq!(c.applied_commands(n(2)), c.applied_commands(n(1)));
    c.check_applied_prefixes();
}

// A member far behind is caught up with a snapshot when the entries it lacks were compacted.
#[test]
fn a_member_behind_a_compaction_gets_a_snapshot() {
    let mut c = formed(3);
    c.crash(n(3));
    for k in 0..20 {
        c.propose(n(1 + k % 2), &format!("s{k}"));
    }
    assert!(c.run_until(5000, |c| c.applied_commands(n(1)).len() == 20
        && c.applied_commands(n(2)).len() == 20));
    for i in 1..=2 {
        let index = c.take_snapshot(n(i));
        assert!(c.totem(n(i)).first_index() > index.min(15));
    }
    c.restart(n(3));
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    assert!(c.run_until(1000, |c| c.applied_commands(n(3)).len() == 20));
    let snapshots: u64 = (1..=2).map(|i| counter(&c, i, "snapshots_sent_total")).sum();
    assert!(snapshots >= 1);
    c.propose(n(3), "after");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "after"))));
    c.check_applied_prefixes();
}

// Safe delivery means durable everywhere: a write acknowledged before every member crashes is
// still there after they all restart.
#[test]
fn acknowledged_writes_survive_a_whole_cluster_restart() {
    let mut c = formed(3);
    for k in 0..8 {
        c.propose(n(1 + k % 3), &format!("keep{k}"));
    }
    assert!(c.run_until(1000, |c| c.applied_commands(n(1)).len() == 8));
    let acknowledged = c.applied_commands(n(1));
    for i in 1..=3 {
        c.crash(n(i));
    }
    for i in 1..=3 {
        c.restart(n(i));
    }
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    c.propose(n(2), "next");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "next"))));
    for i in 1..=3 {
        assert_eq!(c.applied_commands(n(i))[..8], acknowledged[..], "node {i}");
    }
    // Ring ids are never reused across restarts.
    assert!(c.totem(n(1)).ring_id().unwrap().seq > 4);
    c.check_applied_prefixes();
}

// Requests queued at a member that ends up outside the primary component are refused; those
// already broadcast stay pending (they may still be delivered).
#[test]
fn queued_requests_are_refused_when_the_member_leaves_the_primary() {
    let mut c = formed(3);
    c.partition(&[&[1], &[2, 3]]);
    // Node 1 has not noticed yet: it still accepts, and queues until it holds a token.
    let queued = c.propose(n(1), "stranded");
    assert!(c.run_until(4000, |c| c.ring_of(&[1]).is_some()));
    assert!(c.node(n(1)).rejected.iter().any(|r| r.request == queued));
    c.heal();
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    c.run_ms(500);
    assert!(!c.is_applied(n(2), "stranded"));
}

// A ring of one member in a cluster of one is a primary component.
#[test]
fn a_single_member_cluster_serves() {
    let mut c = Cluster::new(1, TotemConfig::default());
    assert!(c.run_until(3000, |c| c.ring_of(&[1]).is_some()));
    assert!(c.totem(n(1)).is_primary());
    c.propose(n(1), "solo");
    assert!(c.run_until(200, |c| c.is_applied(n(1), "solo")));
    let read = c.read(n(1));
    assert!(c.run_until(200, |c| c.node(n(1)).reads.iter().any(|r| r.request == read)));
}

// A member far behind, with nothing compacted, is caught up in several batches.
#[test]
fn a_member_far_behind_is_caught_up_in_batches() {
    let mut c = formed(3);
    c.crash(n(3));
    assert!(c.run_until(4000, |c| c.ring_of(&[1, 2]).is_some()));
    for k in 0..2500 {
        c.propose(n(1 + k % 2), &format!("b{k}"));
    }
    assert!(c.run_until(20_000, |c| c.applied_commands(n(2)).len() == 2500));
    c.restart(n(3));
    assert!(c.run_until(5000, |c| c.ring_of(&[1, 2, 3]).is_some()));
    assert_eq!(c.applied_commands(n(3)).len(), 2500);
    let syncs: u64 = (1..=2).map(|i| counter(&c, i, "syncs_sent_total")).sum();
    assert!(syncs >= 3, "{syncs} batches");
    c.check_applied_prefixes();
}

// The lab's `leader-kill` on Totem: the representative dies under load (its token resting or
// in flight), the other two re-form and serve, and it rejoins after a restart.
#[test]
fn losing_the_representative_under_load_reforms_and_it_rejoins() {
    for (latency, jitter) in [(1, 0), (3, 2), (5, 4)] {
        representative_lost(latency, jitter);
    }
}

fn representative_lost(latency: u64, jitter: u64) {
    let mut c = formed(3);
    c.latency_ms = latency;
    c.latency_jitter_ms = jitter;
    for i in 0..20 {
        c.propose(n(2 + i % 2), &format!("load-{i}"));
        c.run_ms(2);
    }
    c.crash(n(1));
    for i in 0..20 {
        c.propose(n(2 + i % 2), &format!("during-{i}"));
        c.run_ms(1);
    }
    c.propose(n(2), "after");
    assert!(
        c.run_until(3000, |c| [2, 3].iter().all(|&i| c.is_applied(n(i), "after"))),
        "a write was applied by the survivors within 3 s"
    );
    c.restart(n(1));
    c.propose(n(3), "rejoined");
    assert!(
        c.run_until(3000, |c| (1..=3).all(|i| c.is_applied(n(i), "rejoined"))),
        "the restarted representative rejoined and applied a new write within 3 s"
    );
    c.check_applied_prefixes();
}
