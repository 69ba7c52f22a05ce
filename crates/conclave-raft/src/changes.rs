//! Operations beyond the `Protocol` trait: single-server membership changes (thesis §4.1) and
//! leadership transfer (thesis §3.10).

use crate::membership_log;
use crate::{Raft, RaftMessage};
use conclave_core::{ConsensusError, Entry, EntryKind, Membership, NodeId, RequestId};

impl Raft {
    /// Asks the leader to change the membership to `next`, which must add or remove exactly
    /// one voter (a single-server change, thesis §4.1). The change takes effect on each replica
    /// as soon as its entry is appended; it completes when a committed entry of kind
    /// [`EntryKind::Membership`] whose data decodes to `next` appears in `Ready::committed`.
    ///
    /// Refused through `Ready::rejected` under `request`: on a follower
    /// ([`ConsensusError::NotLeader`]), while another change or a transfer is in progress or
    /// before the leader has committed an entry of its term ([`ConsensusError::Unavailable`],
    /// retryable), and for a change of more than one voter or to no voters at all
    /// ([`ConsensusError::Unsupported`]). Proposing the current membership again is accepted
    /// and appends an entry that changes nothing.
    pub fn propose_membership(&mut self, request: RequestId, next: Membership) {
        let Some(lead) = &self.lead else {
            return self.reject(request, ConsensusError::NotLeader { leader: self.leader });
        };
        if let Some(transferee) = lead.transferee {
            let leader = Some(transferee);
            return self.reject(request, ConsensusError::NotLeader { leader });
        }
        let unsupported = |what: String| ConsensusError::Unsupported { protocol: "raft", what };
        if next.voters.is_empty() {
            return self.reject(request, unsupported("a membership with no voters".into()));
        }
        let changed = self.memberships.current().voters.symmetric_difference(&next.voters).count();
        if changed > 1 {
            let what = format!(
                "changing {changed} voters at once; add or remove one voter per change \
                 (single-server membership change)"
            );
            return self.reject(request, unsupported(what));
        }
        // One change at a time: the next may only start once the last one committed.
        if self.memberships.current_index() > self.commit {
            let why = "a membership change is still in progress".to_string();
            return self.reject(request, ConsensusError::Unavailable(why));
        }
        // A new leader must first commit an entry of its own term, or a change it appends
        // could conflict with an uncommitted change of a previous leader (the single-server
        // change bug Ongaro reported in 2015).
        if self.log.term_at(self.commit) != Some(self.term) {
            let why = "the leader has not yet committed an entry of its term".to_string();
            return self.reject(request, ConsensusError::Unavailable(why));
        }
        let entry = Entry {
            index: self.log.last_index() + 1,
            term: self.term,
            kind: EntryKind::Membership,
            data: membership_log::encode(&next),
        };
        self.append_as_leader(entry);
    }

    /// Hands leadership to voter `to` (thesis §3.10): new proposals are refused while the
    /// transfer runs, `to` is brought up to date, then told to campaign at once with TimeoutNow.
    /// The transfer is abandoned if it has not finished within the minimum election timeout.
    /// Refused ([`ConsensusError::NotLeader`]) unless this replica leads, and
    /// ([`ConsensusError::Unavailable`]) for a node that is not a voter; `Ok` with nothing more
    /// to do when `to` is this replica or already the transferee.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ConsensusError> {
        let last_index = self.log.last_index();
        let Some(lead) = &mut self.lead else {
            return Err(ConsensusError::NotLeader { leader: self.leader });
        };
        if to == self.id {
            return Ok(());
        }
        if !self.memberships.current().contains(to) {
            return Err(ConsensusError::Unavailable(format!("node {to} is not a voter")));
        }
        if lead.transferee == Some(to) {
            return Ok(());
        }
        lead.transferee = Some(to);
        lead.transfer_started = self.now;
        // The transferee will win an election that ignores leases, so this leader can never
        // again be sure nobody else leads in its term.
        lead.reads.revoke_lease();
        self.counters.transfers += 1;
        let caught_up = lead.progress.get(&to).is_some_and(|p| p.match_index == last_index);
        if caught_up {
            self.send(to, RaftMessage::TimeoutNow { term: self.term });
        } else {
            self.send_appends(to, true);
        }
        Ok(())
    }
}
