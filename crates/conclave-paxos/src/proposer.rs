//! The proposer's rules: phase 1 once per leadership, then phase 2 per slot.
//!
//! A member whose failure detector suspects the leader picks a ballot above every ballot it has
//! seen and sends Prepare(ballot, commit + 1) — one phase 1 for every slot from there on
//! (Paxos Made Simple §3). It answers its own prepare last: only once a majority minus itself
//! promised does it promise to itself, so a candidate that cannot win never raises its own
//! promise and keeps accepting from a leader that is still alive.
//!
//! With a majority of promises the candidate is the leader. It first adopts slots some
//! acceptor reported as chosen. For every later slot it must propose the value of the highest
//! ballot any promise reported (§2.2, P2c); slots below the highest reported one with no value
//! get a no-op, so the log has no gaps; after that come new commands. A slot is proposed only
//! once a majority of the acceptors governing it promised, and only within α slots of the
//! commit index (the pipelining window, which also fixes each slot's configuration).

use crate::leader_state::{InFlight, LeaderState, Pending};
use crate::paxos::{Campaign, PromiseData, RoleState, count_in};
use crate::{Ballot, Message, Paxos, PlantedBug};
use bytes::Bytes;
use conclave_core::{Entry, EntryKind, Envelope, NodeId};
use std::collections::{BTreeMap, BTreeSet};

impl Paxos {
    /// Starts phase 1 with a fresh ballot.
    pub(crate) fn start_phase1(&mut self) {
        let round = self.max_seen_round.max(self.promised.round).max(self.last_round) + 1;
        // Persisted with the prepares, so that a restarted node never reuses the ballot.
        self.last_round = round;
        self.max_seen_round = round;
        self.hard_state_dirty = true;
        let ballot = Ballot::new(round, self.id);
        self.counters.phase1_total += 1;
        if self.is_leader() {
            self.become_follower();
        }
        let start = self.commit + 1;
        self.role = RoleState::Candidate(Campaign { ballot, start, promises: BTreeMap::new() });
        // The leader this node followed stays its leader until this campaign wins, or until
        // this node promises another proposer: a candidate has not promised its ballot to
        // itself, so it still accepts from that leader, and its callers' requests keep going
        // there. A false suspicion (a leader slowed by a loaded machine, which the other
        // members still hear) then fails no request, as with Raft's pre-vote (thesis §9.6).
        self.reset_election_timer();
        for peer in self.configs.members_from(start) {
            if peer != self.id {
                self.send(peer, Message::Prepare { ballot, start });
            }
        }
        self.check_campaign();
    }

