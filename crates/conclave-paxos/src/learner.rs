//! The learner's rules: finding out which slots are chosen, and catching up.
//!
//! Paxos Made Simple §2.3 lets the distinguished proposer tell learners what was chosen. Here
//! the leader's messages carry its commit index `c` and its ballot `b`: every slot up to `c` is
//! chosen, and the value chosen is the leader's. A learner whose record for such a slot was
//! accepted at `b` holds exactly that value — a proposer proposes one value per slot per ballot
//! — so it learns the slot without the value being sent again. For slots where its record is
//! missing or from another ballot it asks (`need_from`) and the leader sends the chosen values
//! (or its snapshot, when it compacted them).
//!
//! A learned value overwrites the acceptor's record for that slot. That is safe: once a value
//! is chosen, every proposal with a higher ballot carries it (§2.2, P2b), so reporting the
//! chosen value in a later promise can only lead a proposer to propose that same value.
//!
//! The commit index is contiguous: slots are handed to the state machine strictly in order.

use crate::Paxos;
use crate::paxos::RoleState;
use crate::{Ballot, leader_state::ReadWaiter};
use conclave_core::{Entry, EntryKind, Membership, Snapshot};

impl Paxos {
    /// Learns from a leader at `ballot` that slots up to `leader_commit` are chosen.
    pub(crate) fn learn_commit(&mut self, ballot: Ballot, leader_commit: u64) {
        let term = ballot.to_u64();
        let mut to = self.commit;
        while to < leader_commit {
            match self.log.get(to + 1) {
                Some(e) if e.term == term => to += 1,
                _ => break,
            }
        }
        self.advance_commit_to(to);
    }

    /// Learns chosen values (a leader's catch-up, or slots a promise reported as chosen).
    /// Entries must be contiguous; learning stops at the first hole after the commit index.
    pub(crate) fn learn_chosen(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.commit {
                continue;
            }
            if entry.index != self.commit + 1 || entry.index < self.log.first_index() {
                break;
            }
            let index = entry.index;
            let same_value = self
                .log
                .get(index)
                .is_some_and(|held| held.kind == entry.kind && held.data == entry.data);
            if !same_value {
                self.log.put(entry);
            }
            self.advance_commit_to(index);
        }
    }

    /// Marks every slot up to `to` chosen. Each must already hold its chosen value.
    pub(crate) fn advance_commit_to(&mut self, to: u64) {
        if to <= self.commit {
            return;
        }
        let alpha = self.config.max_inflight_slots;
        for slot in self.commit + 1..=to {
            let entry = self.log.get(slot).expect("a chosen slot is held in the log");
            // A malformed change is applied as a no-op by every replica alike.
            if entry.kind == EntryKind::Membership
                && let Ok(m) = postcard::from_bytes::<Membership>(&entry.data)
                && !m.voters.is_empty()
                && self.configs.insert(slot + alpha, m)
            {
                self.hard_state_dirty = true;
            }
        }
        self.commit = to;
        self.after_commit();
    }

    /// Replaces everything up to the snapshot's index with the snapshot. Records after it are
    /// kept: they are still this acceptor's votes. A store may drop the whole log when it
    /// installs a peer's snapshot (Raft needs that), so they are written again in the same
    /// `Ready`, right after the snapshot.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot, configs: Vec<(u64, Membership)>) {
        let index = snapshot.meta.index;
        debug_assert!(index > self.commit);
        self.log.compact_to(index);
        self.log.mark_dirty_from(index + 1);
        self.commit = index;
        self.handed = index;
        for (from_slot, membership) in configs {
            self.configs.insert(from_slot, membership);
        }
        self.configs.prune_below(index + 1);
        self.hard_state_dirty = true;
        self.snapshot.replace(snapshot.clone());
        self.out.snapshot = Some(snapshot);
        self.after_commit();
    }

    /// Leader bookkeeping once the commit index moved: settle slots in flight, serve reads
    /// bound to chosen slots, and step down if a reconfiguration removed this node.
    pub(crate) fn after_commit(&mut self) {
        let commit = self.commit;
        let RoleState::Leader(l) = &mut self.role else { return };
        l.inflight = l.inflight.split_off(&(commit + 1));
        l.recovered = l.recovered.split_off(&(commit + 1));
        if l.next_slot <= commit {
            l.next_slot = commit + 1;
        }
        let later = l.reads_by_slot.split_off(&(commit + 1));
        let servable = std::mem::replace(&mut l.reads_by_slot, later);
        for (slot, waiters) in servable {
            for w in waiters {
                self.serve_read(w, slot);
            }
        }
        if !self.configs.at(commit + 1).contains(self.id) {
            self.become_follower();
        }
    }

    pub(crate) fn serve_read(&mut self, waiter: ReadWaiter, index: u64) {
        match waiter {
            ReadWaiter::Local(request) => {
                self.out.reads.push(conclave_core::ReadState { request, index })
            }
            ReadWaiter::Remote(peer, request) => {
                self.send(peer, crate::Message::ReadIndexResp { request, index: Some(index) })
            }
        }
    }
}
