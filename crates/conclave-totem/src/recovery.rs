//! The recovery state (Totem §4.4): from the commit token's second pass until the new ring is
//! installed, then opened.
//!
//! Recovery runs on the new ring's token, in phases the token carries (see
//! [`RecoveryProgress`]):
//!
//! 1. **Exchange.** Members that come from the same old ring rebroadcast, on the new ring, the
//!    old-ring messages some of them may lack, so that all of them end with the same set. It is
//!    complete once the token has visited every member in a row with nothing left to send and
//!    `aru == seq`: then every member holds every recovery message.
//! 2. **Catch-up (primary component only).** Each member reports its log. The most up-to-date
//!    log (highest last term, then longest; Raft's rule, with rings as terms) is chosen; it
//!    holds every entry any primary component ever committed. Its owner sends every member with
//!    a different log the entries (or snapshot) it lacks.
//! 3. **Install.** Each member delivers the old ring's remaining messages, the transitional
//!    configuration and the new regular configuration (extended virtual synchrony). In a
//!    primary component it appends a no-op entry stamped with the new ring, after the chosen
//!    log, and commits what some member had already committed.
//! 4. **Open.** Once every member installed (and so durably holds the no-op), the no-op and
//!    the tail before it are committed, and regular messages flow.

use crate::delivery::{Configuration, ConfigurationKind, Delivered};
use crate::message::{CommitToken, Content, MemberInfo, OldMessage, RecoveryProgress, Token};
use crate::ring::Ring;
use crate::sync::choose_source;
use crate::totem::{Phase, Totem};
use conclave_core::{Entry, NodeId};
use std::collections::{BTreeMap, VecDeque};

/// A member's recovery state.
#[derive(Debug)]
pub(crate) struct Recovery {
    /// Every member's old-ring state, from the commit token.
    pub infos: BTreeMap<NodeId, MemberInfo>,
    /// Old-ring messages this member still has to rebroadcast.
    pub queue: VecDeque<OldMessage>,
    /// This member's log summary is on the token (its log is frozen from then on).
    pub reported: bool,
    /// This member's log now equals the chosen one.
    pub synced: bool,
    /// Where this member's log matches the chosen one after a partial catch-up, to report.
    pub progress: Option<u64>,
    /// When the source last sent each member a catch-up batch (in ticks).
    pub sync_sent: BTreeMap<NodeId, (u64, u64)>,
}

impl Totem {
    /// The commit token's second pass reached this member: it has everyone's old-ring state.
    pub(crate) fn enter_recovery(&mut self, ct: &CommitToken) {
        self.ring_seq_max = self.ring_seq_max.max(ct.ring.seq);
        let primary = self.is_primary_set(&ct.members);
        let queue = self.recovery_queue(ct);
        self.phase = Phase::Recovery(Recovery {
            infos: ct.infos.clone(),
            queue,
            reported: false,
            synced: false,
            progress: None,
            sync_sent: BTreeMap::new(),
        });
        self.ring = Some(Ring::new(ct.ring, ct.members.clone(), primary));
    }

    /// The old-ring messages this member must rebroadcast: those above the lowest aru of the
    /// members from its old ring. For each, the lowest-id member whose aru covers it sends it;
    /// one above every such aru is sent by every member that holds it.
    fn recovery_queue(&self, ct: &CommitToken) -> VecDeque<OldMessage> {
        let Some(old) = &self.old else {
            return VecDeque::new();
        };
        let group: Vec<(NodeId, &MemberInfo)> = ct
            .infos
            .iter()
            .filter(|(_, info)| info.old_ring == Some(old.id))
            .map(|(&m, info)| (m, info))
            .collect();
        let low = group.iter().map(|(_, i)| i.aru).min().unwrap_or(0);
        let high = group.iter().map(|(_, i)| i.high_seq).max().unwrap_or(0);
        let mut queue = VecDeque::new();
        for (seq, content) in old.buffer.range(low + 1, high) {
            let Content::Regular(payload) = content else {
                continue;
            };
            let responsible = group.iter().filter(|(_, i)| i.aru >= seq).map(|(m, _)| *m).min();
            if responsible.is_none_or(|r| r == self.id) {
                queue.push_back(OldMessage { ring: old.id, seq, payload: payload.clone() });
            }
        }
        queue
    }

    /// A recovery message arrived: it may carry an old-ring message this member lacks.
    pub(crate) fn take_recovered(&mut self, msg: &OldMessage) {
        if !matches!(self.phase, Phase::Recovery(_)) {
            return;
        }
        let Some(mut old) = self.old.take() else {
            return;
        };
        if old.id == msg.ring && old.buffer.insert(msg.seq, Content::Regular(msg.payload.clone())) {
            self.extend_log(&mut old);
        }
        self.old = Some(old);
    }

