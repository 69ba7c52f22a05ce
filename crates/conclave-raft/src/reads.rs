//! Linearizable reads (thesis §6.4): ReadIndex on the leader, forwarding from followers, the
//! optional leader lease (§6.4.1), and forwarded proposals.
//!
//! The leader answers a read with an index; the replica that took the read serves it once its
//! state machine has applied through that index.

use crate::read_queue::ReadOrigin;
use crate::{PlantedBug, Raft, RaftMessage};
use bytes::Bytes;
use conclave_core::{ConsensusError, Entry, NodeId, ReadState, RequestId};

impl Raft {
    pub(crate) fn read_inner(&mut self, request: RequestId) {
        if self.lead.is_some() {
            return self.leader_read(ReadOrigin::Local(request));
        }
        match (self.state, self.leader) {
            (crate::raft::State::Follower, Some(_)) => self.forwarded_reads.queue(request),
            _ => self.reject(request, ConsensusError::NotLeader { leader: None }),
        }
    }

    /// Sends the follower's queued reads to the leader as one batch (see `forwarded_reads`),
    /// and refuses the reads of batches that will get no answer: sent to a replica that is no
    /// longer the leader, or unanswered for longer than a leader may be silent.
    pub(crate) fn flush_follower_reads(&mut self) {
        let leader = match (self.state, self.leader) {
            (crate::raft::State::Follower, Some(leader)) => Some(leader),
            _ => None,
        };
        if self.forwarded_reads.in_flight() {
            let patience = 2 * self.ticks.election_max;
            let abandoned = self.forwarded_reads.abandon(leader, self.now.saturating_sub(patience));
            for request in abandoned {
                self.reject(request, ConsensusError::NotLeader { leader });
            }
        }
        if !self.forwarded_reads.has_queued() {
            return;
        }
        match leader {
            Some(leader) => {
                if let Some(request) = self.forwarded_reads.send(leader, self.now) {
                    self.send(leader, RaftMessage::ReadIndex { request, term: self.term });
                }
            }
            None => {
                for request in self.forwarded_reads.take_queued() {
                    self.reject(request, ConsensusError::NotLeader { leader: None });
                }
            }
        }
    }

    /// ReadIndex on the leader: note the commit index now, confirm leadership with a round that
    /// starts after this moment, then answer.
    pub(crate) fn leader_read(&mut self, origin: ReadOrigin) {
        if self.config.planted_bug == Some(PlantedBug::ReadFromDeposedLeader) {
            // The bug: no confirmation at all.
            return self.answer_read(origin, self.commit);
        }
        let (now, lease_ticks) = (self.now, self.ticks.lease);
        let committed_in_term = self.log.term_at(self.commit) == Some(self.term);
        let membership = self.memberships.current();
        let sole_voter = membership.voters.len() == 1 && membership.contains(self.id);
        let Some(lead) = &mut self.lead else { return self.refuse_read(origin) };
        if !committed_in_term {
            // Until an entry of its own term commits, the leader's commit index may lag what
            // earlier leaders committed.
            lead.reads.waiting_commit.push(origin);
            return;
        }
        if sole_voter {
            return self.answer_read(origin, self.commit);
        }
        if self.config.lease_read && lead.reads.lease_valid(now, lease_ticks) {
            self.counters.lease_reads += 1;
            return self.answer_read(origin, self.commit);
        }
        lead.reads.push(self.commit, origin);
    }

