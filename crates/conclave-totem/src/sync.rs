//! The primary component's catch-up during recovery: choosing the log every member adopts, and
//! sending members what they lack of it.
//!
//! This is what makes Totem's deliveries a single global sequence across rings. A ring that is
//! a primary component treats itself like a new Raft term: its most up-to-date log (highest
//! last term, then longest; terms are ring sequence numbers) holds every entry any earlier
//! primary component committed, because an entry is committed only once every member of that
//! ring holds it durably, and any two primary components share a member. Every member adopts
//! that log, then a no-op stamped with the new ring (so that logs of this ring outrank those of
//! any ring that did not get this far, as Raft's §5.4.2 no-op does).

use crate::TotemMessage;
use crate::message::{LogSummary, RecoveryProgress, Sync};
use crate::ring::Ring;
use crate::totem::{Phase, Totem};
use conclave_core::NodeId;
use std::collections::BTreeMap;

/// The member whose log the new primary component adopts, and that log's summary: the highest
/// (last term, last index); the lowest id among equals.
pub(crate) fn choose_source(summaries: &BTreeMap<NodeId, LogSummary>) -> (NodeId, LogSummary) {
    let mut best: Option<(NodeId, LogSummary)> = None;
    for (&member, summary) in summaries {
        if best.is_none_or(|(_, b)| summary.up_to_date_key() > b.up_to_date_key()) {
            best = Some((member, *summary));
        }
    }
    best.expect("a summary from every member")
}

/// Most entries, and about the most bytes of entry data, in one catch-up message: a member
/// far behind is caught up in several, one per token visit of the source.
const SYNC_BATCH_ENTRIES: u64 = 1024;
const SYNC_BATCH_BYTES: usize = 1024 * 1024;

impl Totem {
    /// The source sends every member whose log differs the next batch of the chosen log after
    /// what that member has (its committed index, or where the previous batches got it), or a
    /// snapshot and what follows it if that part was compacted. A batch not acknowledged
    /// through the token within a token retransmission timeout is sent again.
    pub(crate) fn send_syncs(&mut self, ring: &Ring, p: &RecoveryProgress, chosen: &LogSummary) {
        let now = self.now;
        for (&member, summary) in &p.summaries {
            if member == self.id
                || p.synced.contains(&member)
                || summary.up_to_date_key() == chosen.up_to_date_key()
            {
                continue;
            }
            let have = p.progress.get(&member).copied().unwrap_or(0).max(summary.committed);
            let Phase::Recovery(rec) = &mut self.phase else {
                return;
            };
            if let Some(&(at, sent_have)) = rec.sync_sent.get(&member)
                && sent_have == have
                && now < at + self.ticks.token_retransmit
            {
                continue;
            }
            let from = have + 1;
            let snapshot = if self.snapshot.meta().is_some() && from <= self.log.snapshot_index() {
                // Its data is read back from the store first; the next attempt sends it.
                match self.snapshot.for_sending() {
                    Some(snapshot) => Some(snapshot),
                    None => continue,
                }
            } else {
                None
            };
            rec.sync_sent.insert(member, (now, have));
            let first = snapshot.as_ref().map_or(from, |s| s.meta.index + 1);
            let last = chosen.last_index.min(first + SYNC_BATCH_ENTRIES - 1);
            let mut entries = self.log.slice(first, last);
            let mut bytes = 0;
            if let Some(cut) = entries.iter().position(|e| {
                bytes += e.size_hint();
                bytes > SYNC_BATCH_BYTES
            }) {
                entries.truncate(cut.max(1));
            }
            if snapshot.is_some() {
                self.counters.snapshots_sent += 1;
            }
            self.counters.syncs_sent += 1;
            let sync = Sync { ring: ring.id, snapshot, entries, end: chosen.last_index };
            self.out.send(member, TotemMessage::Sync(sync));
        }
    }

    /// A member that needed it receives a batch of the chosen log.
    pub(crate) fn on_sync(&mut self, sync: Sync) {
        let Phase::Recovery(rec) = &self.phase else {
            return;
        };
        let for_this_ring = self.ring.as_ref().is_some_and(|r| r.id == sync.ring);
        if !for_this_ring || !rec.reported || rec.synced {
            return;
        }
        if let Some(snapshot) = sync.snapshot
            && snapshot.meta.index > self.committed
        {
            // The snapshot replaces the state machine and the whole log; anything queued for
            // storage or for applying in this batch is covered by it.
            self.log.restore(&snapshot.meta);
            self.out.entries.clear();
            self.out.committed.clear();
            self.committed = snapshot.meta.index;
            self.applied = self.applied.max(snapshot.meta.index);
            self.snapshot.replace(snapshot.clone());
            self.out.snapshot = Some(snapshot);
        }
        let mut reached = None;
        for entry in sync.entries {
            if entry.index <= self.log.snapshot_index().max(self.committed) {
                continue;
            }
            if entry.index > self.log.last_index() + 1 {
                // It does not join this log (a batch overtook another): wait for a resend.
                return;
            }
            reached = Some(entry.index);
            self.log.append(entry.clone());
            self.out.push_entry(entry);
        }
        let done = match reached {
            Some(index) => index >= sync.end,
            None => self.committed >= sync.end,
        };
        if let Phase::Recovery(rec) = &mut self.phase {
            if done {
                rec.synced = true;
            } else if let Some(index) = reached {
                rec.progress = Some(index);
            }
        }
    }
}