    /// Recovery's share of a token visit, after this member's sends and aru update.
    pub(crate) fn recovery_step(&mut self, ring: &mut Ring, t: &mut Token, sent_any: bool) {
        let me = self.id;
        let n = ring.members.len();
        let Phase::Recovery(rec) = &mut self.phase else {
            return;
        };
        let mut p = t.recovery.take().unwrap_or_default();
        let quiet_here = !sent_any && rec.queue.is_empty() && t.rtr.is_empty() && t.aru == t.seq;
        p.quiet = if p.quiet as usize >= n || quiet_here { p.quiet.saturating_add(1) } else { 0 };
        if (p.quiet as usize) < n {
            t.recovery = Some(p);
            return;
        }
        // Every member holds every recovery message: report this member's log, frozen now.
        if !rec.reported {
            rec.reported = true;
            self.log_ring = None;
            p.summaries.insert(me, self.log.summary(self.committed));
        }
        let synced_here = rec.synced;
        if let Some(progress) = rec.progress.take() {
            p.progress.insert(me, progress);
        }
        if p.summaries.len() == n {
            let (source, chosen) = choose_source(&p.summaries);
            let same = p.summaries[&me].up_to_date_key() == chosen.up_to_date_key();
            // (The length check only guards against a corrupt token: a synced log reaches it.)
            let reaches = self.log.last_index() >= chosen.last_index;
            if !ring.primary || ((same || synced_here) && reaches) {
                p.synced.insert(me);
            }
            if ring.primary && source == me {
                self.send_syncs(ring, &p, &chosen);
            }
        }
        if p.synced.len() == n && !p.installed.contains(&me) {
            self.install(ring, t, &p);
            p.installed.insert(me);
        }
        t.recovery = Some(p);
    }

    /// Delivers the configurations and the old ring's remaining messages, and in a primary
    /// component starts the new ring's part of the log.
    fn install(&mut self, ring: &mut Ring, t: &mut Token, p: &RecoveryProgress) {
        if ring.primary {
            let (_, chosen) = choose_source(&p.summaries);
            let noop_index = chosen.last_index + 1;
            let noop = Entry::noop(noop_index, ring.id.seq);
            self.log.append(noop.clone());
            self.out.push_entry(noop);
            ring.noop_index = noop_index;
            t.index = t.index.max(noop_index);
            // What some member already committed is committed everywhere.
            let committed = p.summaries.values().map(|s| s.committed).max().unwrap_or(0);
            self.commit_to(committed.min(chosen.last_index));
            self.log_ring = Some(ring.id);
        }
        ring.log_seq = ring.buffer.aru();
        self.deliver_old_ring(ring);
        self.deliveries.push(Delivered::Configuration(Configuration {
            kind: ConfigurationKind::Regular,
            ring: ring.id,
            members: ring.members.clone(),
            primary: ring.primary,
        }));
        self.reject_reads_in_flight();
        if !ring.primary {
            self.reject_pending();
        }
        self.accepting = Some(ring.primary);
        self.installed = Some(ring.id);
        self.counters.ring_changes += 1;
        self.phase = Phase::Operational;
    }

    /// Extended virtual synchrony (Totem §4.4): messages some member from the old ring
    /// delivered in the old regular configuration are delivered there by all of them; then the
    /// transitional configuration (the members that come from the old ring); then the rest of
    /// the old ring's messages, which every member of the transitional configuration now has.
    fn deliver_old_ring(&mut self, ring: &Ring) {
        let Some(mut old) = self.old.take() else {
            return;
        };
        let Phase::Recovery(rec) = &self.phase else {
            return;
        };
        let group: Vec<NodeId> =
            rec.infos.iter().filter(|(_, i)| i.old_ring == Some(old.id)).map(|(&m, _)| m).collect();
        let delivered_high = rec
            .infos
            .values()
            .filter(|i| i.old_ring == Some(old.id))
            .map(|i| i.high_delivered)
            .max()
            .unwrap_or(0);
        let high =
            rec.infos.values().filter(|i| i.old_ring == Some(old.id)).map(|i| i.high_seq).max();
        let remaining: Vec<(u64, Content)> = old
            .buffer
            .range(old.buffer.delivered + 1, high.unwrap_or(0))
            .map(|(s, c)| (s, c.clone()))
            .collect();
        let mut transitional = false;
        for (seq, content) in remaining {
            if seq > delivered_high && !transitional {
                self.deliver_transitional(ring, &group);
                transitional = true;
            }
            if let Content::Regular(payload) = content {
                self.record_delivery(old.id, seq, &payload);
            }
            old.buffer.delivered = seq;
        }
        if !transitional {
            self.deliver_transitional(ring, &group);
        }
        self.forget_ring(&old);
    }

    fn deliver_transitional(&mut self, ring: &Ring, group: &[NodeId]) {
        let primary = self.is_primary_set(group);
        self.deliveries.push(Delivered::Configuration(Configuration {
            kind: ConfigurationKind::Transitional,
            ring: ring.id,
            members: group.to_vec(),
            primary,
        }));
    }

    /// Every member installed the ring: commit the no-op and the tail before it, and let
    /// regular messages flow.
    pub(crate) fn open_ring(&mut self, ring: &mut Ring) {
        ring.open = true;
        if ring.primary {
            self.commit_to(ring.noop_index);
        }
    }
}