    /// Answers the reads whose round a majority (counting the leader) has acknowledged.
    pub(crate) fn check_read_acks(&mut self) {
        let Some(lead) = &mut self.lead else { return };
        let membership = self.memberships.current();
        let mut rounds: Vec<u64> = membership
            .voters
            .iter()
            .map(|v| {
                if *v == self.id {
                    lead.reads.round()
                } else {
                    lead.progress.get(v).map_or(0, |p| p.acked_round)
                }
            })
            .collect();
        if rounds.is_empty() {
            return;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let acknowledged = rounds[membership.quorum() - 1];
        for read in lead.reads.acknowledged(acknowledged) {
            self.answer_read(read.origin, read.index);
        }
    }

    fn answer_read(&mut self, origin: ReadOrigin, index: u64) {
        match origin {
            ReadOrigin::Local(request) => self.out.reads.push(ReadState { request, index }),
            ReadOrigin::Forwarded { from, request } => {
                let leader = Some(self.id);
                self.send(
                    from,
                    RaftMessage::ReadIndexResponse { request, index: Some(index), leader },
                )
            }
        }
    }

    pub(crate) fn refuse_read(&mut self, origin: ReadOrigin) {
        let leader = self.leader_hint().filter(|&l| l != self.id);
        match origin {
            ReadOrigin::Local(request) => {
                self.reject(request, ConsensusError::NotLeader { leader })
            }
            ReadOrigin::Forwarded { from, request } => {
                self.send(from, RaftMessage::ReadIndexResponse { request, index: None, leader })
            }
        }
    }

    /// A follower's batch of reads. With three voters (or two), the batch itself can confirm
    /// the leadership a ReadIndex round would: the follower sent it in this leader's term, so
    /// until then it had voted for no later leader, and this leader, answering, has not either
    /// — and any later leader needs one of the two votes. So no later leader had been chosen
    /// when the reads began (they reached the follower before it sent the batch), every write
    /// acknowledged before then is within this leader's commit index, and the batch is
    /// answered at once, two message hops sooner than after a heartbeat round.
    pub(crate) fn handle_forwarded_read(&mut self, from: NodeId, request: RequestId, term: u64) {
        let origin = ReadOrigin::Forwarded { from, request };
        if self.lead.is_none() {
            return self.refuse_read(origin);
        }
        let membership = self.memberships.current();
        let confirms = term == self.term
            && membership.quorum() <= 2
            && membership.contains(from)
            && membership.contains(self.id)
            && self.config.planted_bug != Some(PlantedBug::ReadFromDeposedLeader);
        let committed_in_term = self.log.term_at(self.commit) == Some(self.term);
        if confirms && committed_in_term {
            self.counters.reads_confirmed_by_follower += 1;
            return self.answer_read(origin, self.commit);
        }
        self.leader_read(origin);
    }

    pub(crate) fn handle_read_index_response(
        &mut self,
        request: RequestId,
        index: Option<u64>,
        leader: Option<NodeId>,
    ) {
        for request in self.forwarded_reads.answered(request) {
            match index {
                Some(index) => self.out.reads.push(ReadState { request, index }),
                None => self.reject(request, ConsensusError::NotLeader { leader }),
            }
        }
    }

    /// Leadership is lost: every read still waiting is refused.
    pub(crate) fn abandon_leadership(&mut self, mut lead: crate::leadership::Leadership) {
        for origin in lead.reads.drain() {
            self.refuse_read(origin);
        }
    }

    pub(crate) fn propose_inner(&mut self, request: RequestId, command: Bytes) {
        if let Some(lead) = &self.lead {
            if let Some(transferee) = lead.transferee {
                // New entries would keep the transferee from catching up (§3.10).
                let leader = Some(transferee);
                return self.reject(request, ConsensusError::NotLeader { leader });
            }
            let entry = Entry::command(self.log.last_index() + 1, self.term, command);
            return self.append_as_leader(entry);
        }
        match (self.state, self.leader) {
            (crate::raft::State::Follower, Some(leader)) => {
                self.counters.proposals_forwarded += 1;
                self.send(leader, RaftMessage::Propose { request, command });
            }
            _ => self.reject(request, ConsensusError::NotLeader { leader: None }),
        }
    }

    pub(crate) fn handle_forwarded_proposal(
        &mut self,
        from: NodeId,
        request: RequestId,
        command: Bytes,
    ) {
        match &self.lead {
            Some(lead) if lead.transferee.is_none() => {
                // A duplicated message must not order the command twice.
                if !self.forwarded_seen.insert(from, request) {
                    return;
                }
                let entry = Entry::command(self.log.last_index() + 1, self.term, command);
                self.append_as_leader(entry);
            }
            // Not (or no longer) the leader: drop it. Refusing would tell the client "not
            // applied", which is false if this is a duplicate of a proposal this replica
            // already appended while it led; dropped, the client times out and treats the
            // write as possibly applied, which is always true.
            _ => {}
        }
    }
}
