//! The membership protocol's gather and commit states (Totem §4.2–4.3) and merge detection.
//!
//! A member gathers when the token is lost, when it starts, and when it hears a join or a
//! merge announcement from outside its ring. Once the gathering members agree on the member
//! set, the representative (lowest id) sends a commit token around the new ring twice: the
//! first pass collects each member's old-ring state, the second tells every member all of it
//! and moves it to recovery. Back at the representative, the commit token becomes the new
//! ring's first regular token.

use crate::gather::Gather;
use crate::message::{CommitToken, Join, MemberInfo, MergeDetect, Token};
use crate::totem::{CommitWait, Phase, Totem};
use crate::{RingId, TotemMessage};
use conclave_core::NodeId;
use std::collections::BTreeMap;

/// How much a new ring's sequence number exceeds the highest seen (as Corosync does).
const RING_SEQ_STEP: u64 = 4;

impl Totem {
    /// Starts gathering, with `extra` as prospective members besides this member's old ring.
    pub(crate) fn enter_gather(&mut self, extra: impl IntoIterator<Item = NodeId>) {
        let mut proc_set: Vec<NodeId> = extra.into_iter().collect();
        match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Operational => {
                // The installed ring becomes the old ring that recovery works from.
                if let Some(ring) = self.ring.take() {
                    self.old = Some(ring);
                }
                self.reject_reads_in_flight();
            }
            Phase::Recovery(_) => {
                // The ring being formed failed: recovery will start over from the old ring.
                if let Some(ring) = self.ring.take() {
                    proc_set.extend(ring.members.iter().copied());
                    self.forget_ring(&ring);
                }
            }
            Phase::Commit(_) | Phase::Gather(_) => {}
        }
        if let Some(old) = &mut self.old {
            old.frozen = false;
            old.forwarded = None;
            old.held = None;
            proc_set.extend(old.members.iter().copied());
        }
        proc_set.retain(|m| self.configured.contains(*m));
        self.phase = Phase::Gather(Gather::new(self.id, proc_set));
        self.counters.gathers += 1;
        self.send_join();
        self.check_consensus();
    }

    /// Sends this member's join to every other configured member (foreign rings included, so
    /// that they merge).
    pub(crate) fn send_join(&mut self) {
        let Phase::Gather(g) = &mut self.phase else {
            return;
        };
        // A little jitter keeps members from resending in lockstep.
        g.join_elapsed = self.rng.below(2);
        let join = g.join(self.ring_seq_max);
        let others: Vec<NodeId> =
            self.configured.voters.iter().copied().filter(|&m| m != self.id).collect();
        for to in others {
            self.out.send(to, TotemMessage::Join(join.clone()));
        }
    }

    pub(crate) fn on_join(&mut self, from: NodeId, join: Join) {
        let seen = self.join_seq_seen.entry(from).or_insert(0);
        if join.ring_seq < *seen {
            // Sent during an earlier gather of the sender, and delayed.
            return;
        }
        *seen = join.ring_seq;
        // A join sent before the current ring formed is stale (Totem §4.2); a join from a member
        // that is gathering anew, or from a node outside the ring, starts a gather here too.
        let stale = match &self.phase {
            Phase::Gather(_) => false,
            Phase::Commit(c) => join.ring_seq < c.ring.seq,
            Phase::Recovery(_) | Phase::Operational => {
                let ring = self.ring.as_ref().expect("a ring while recovering or operational");
                join.ring_seq < ring.id.seq
                    && (ring.members.contains(&from) || !matches!(self.phase, Phase::Operational))
            }
        };
        // A member that has declared this one failed cannot hear it: gathering with it would
        // only fail it again. It will hear of this ring through merge detection.
        let failed_me = join.fail_set.contains(&self.id) && !matches!(self.phase, Phase::Gather(_));
        if stale || failed_me {
            return;
        }
        self.ring_seq_max = self.ring_seq_max.max(join.ring_seq);
        if !matches!(self.phase, Phase::Gather(_)) {
            self.enter_gather([from]);
        }
        let Phase::Gather(g) = &mut self.phase else {
            unreachable!("gathering after enter_gather");
        };
        if g.on_join(self.id, from, join) {
            self.send_join();
        }
        self.check_consensus();
    }

    pub(crate) fn on_merge_detect(&mut self, from: NodeId, md: MergeDetect) {
        self.ring_seq_max = self.ring_seq_max.max(md.ring.seq);
        if let (Phase::Operational, Some(ring)) = (&self.phase, &self.ring)
            && ring.id != md.ring
            && !ring.members.contains(&from)
            && md.heard.contains(&self.id)
        {
            self.enter_gather([from]);
        }
    }

    /// The gather and commit timers.
    pub(crate) fn tick_membership(&mut self) {
        let me = self.id;
        match &mut self.phase {
            Phase::Gather(g) => {
                g.join_elapsed += 1;
                g.consensus_elapsed += 1;
                let resend = g.join_elapsed >= self.ticks.join_timeout;
                let mut changed = false;
                if g.consensus_elapsed >= self.ticks.consensus_timeout {
                    changed = g.on_consensus_timeout(me);
                }
                if resend || changed {
                    self.send_join();
                }
                self.check_consensus();
            }
            Phase::Commit(c) => {
                c.elapsed += 1;
                if c.elapsed >= self.ticks.token_timeout {
                    self.enter_gather([]);
                }
            }
            Phase::Recovery(_) | Phase::Operational => {}
        }
    }

    /// On consensus, the representative creates the commit token (Totem §4.3).
    fn check_consensus(&mut self) {
        let Phase::Gather(g) = &self.phase else {
            return;
        };
        if !g.consensus(self.id) || g.representative() != Some(self.id) {
            return;
        }
        let members: Vec<NodeId> = g.members().into_iter().collect();
        self.ring_seq_max += RING_SEQ_STEP;
        let ring = RingId { seq: self.ring_seq_max, rep: self.id };
        let infos = BTreeMap::from([(self.id, self.member_info())]);
        let ct = CommitToken { ring, members, infos, pass: 1 };
        self.phase = Phase::Commit(CommitWait { ring, elapsed: 0 });
        if ct.members.len() == 1 {
            self.first_pass_done(ct);
        } else {
            self.forward_commit_token(ct);
        }
    }

    /// What this member brings from its old ring; the old ring stops taking network messages
    /// from now on, so that what recovery exchanges is exactly what was reported.
    fn member_info(&mut self) -> MemberInfo {
        match &mut self.old {
            Some(old) => {
                old.frozen = true;
                MemberInfo {
                    old_ring: Some(old.id),
                    aru: old.buffer.aru(),
                    high_seq: old.buffer.high_received().max(old.buffer.aru()),
                    high_delivered: old.buffer.delivered,
                }
            }
            None => MemberInfo { old_ring: None, aru: 0, high_seq: 0, high_delivered: 0 },
        }
    }

    pub(crate) fn on_commit_token(&mut self, ct: CommitToken) {
        let me = self.id;
        if !ct.members.contains(&me) {
            return;
        }
        match &self.phase {
            Phase::Gather(g) if ct.pass == 1 => {
                let agreed = g.members().into_iter().eq(ct.members.iter().copied());
                if !agreed || ct.infos.contains_key(&me) || ct.ring.seq <= self.installed_seq() {
                    return;
                }
                self.ring_seq_max = self.ring_seq_max.max(ct.ring.seq);
                let mut ct = ct;
                let info = self.member_info();
                ct.infos.insert(me, info);
                self.phase = Phase::Commit(CommitWait { ring: ct.ring, elapsed: 0 });
                self.forward_commit_token(ct);
            }
            Phase::Commit(c) if c.ring == ct.ring => {
                if ct.pass == 2 && ct.ring.rep != me {
                    self.enter_recovery(&ct);
                    self.forward_commit_token(ct);
                } else if ct.pass == 1 && ct.ring.rep == me && ct.infos.len() == ct.members.len() {
                    self.first_pass_done(ct);
                }
            }
            Phase::Recovery(_) if ct.pass == 2 && ct.ring.rep == me => {
                let waiting = self
                    .ring
                    .as_ref()
                    .is_some_and(|r| r.id == ct.ring && r.last_token_seq.is_none());
                if waiting {
                    self.start_ring(ct.ring);
                }
            }
            _ => {}
        }
    }

    fn installed_seq(&self) -> u64 {
        self.installed.map_or(0, |r| r.seq)
    }

    /// Sends the commit token to the next member of the new ring.
    fn forward_commit_token(&mut self, ct: CommitToken) {
        let pos = ct.members.iter().position(|&m| m == self.id).expect("a member of its ring");
        let next = ct.members[(pos + 1) % ct.members.len()];
        self.out.send(next, TotemMessage::Commit(ct));
    }

    /// The commit token is back at the representative after its first pass: everyone's
    /// old-ring state is known, and the second pass tells everyone.
    fn first_pass_done(&mut self, mut ct: CommitToken) {
        ct.pass = 2;
        self.enter_recovery(&ct);
        if ct.members.len() == 1 {
            self.start_ring(ct.ring);
        } else {
            self.forward_commit_token(ct);
        }
    }

    /// The representative creates the new ring's first regular token and processes it.
    fn start_ring(&mut self, ring: RingId) {
        let token = Token {
            ring,
            token_seq: 0,
            seq: 0,
            aru: 0,
            aru_id: None,
            rtr: Vec::new(),
            fcc: 0,
            backlog: 0,
            index: 0,
            recovery: Some(Default::default()),
        };
        if let Some(r) = self.ring.as_mut() {
            r.last_token_seq = Some(0);
            r.since_token = 0;
        }
        self.visit(token, false);
    }
}
