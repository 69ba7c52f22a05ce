//! The ordering protocol: token passing, sequence numbers, retransmission, flow control,
//! agreed and safe delivery (Totem §3).

use crate::net::{Cluster, n};
use conclave_core::{EntryKind, Protocol};
use conclave_totem::{Body, Content, Delivery, TotemConfig, TotemMessage};
use std::collections::BTreeSet;

fn formed(size: u64, config: TotemConfig) -> Cluster {
    let mut c = Cluster::new(size, config);
    let all: Vec<u64> = (1..=size).collect();
    assert!(c.run_until(3000, |c| c.ring_of(&all).is_some()), "ring formed");
    c
}

/// Regular-message sequence numbers of new entries a member broadcast, in order.
fn entry_seqs_sent(c: &Cluster, from: u64) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (_, msg) in &c.node(n(from)).sent {
        if let TotemMessage::Mcast(m) = msg
            && matches!(&m.content, Content::Regular(p) if matches!(p.body, Body::Entries(_)))
            && seen.insert(m.seq)
        {
            out.push(m.seq);
        }
    }
    out
}

// Reference: Totem §3.1 (a ring forms and orders messages).
#[test]
fn three_members_form_a_ring_and_apply_a_write() {
    let mut c = formed(3, TotemConfig::default());
    c.propose(n(2), "a");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "a"))));
    c.check_applied_prefixes();
}

// Reference: Totem §3.2 (the token passes around the ring in a fixed order; its token_seq
// grows at every pass).
#[test]
fn token_passes_in_ring_order() {
    let mut c = formed(4, TotemConfig::default());
    c.record_sent = true;
    c.run_ms(200);
    for i in 1..=4u64 {
        let tokens: Vec<(u64, u64)> = c
            .node(n(i))
            .sent
            .iter()
            .filter_map(|(to, m)| match m {
                TotemMessage::Token(t) => Some((to.0, t.token_seq)),
                _ => None,
            })
            .collect();
        assert!(tokens.len() > 3, "node {i} passed the token: {tokens:?}");
        let next = i % 4 + 1;
        assert!(tokens.iter().all(|(to, _)| *to == next), "node {i} passes to {next}: {tokens:?}");
        assert!(tokens.windows(2).all(|w| w[1].1 > w[0].1), "token_seq grows: {tokens:?}");
    }
    assert!(c.totem(n(1)).counters().iter().any(|&(k, v)| k == "token_rotations_total" && v > 3));
}

// Reference: Totem §3.1 (the holder stamps each message with the token's next seq); the global
// index is contiguous and every member applies the same sequence.
#[test]
fn holders_stamp_consecutive_sequence_numbers() {
    let mut c = formed(3, TotemConfig::default());
    c.record_sent = true;
    for k in 0..30u64 {
        c.propose(n(k % 3 + 1), &format!("w{k}"));
        c.run_ms(k % 4);
    }
    assert!(c.run_until(2000, |c| (1..=3).all(|i| c.applied_commands(n(i)).len() == 30)));
    let mut seqs: Vec<u64> = (1..=3).flat_map(|i| entry_seqs_sent(&c, i)).collect();
    seqs.sort();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive seqs: {seqs:?}");
    let ring = c.totem(n(1)).ring_id().unwrap();
    let first = &c.node(n(1)).committed;
    assert!(first.windows(2).all(|w| w[1].index == w[0].index + 1));
    for e in first.iter().filter(|e| e.kind == EntryKind::Command) {
        assert_eq!(e.term, ring.seq, "entry term is the ring seq");
    }
    for i in 2..=3 {
        assert_eq!(&c.node(n(i)).committed, first, "node {i} committed the same entries");
    }
}

// Reference: Totem §3.3 (a member that misses a message requests it in the token's rtr; a
// holder that has it retransmits it).
#[test]
fn missing_messages_are_requested_and_retransmitted() {
    let mut c = formed(3, TotemConfig::default());
    c.record_sent = true;
    let mut dropped = None;
    c.set_filter(move |_, to, msg| match msg {
        TotemMessage::Mcast(m) if to == n(3) && dropped.is_none() => {
            dropped = Some(m.seq);
            false
        }
        _ => true,
    });
    c.propose(n(1), "x");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "x"))));
    let asked = c.node(n(3)).sent.iter().any(|(_, m)| match m {
        TotemMessage::Token(t) => !t.rtr.is_empty(),
        _ => false,
    });
    assert!(asked, "node 3 asked for the lost message");
    let retransmits: u64 = (1..=3)
        .map(|i| {
            c.totem(n(i)).counters().iter().find(|(k, _)| *k == "retransmits_total").unwrap().1
        })
        .sum();
    assert!(retransmits >= 1);
    c.check_applied_prefixes();
}

