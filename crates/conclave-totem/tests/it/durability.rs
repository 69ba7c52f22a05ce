//! What may leave before a member's writes are durable, and what a crash may lose: the token's
//! aru only acknowledges synced entries, regular messages and such tokens go out eagerly, and
//! only the committed index is written lazily.

use crate::net::{Cluster, n};
use conclave_core::Protocol;
use conclave_totem::{Body, Content, HardState, TotemConfig, TotemMessage};
use std::collections::BTreeMap;

fn formed(size: u64) -> Cluster {
    let mut c = Cluster::new(size, TotemConfig::default());
    c.latency_jitter_ms = 1;
    let all: Vec<u64> = (1..=size).collect();
    assert!(c.run_until(3000, |c| c.ring_of(&all).is_some()), "ring formed");
    // Let the token open the ring everywhere: its first visit at each member still waits for
    // the sync.
    c.run_ms(50);
    c
}

/// Writes `count` commands spread over the members and waits until every member applied them.
fn write_spread(c: &mut Cluster, size: u64, prefix: &str, count: u64) {
    for k in 0..count {
        c.propose(n(k % size + 1), &format!("{prefix}{k}"));
        c.run_ms(k % 3);
    }
    let want =
        |c: &Cluster, i: u64| (0..count).all(|k| c.is_applied(n(i), &format!("{prefix}{k}")));
    assert!(c.run_until(5000, |c| (1..=size).all(|i| want(c, i))), "every write applied");
}

// Reference: Totem §3.2 (safe delivery: the token's aru covers a message only once every member
// has it), with "has" meaning "holds durably". A token that leaves before its Ready's sync must
// not acknowledge an entry that Ready persists: were the member to crash before the sync, the
// entry could be delivered as safe, and acknowledged, while missing from its disk.
#[test]
fn an_eager_token_never_acknowledges_an_entry_of_its_own_ready() {
    let mut c = formed(3);
    c.record_sent = true;
    write_spread(&mut c, 3, "w", 120);
    // Where each entry was stamped: (ring, seq) by global index.
    let mut stamped = BTreeMap::new();
    for i in 1..=3 {
        for (_, msg) in &c.node(n(i)).sent {
            if let TotemMessage::Mcast(m) = msg
                && let Content::Regular(p) = &m.content
                && let Body::Entries(entries) = &p.body
            {
                for e in entries {
                    stamped.insert(e.index, (m.ring, m.seq));
                }
            }
        }
    }
    let (mut eager, mut exercised) = (0, 0);
    for i in 1..=3 {
        for ready in &c.node(n(i)).readies {
            eager += ready.eager_tokens.len();
            for token in &ready.eager_tokens {
                for index in &ready.entries {
                    let Some(&(ring, seq)) = stamped.get(index) else { continue };
                    if ring != token.ring {
                        continue;
                    }
                    exercised += 1;
                    assert!(
                        token.aru < seq,
                        "node {i}: an eager token acknowledges seq {seq} (aru {}) whose entry \
                         {index} is written in the same Ready",
                        token.aru
                    );
                }
            }
        }
    }
    assert!(eager > 0, "tokens left before the sync");
    assert!(exercised > 0, "some Ready persisted an entry and let the token leave early");
    c.check_applied_prefixes();
}

// Regular messages leave before the sender's sync; tokens do while the ring is open.
#[test]
fn regular_messages_and_the_open_rings_token_leave_before_the_sync() {
    let mut c = formed(3);
    c.record_sent = true;
    c.propose(n(2), "x");
    assert!(c.run_until(1000, |c| (1..=3).all(|i| c.is_applied(n(i), "x"))));
    let node = c.node(n(2));
    assert!(node.readies.iter().any(|r| !r.eager_tokens.is_empty() && !r.entries.is_empty()));
    // Every Mcast it sent went out eagerly: the net records eager messages first, so a Ready
    // with an entry lists its Mcasts before anything that waited for the sync.
    assert!(node.sent.iter().any(|(_, m)| matches!(m, TotemMessage::Mcast(_))));
}

// Durability before acknowledgement (DESIGN principle 5), as the Ready contract refines it: a
// hard state is written lazily only when nothing but the committed index changed. The ring
// sequence number and the installed ring must be synced before the joins, commit tokens and
// tokens that depend on them.
#[test]
fn only_the_committed_index_is_written_lazily() {
    let mut c = formed(3);
    c.record_sent = true;
    write_spread(&mut c, 3, "a", 20);
    c.crash(n(3));
    assert!(c.run_until(4000, |c| c.ring_of(&[1, 2]).is_some()), "the survivors re-form");
    c.restart(n(3));
    assert!(c.run_until(4000, |c| c.ring_of(&[1, 2, 3]).is_some()), "all three again");
    write_spread(&mut c, 3, "b", 20);
    let (mut lazy, mut synced_ring_changes) = (0, 0);
    for i in 1..=3 {
        let mut last: Option<HardState> = None;
        for ready in &c.node(n(i)).readies {
            let Some(hs) = ready.hard_state else { continue };
            if let Some(prev) = last {
                let ring_changed = hs.ring_seq_max != prev.ring_seq_max || hs.ring != prev.ring;
                if ready.hard_state_lazy {
                    lazy += 1;
                    assert!(!ring_changed, "node {i}: {prev:?} -> {hs:?} written lazily");
                } else if ring_changed {
                    synced_ring_changes += 1;
                }
            }
            last = Some(hs);
        }
    }
    assert!(lazy > 0, "committed-index changes were written lazily");
    assert!(synced_ring_changes > 0, "ring changes were synced");
}

// A crash loses the lazily written committed index; the restarted member commits and applies
// the same entries again from its log once its next primary component opens.
#[test]
fn a_member_that_lost_its_committed_index_applies_the_same_writes_again() {
    let mut c = formed(3);
    write_spread(&mut c, 3, "w", 30);
    let before = c.totem(n(3)).delivered_index();
    assert!(
        c.node(n(3)).store.unsynced_hard_state.is_some(),
        "the last committed index was written without a sync"
    );
    c.crash(n(3));
    let durable = HardState::decode(c.node(n(3)).store.hard_state.as_ref().unwrap()).unwrap();
    assert!(durable.committed < before, "the crash lost part of the committed index");
    c.restart(n(3));
    assert!(c.run_until(5000, |c| c.totem(n(3)).delivered_index() >= before), "re-committed");
    for k in 0..30 {
        assert!(c.is_applied(n(3), &format!("w{k}")), "w{k} applied again");
    }
    assert_eq!(c.totem(n(3)).status().commit_index, c.totem(n(3)).delivered_index());
    c.check_applied_prefixes();
}