    pub(crate) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: u64,
        accepted: Vec<Entry>,
    ) {
        match &mut self.role {
            RoleState::Candidate(c) if c.ballot == ballot => {
                c.promises.insert(from, PromiseData { commit, accepted });
                self.check_campaign();
            }
            RoleState::Leader(l) if l.ballot == ballot => {
                self.absorb_late_promise(from, accepted);
            }
            _ => {}
        }
    }

    /// Becomes leader once a majority of the acceptors governing the start slot promised.
    fn check_campaign(&mut self) {
        let RoleState::Candidate(c) = &self.role else { return };
        let config = self.configs.at(c.start);
        if !config.contains(self.id) {
            self.become_follower();
            return;
        }
        let others: BTreeSet<NodeId> = c.promises.keys().copied().collect();
        if count_in(config, &others) + 1 < config.quorum() {
            return;
        }
        if self.promised >= c.ballot {
            // We promised someone else a higher ballot meanwhile: this campaign is lost.
            self.become_follower();
            return;
        }
        let RoleState::Candidate(mut campaign) =
            std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            unreachable!("checked above")
        };
        self.promised = campaign.ballot;
        self.hard_state_dirty = true;
        let own = PromiseData {
            commit: self.commit,
            accepted: self.log.range(campaign.start, self.log.last_index()),
        };
        campaign.promises.insert(self.id, own);
        self.become_leader(campaign);
    }

    fn become_leader(&mut self, campaign: Campaign) {
        let Campaign { ballot, start, promises } = campaign;
        let ignore_reports =
            self.config.planted_bug == Some(PlantedBug::IgnoreAcceptedValuesInPromises);
        if !ignore_reports {
            // Slots an acceptor knows to be chosen (its records up to its commit index).
            let mut chosen: BTreeMap<u64, Entry> = BTreeMap::new();
            for p in promises.values() {
                for e in p.accepted.iter().filter(|e| e.index <= p.commit) {
                    chosen.entry(e.index).or_insert_with(|| e.clone());
                }
            }
            self.learn_chosen(chosen.into_values().collect());
        }
        // For every later slot, the value accepted at the highest ballot (P2c).
        let mut recovered: BTreeMap<u64, Entry> = BTreeMap::new();
        if !ignore_reports {
            for e in promises.values().flat_map(|p| p.accepted.iter()) {
                if e.index > self.commit && recovered.get(&e.index).is_none_or(|r| r.term < e.term)
                {
                    recovered.insert(e.index, e.clone());
                }
            }
        }
        let mut leader = LeaderState::new(ballot, self.now, self.commit + 1);
        leader.recovery_end = recovered.keys().next_back().copied().unwrap_or(0).max(self.commit);
        leader.recovered = recovered;
        leader.promisers = promises.keys().copied().collect();
        leader.prepared = self.configs.members_from(start);
        leader.prepared.extend(leader.promisers.iter().copied());
        self.role = RoleState::Leader(Box::new(leader));
        self.set_leader(Some(self.id));
        self.election_elapsed = 0;
        self.heard_elapsed = 0;
        self.broadcast_heartbeat();
        self.drive_leader();
    }

    /// A promise that arrived after this node became leader (a slow acceptor, or a member added
    /// by a reconfiguration that was asked later). Its records count for slots not yet proposed.
    fn absorb_late_promise(&mut self, from: NodeId, accepted: Vec<Entry>) {
        let ignore_reports =
            self.config.planted_bug == Some(PlantedBug::IgnoreAcceptedValuesInPromises);
        let RoleState::Leader(l) = &mut self.role else { return };
        l.promisers.insert(from);
        if !ignore_reports {
            for e in accepted.into_iter().filter(|e| e.index >= l.next_slot) {
                l.recovery_end = l.recovery_end.max(e.index);
                if l.recovered.get(&e.index).is_none_or(|r| r.term < e.term) {
                    l.recovered.insert(e.index, e);
                }
            }
        }
        self.drive_leader();
    }

    /// Proposes in as many slots as the window allows and settles what a quorum accepted,
    /// until neither moves (a lone acceptor chooses at once).
    pub(crate) fn drive_leader(&mut self) {
        loop {
            self.assign_slots();
            if !self.advance_leader_commit() {
                break;
            }
        }
    }

    /// Proposes values in the next slots: recovered values, no-ops for gaps, then commands.
    fn assign_slots(&mut self) {
        let window_end = self.commit + self.config.max_inflight_slots;
        loop {
            let RoleState::Leader(l) = &mut self.role else { return };
            let slot = l.next_slot;
            if slot > window_end {
                return;
            }
            let config = self.configs.at(slot);
            if count_in(config, &l.promisers) < config.quorum() {
                // Phase 1 is not done for this slot's acceptors (a reconfiguration added some).
                let start = self.commit + 1;
                for peer in config.voters.iter().filter(|v| !l.prepared.contains(v)) {
                    let msg = Message::Prepare { ballot: l.ballot, start };
                    self.out.messages.push(Envelope { to: *peer, msg });
                }
                l.prepared.extend(config.voters.iter().copied());
                return;
            }
            let (kind, data, request) = if let Some(e) = l.recovered.remove(&slot) {
                (e.kind, e.data, None)
            } else if slot <= l.recovery_end {
                (EntryKind::Noop, Bytes::new(), None)
            } else if let Some(Pending { kind, data, request }) = l.pending.pop_front() {
                (kind, data, request)
            } else if !l.reads_waiting.is_empty() || self.configs.has_change_after(slot) {
                // A read marker, or filler that moves a chosen reconfiguration into force.
                (EntryKind::Noop, Bytes::new(), None)
            } else {
                return;
            };
            let ballot = l.ballot;
            if self.promised != ballot {
                // The leader is an acceptor too; it promised a higher ballot, so it may not
                // accept (or propose) at its own any more.
                self.become_follower();
                return;
            }
            let entry = Entry { index: slot, term: ballot.to_u64(), kind, data };
            self.log.put(entry.clone());
            // The leader's own vote counts once its record is durable (`advance`), not here:
            // its Accepts may leave before its own write reaches the disk.
            let proposed_tick = self.now;
            l.inflight.insert(slot, InFlight { acks: BTreeSet::new(), proposed_tick, request });
            l.unsent.push(entry);
            // Only a slot past everything recovered can mark a read: a recovered slot may lie
            // below another one that was chosen (and applied somewhere) before the read came.
            if !l.reads_waiting.is_empty() && slot > l.recovery_end {
                let waiting = std::mem::take(&mut l.reads_waiting);
                l.reads_by_slot.insert(slot, waiting);
            }
            l.next_slot += 1;
        }
    }

    /// Marks chosen every slot in flight that a majority of its acceptors accepted. Returns
    /// whether the commit index moved.
    ///
    /// This node's own acceptance counts only for slots whose record is durable: its Accepts
    /// leave while it writes the same records (`eager_messages`), so a slot may be accepted by
    /// peers before it is stored here, and a crash before the sync would lose this vote.
    fn advance_leader_commit(&mut self) -> bool {
        let RoleState::Leader(l) = &self.role else { return false };
        let own_durable = self.log.durable_index();
        let mut to = self.commit;
        while let Some(slot) = l.inflight.get(&(to + 1)) {
            let config = self.configs.at(to + 1);
            let own = usize::from(to < own_durable && config.contains(self.id));
            if count_in(config, &slot.acks) + own < config.quorum() {
                break;
            }
            to += 1;
        }
        if to == self.commit {
            return false;
        }
        self.advance_commit_to(to);
        true
    }

    /// Sends the slots proposed since the last `ready()` as Accept batches to every member.
    ///
    /// The batches travel while this leader writes the same records itself (Raft's §10.2.1
    /// applied to phase 2): an Accept claims nothing about the leader's own storage, and the
    /// leader counts its own vote only once durable. Its promise of the ballot is another
    /// matter: it counted itself among the promisers of phase 1, so until that promise is on
    /// disk a crash could let it accept a lower ballot in a slot this ballot was chosen in. In
    /// the `Ready` that persists the promise, the Accepts wait for the sync.
    ///
    /// When nothing new is proposed but the commit index moved, a heartbeat carries it at once,
    /// so learners (and the callers waiting on them) need not wait for the heartbeat timer.
    pub(crate) fn flush_unsent(&mut self) {
        let RoleState::Leader(l) = &mut self.role else { return };
        let eager = self.durable_promised == l.ballot;
        let ballot = l.ballot;
        if l.unsent.is_empty() {
            if self.commit > l.commit_sent {
                l.commit_sent = self.commit;
                let msg = Message::Heartbeat { ballot, tick: self.now, commit: self.commit };
                for peer in self.configs.members_from(self.commit + 1) {
                    if peer != self.id {
                        self.out.eager_messages.push(Envelope { to: peer, msg: msg.clone() });
                    }
                }
            }
            return;
        }
        let unsent = std::mem::take(&mut l.unsent);
        l.commit_sent = self.commit;
        let out = if eager { &mut self.out.eager_messages } else { &mut self.out.messages };
        for peer in self.configs.members_from(self.commit + 1) {
            if peer == self.id {
                continue;
            }
            for batch in unsent.chunks(self.config.max_batch_entries) {
                let msg = Message::Accept {
                    ballot,
                    tick: self.now,
                    commit: self.commit,
                    entries: batch.to_vec(),
                };
                out.push(Envelope { to: peer, msg });
            }
        }
    }
}