// Reference: Totem §3.5 (flow control: at most max_messages_per_visit per visit, at most
// window_size per rotation).
#[test]
fn flow_control_bounds_each_visit_and_rotation() {
    let config = TotemConfig::default();
    let (per_visit, window) = (config.max_messages_per_visit as u64, config.window_size as u64);
    let mut c = formed(3, config);
    c.record_sent = true;
    for k in 0..60 {
        for i in 1..=3 {
            c.propose(n(i), &format!("n{i}-{k}"));
        }
    }
    assert!(c.run_until(5000, |c| (1..=3).all(|i| c.applied_commands(n(i)).len() == 180)));
    for i in 1..=3u64 {
        // Between two token passes by the same member lie its broadcasts of one visit.
        let mut in_visit = BTreeSet::new();
        let mut token_seqs = Vec::new();
        for (_, msg) in &c.node(n(i)).sent {
            match msg {
                TotemMessage::Mcast(m) if matches!(m.content, Content::Regular(_)) => {
                    in_visit.insert(m.seq);
                }
                TotemMessage::Token(t) => {
                    assert!(in_visit.len() as u64 <= per_visit, "node {i} sent {in_visit:?}");
                    in_visit.clear();
                    token_seqs.push(t.seq);
                }
                _ => {}
            }
        }
        // From one visit of this member to its next, the whole ring stamped at most a window.
        for w in token_seqs.windows(2) {
            assert!(w[1] - w[0] <= window, "rotation stamped {} > {window}", w[1] - w[0]);
        }
    }
    c.check_applied_prefixes();
}

fn blocked_mcasts_to_3(c: &mut Cluster) {
    c.set_filter(|_, to, msg| !(to == n(3) && matches!(msg, TotemMessage::Mcast(_))));
}

// Reference: Totem §3.2 (agreed delivery: every earlier message has arrived here).
#[test]
fn agreed_delivery_does_not_wait_for_every_member() {
    let mut c = formed(3, TotemConfig { delivery: Delivery::Agreed, ..TotemConfig::default() });
    blocked_mcasts_to_3(&mut c);
    c.propose(n(1), "fast");
    assert!(c.run_until(500, |c| c.is_applied(n(1), "fast") && c.is_applied(n(2), "fast")));
    assert!(!c.is_applied(n(3), "fast"));
    assert!(!c.totem(n(1)).guarantees().linearizable_writes, "agreed is honest about it");
    c.clear_filter();
    assert!(c.run_until(500, |c| c.is_applied(n(3), "fast")));
    c.check_applied_prefixes();
}

// Reference: Totem §3.2 (safe delivery: only once every member of the ring has the message,
// known from the token's aru on two successive visits).
#[test]
fn safe_delivery_waits_until_every_member_has_it() {
    let mut c = formed(3, TotemConfig::default());
    blocked_mcasts_to_3(&mut c);
    c.propose(n(1), "careful");
    c.run_ms(500);
    for i in 1..=3 {
        assert!(!c.is_applied(n(i), "careful"), "node {i} applied before node 3 had it");
    }
    assert!(c.totem(n(1)).token_aru() < c.totem(n(1)).last_index() + 10);
    c.clear_filter();
    assert!(c.run_until(500, |c| (1..=3).all(|i| c.is_applied(n(i), "careful"))));
    assert!(c.totem(n(1)).guarantees().linearizable_writes);
}

// A linearizable read is answered once its marker is delivered in safe order, at the index of
// the last entry ordered before it.
#[test]
fn reads_are_ordered_after_earlier_writes() {
    let mut c = formed(3, TotemConfig::default());
    c.propose(n(1), "before");
    assert!(c.run_until(1000, |c| c.is_applied(n(1), "before")));
    let index = c.node(n(1)).applied.index;
    let read = c.read(n(3));
    assert!(c.run_until(1000, |c| c.node(n(3)).reads.iter().any(|r| r.request == read)));
    let answer = c.node(n(3)).reads.iter().find(|r| r.request == read).unwrap();
    assert!(answer.index >= index, "read at {} misses the write at {index}", answer.index);
}

