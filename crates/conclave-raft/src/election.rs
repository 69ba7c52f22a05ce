//! Leader election (§5.2) with the election restriction (§5.4.1), pre-vote (thesis §9.6) and
//! the refusal of votes while a leader is known to be alive (thesis §4.2.3).

use crate::raft::State;
use crate::{Raft, RaftMessage};
use conclave_core::NodeId;

impl Raft {
    /// Starts a campaign: a pre-vote round first when configured, unless the leader asked this
    /// replica to take over (`transfer`, §3.10), which goes straight to a real election.
    pub(crate) fn campaign(&mut self, transfer: bool) {
        if self.config.pre_vote && !transfer {
            self.become_pre_candidate();
            self.counters.pre_votes += 1;
            self.request_votes(true, false);
        } else {
            self.start_election(transfer);
        }
    }

    fn start_election(&mut self, transfer: bool) {
        self.become_candidate();
        self.counters.elections += 1;
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        // A pre-candidate asks about the term it would campaign in, without entering it.
        let term = if pre_vote { self.term + 1 } else { self.term };
        self.votes.insert(self.id, true);
        let msg = RaftMessage::RequestVote {
            term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
            transfer,
        };
        let peers: Vec<NodeId> =
            self.memberships.current().voters.iter().copied().filter(|&v| v != self.id).collect();
        for peer in peers {
            self.send(peer, msg.clone());
        }
        // A lone voter has its majority already.
        self.tally();
    }

    /// Wins on a majority of grants, gives up on a majority of refusals.
    fn tally(&mut self) {
        let membership = self.memberships.current();
        let count = |granted: bool| {
            membership.voters.iter().filter(|v| self.votes.get(v) == Some(&granted)).count()
        };
        let (granted, refused) = (count(true), count(false));
        let (voters, quorum) = (membership.voters.len(), membership.quorum());
        if granted >= quorum {
            match self.state {
                State::PreCandidate => self.start_election(false),
                State::Candidate => {
                    self.counters.elections_won += 1;
                    self.become_leader();
                }
                State::Follower | State::Leader => {}
            }
        } else if voters - refused < quorum {
            self.become_follower(self.term, None);
        }
    }

    pub(crate) fn handle_request_vote(
        &mut self,
        from: NodeId,
        term: u64,
        (last_log_index, last_log_term): (u64, u64),
        pre_vote: bool,
        transfer: bool,
    ) {
        let refuse = |raft: &mut Raft| {
            let reply =
                RaftMessage::RequestVoteResponse { term: raft.term, granted: false, pre_vote };
            raft.send(from, reply);
        };
        // A replica that hears from a live leader does not help anyone replace it (thesis
        // §4.2.3, §9.6): it refuses pre-votes and ignores votes, without even adopting the
        // newer term, so that a server that was removed or cut off cannot depose a working
        // leader. A transfer asked by the leader itself is exempt.
        if !transfer && self.in_lease() {
            if pre_vote {
                refuse(self);
            }
            return;
        }
        if term < self.term {
            return refuse(self);
        }
        if !pre_vote && term > self.term {
            let (was_follower, elapsed) = (self.state == State::Follower, self.election_elapsed);
            self.become_follower(term, None);
            // Adopting a newer term is neither hearing from a leader nor granting a vote, so a
            // follower's election timer keeps running (§5.2): a candidate that cannot win must
            // not hold back the ones that can.
            if was_follower {
                self.election_elapsed = elapsed;
            }
        }
        let can_vote = self.voted_for == Some(from)
            || (self.voted_for.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        if !can_vote || !self.log.is_up_to_date(last_log_index, last_log_term) {
            return refuse(self);
        }
        if pre_vote {
            // Nothing changes here; the grant carries the term asked about.
            self.send(from, RaftMessage::RequestVoteResponse { term, granted: true, pre_vote });
        } else {
            // The vote is in the hard state of the same Ready as this response, so it is
            // durable before the response leaves.
            self.voted_for = Some(from);
            self.election_elapsed = 0;
            let reply =
                RaftMessage::RequestVoteResponse { term: self.term, granted: true, pre_vote };
            self.send(from, reply);
        }
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        from: NodeId,
        term: u64,
        granted: bool,
        pre_vote: bool,
    ) {
        if term > self.term && !(pre_vote && granted) {
            return self.become_follower(term, None);
        }
        let current = match (self.state, pre_vote) {
            (State::PreCandidate, true) => {
                if granted {
                    term == self.term + 1
                } else {
                    term == self.term
                }
            }
            (State::Candidate, false) => term == self.term,
            _ => false,
        };
        if current {
            self.votes.insert(from, granted);
            self.tally();
        }
    }

    /// The leader asks this replica to take over (§3.10).
    pub(crate) fn handle_timeout_now(&mut self) {
        if self.state == State::Follower && self.promotable() {
            self.campaign(true);
        }
    }
}
