//! The acceptor's rules (Paxos Made Simple §2.2, P1a and the phase 1/2 steps of §2.2).
//!
//! - On a prepare with a ballot above its promise, an acceptor promises it — for every slot at
//!   once, as Multi-Paxos does (§3) — and reports every record it holds from the requested
//!   start slot. The promise goes into the hard state of the same `Ready` as the Promise
//!   message; the driver makes it durable before sending, so a crash can never forget a promise
//!   that was answered.
//! - It ignores prepares with a ballot at or below its promise and accepts with a ballot below
//!   it, and tells the sender so with a Reject.
//! - On an accept it records (slot, ballot, value) in the log — again durable before the
//!   Accepted reply leaves. Slots are accepted in order, never past a hole, so the stored log
//!   stays contiguous.
//!
//! Two Multi-Paxos additions. An acceptor that heard from its leader within the minimum
//! timeout refuses prepares from anyone else (this is what a leader's lease rests on). And an
//! acceptor whose log was compacted past a prepare's start slot cannot report those records, so
//! it does not promise: it sends its snapshot instead, and the proposer must catch up first.

use crate::paxos::RoleState;
use crate::{Ballot, Message, Paxos, PlantedBug};
use conclave_core::{Entry, Membership, NodeId, Snapshot};

impl Paxos {
    pub(crate) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, start: u64) {
        self.observe_round(ballot.round);
        if ballot <= self.promised || self.is_loyal_against(from) {
            self.counters.prepares_rejected_total += 1;
            let reply = Message::Reject { ballot, promised: self.promised, leader: self.leader };
            self.send(from, reply);
            return;
        }
        if start < self.log.first_index() && self.snapshot.meta().is_some() {
            // The proposer lacks compacted slots: it gets the snapshot instead of a promise.
            // Without its data at hand (read back from the store first), no answer yet; the
            // proposer prepares again.
            if let Some(snapshot) = self.snapshot.for_sending() {
                let configs = self.configs.to_pairs();
                let reply =
                    Message::InstallSnapshot { ballot: Ballot::ZERO, tick: 0, snapshot, configs };
                self.send(from, reply);
            }
            return;
        }
        // Promising a higher ballot dooms our own leadership or candidacy at a lower one.
        let doomed = match &self.role {
            RoleState::Leader(l) => l.ballot < ballot,
            RoleState::Candidate(c) => c.ballot < ballot,
            RoleState::Follower => false,
        };
        if doomed {
            self.become_follower();
        }
        if self.leader != Some(from) {
            self.set_leader(None);
        }
        self.promised = ballot;
        if self.config.planted_bug != Some(PlantedBug::AnswerPrepareBeforePersisting) {
            self.hard_state_dirty = true;
        }
        // Give the proposer a full timeout to finish its phase 1 and show up as leader.
        self.reset_election_timer();
        let accepted = self.log.range(start, self.log.last_index());
        self.send(from, Message::Promise { ballot, commit: self.commit, accepted });
    }

    pub(crate) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        leader_commit: u64,
        entries: Vec<Entry>,
    ) {
        self.observe_round(ballot.round);
        if ballot < self.promised {
            // What the old leader says is chosen stays true; only its proposals are refused.
            self.learn_commit(ballot, leader_commit);
            self.reject_stale(from, ballot);
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.hard_state_dirty = true;
        }
        self.follow(from, ballot);
        let term = ballot.to_u64();
        // Chosen or compacted slots need no new vote: their value cannot change.
        let settled = self.commit.max(self.log.first_index() - 1);
        let first = entries.first().map_or(1, |e| e.index);
        let mut last = first - 1;
        for entry in entries {
            if entry.index != last + 1 || entry.term != term {
                break;
            }
            if entry.index > settled {
                if entry.index > self.log.last_index() + 1 {
                    // A hole: earlier slots have not arrived. Accepting past it would leave the
                    // stored log non-contiguous; the reply's log_last tells the leader where to
                    // resume.
                    break;
                }
                self.log.put(entry);
            }
            last += 1;
        }
        self.learn_commit(ballot, leader_commit);
        let reply = Message::Accepted {
            ballot,
            tick,
            first,
            last,
            commit: self.commit,
            log_last: self.log.last_index(),
            need_from: (self.commit < leader_commit).then_some(self.commit + 1),
        };
        self.send(from, reply);
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        leader_commit: u64,
    ) {
        self.observe_round(ballot.round);
        self.learn_commit(ballot, leader_commit);
        if ballot < self.promised {
            self.reject_stale(from, ballot);
            return;
        }
        self.follow(from, ballot);
        self.ack_leader(from, ballot, tick, leader_commit);
    }

    pub(crate) fn on_chosen(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        leader_commit: u64,
        entries: Vec<Entry>,
    ) {
        self.observe_round(ballot.round);
        self.learn_chosen(entries);
        self.learn_commit(ballot, leader_commit);
        if ballot < self.promised {
            self.reject_stale(from, ballot);
            return;
        }
        self.follow(from, ballot);
        self.ack_leader(from, ballot, tick, leader_commit);
    }

    pub(crate) fn on_install_snapshot(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        tick: u64,
        snapshot: Snapshot,
        configs: Vec<(u64, Membership)>,
    ) {
        let index = snapshot.meta.index;
        if index > self.commit {
            self.install_snapshot(snapshot, configs);
        }
        if ballot.is_zero() {
            // An answer to our prepare, not a leader's message.
            return;
        }
        self.observe_round(ballot.round);
        if ballot < self.promised {
            self.reject_stale(from, ballot);
            return;
        }
        self.follow(from, ballot);
        self.ack_leader(from, ballot, tick, index);
    }

    fn reject_stale(&mut self, to: NodeId, ballot: Ballot) {
        let reply = Message::Reject { ballot, promised: self.promised, leader: self.leader };
        self.send(to, reply);
    }

    /// Acknowledges a leader's message; `need_from` asks for chosen slots this learner could
    /// not learn from its own records.
    fn ack_leader(&mut self, to: NodeId, ballot: Ballot, tick: u64, leader_commit: u64) {
        let reply = Message::HeartbeatAck {
            ballot,
            tick,
            commit: self.commit,
            log_last: self.log.last_index(),
            need_from: (self.commit < leader_commit).then_some(self.commit + 1),
        };
        self.send(to, reply);
    }
}