// A lossy network still delivers every message to everyone, in the same order.
#[test]
fn lossy_network_converges() {
    let mut c = formed(5, TotemConfig::default());
    c.drop_rate = 0.05;
    for k in 0..40u64 {
        c.propose(n(k % 5 + 1), &format!("l{k}"));
        c.run_ms(7);
    }
    c.run_ms(3000);
    c.drop_rate = 0.0;
    assert!(c.run_until(10_000, |c| {
        let want = c.applied_commands(n(1));
        (2..=5).all(|i| c.applied_commands(n(i)) == want) && c.ring_of(&[1, 2, 3, 4, 5]).is_some()
    }));
    c.check_applied_prefixes();
}

// The same seed gives the same run.
#[test]
fn runs_are_deterministic() {
    let run = || {
        let mut c = Cluster::with_seed(3, TotemConfig::default(), 7);
        c.drop_rate = 0.1;
        for k in 0..20u64 {
            c.propose(n(k % 3 + 1), &format!("d{k}"));
            c.run_ms(13);
        }
        c.run_ms(2000);
        (1..=3).map(|i| (c.applied_commands(n(i)), c.totem(n(i)).counters())).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

// The representative holds the token of an idle ring (Corosync's token hold) so that it does
// not spin; a member with a request asks it to pass the token on at once, so the first write
// after a quiet spell does not wait out the hold. (Virtual time: the net's latency is 1 ms.)
#[test]
fn a_request_elsewhere_wakes_a_held_token() {
    let config = TotemConfig { token_hold_ms: 200, ..TotemConfig::default() };
    let mut c = formed(3, config);
    c.run_ms(500);
    c.record_sent = true;
    let start = c.now_ms;
    c.propose(n(3), "x");
    assert!(c.run_until(1000, |c| c.is_applied(n(3), "x")));
    let waited = c.now_ms - start;
    assert!(waited < 50, "the write waited {waited} ms for the held token");
    let wakes = c
        .node(n(3))
        .sent
        .iter()
        .filter(|(to, m)| *to == n(1) && matches!(m, TotemMessage::Wake(_)));
    assert_eq!(wakes.count(), 1, "one wake to the representative");
    c.check_applied_prefixes();
}

// The representative lets the token of an idle ring rest only once every member has delivered
// everything; requests at the other members still fetch it at once, and every member still
// delivers everything.
#[test]
fn writes_anywhere_do_not_wait_for_a_resting_token() {
    let config = TotemConfig { token_hold_ms: 200, ..TotemConfig::default() };
    let mut c = formed(3, config);
    c.latency_jitter_ms = 1;
    c.run_ms(500);
    for k in 0..30u64 {
        let start = c.now_ms;
        let command = format!("w{k}");
        let origin = [1, 1, 2, 3, 1][k as usize % 5];
        c.propose(n(origin), &command);
        assert!(c.run_until(1000, |c| c.is_applied(n(origin), &command)));
        let waited = c.now_ms - start;
        assert!(waited < 50, "write {k} at node {origin} waited {waited} ms");
        c.run_ms(k % 4);
    }
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.applied_commands(n(i)).len() == 30)));
    c.check_applied_prefixes();
}

// A read is served once its marker is delivered in safe order at its origin, which learns that
// from the token. If the representative let the token rest as soon as it had delivered, a read
// at another member would wait out the hold; it must rest only after the rotations in which
// every member delivers.
#[test]
fn reads_anywhere_do_not_wait_for_a_resting_token() {
    let config = TotemConfig { token_hold_ms: 200, ..TotemConfig::default() };
    let mut c = formed(3, config);
    c.run_ms(500);
    for k in 0..30u64 {
        let origin = n(1 + k % 3);
        let start = c.now_ms;
        let request = c.read(origin);
        assert!(c.run_until(1000, |c| c.node(origin).reads.iter().any(|r| r.request == request)));
        let waited = c.now_ms - start;
        assert!(waited < 50, "read {k} at {origin:?} waited {waited} ms");
        c.run_ms(30 + k % 7);
    }
}
