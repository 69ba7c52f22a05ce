//! Client writes, peers' winning writes, and the apply sequence they share.
//!
//! A client's command is applied here at once: it is planned into per-key writes
//! ([`crate::command`]), each stamped by the HLC, held in the map, appended to the log with its
//! first stamp in `term`, and handed out as committed (or held for a write quorum). A peer's
//! write that wins last-writer-wins is appended the same way as a plain put or delete whose
//! proposal header names the writer and request 0, so nobody here waits on it.

use crate::apply_log::Hold;
use crate::command::{self, Plan};
use crate::durable::Image;
use crate::gossip::Gossip;
use crate::hlc::{Hlc, Stamp};
use crate::message::Update;
use crate::store::Merge;
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{ConsensusError, RequestId, Snapshot};

impl Gossip {
    pub(crate) fn on_propose(&mut self, request: RequestId, data: Bytes) {
        let plan = match Proposal::decode(&data) {
            Some(proposal) => command::plan(&proposal.command, &self.store),
            // No header: the driver applies it as a no-op; nothing to replicate.
            None => Plan::LocalOnly,
        };
        let writes = match plan {
            Plan::Unsupported(what) => {
                self.reject(request, ConsensusError::Unsupported { protocol: "gossip", what });
                return;
            }
            Plan::LocalOnly => Vec::new(),
            Plan::Writes(writes) => writes,
        };
        if writes.is_empty() {
            let entry = self.log.append(self.clock.now().pack(), data, None);
            self.out.entries.push(entry);
            self.after_event();
            return;
        }
        let now_ms = self.physical_ms();
        let first = self.clock.local_events(now_ms, writes.len() as u64);
        let mut last = first;
        for (i, w) in writes.into_iter().enumerate() {
            let stamp = Stamp::new(first.advance(i as u64), self.id);
            self.store.set(w.key, w.value, stamp, now_ms);
            last = stamp.hlc;
        }
        self.convergence.wrote(last, self.ticks);
        let hold = (self.config.write_quorum > 0).then(|| Hold {
            request,
            hlc: last,
            deadline_tick: self.ticks + self.config.ticks(self.config.write_quorum_timeout_ms),
        });
        let entry = self.log.append(first.pack(), data, hold);
        self.out.entries.push(entry);
        let allowance = self.flow.available();
        self.publish(allowance);
        self.after_event();
    }

    /// Merges one write from a peer; a winner is appended to the log. A value refused by a
    /// collected-through watermark is answered with a tombstone at the watermark, pushed into
    /// `repairs` for the sender, so a peer that missed the delete drops its stale copy too.
    pub(crate) fn merge_update(&mut self, update: &Update, repairs: &mut Vec<Update>) -> bool {
        if update.key.is_empty() {
            // No client can write the empty key (the store refuses it): not a real write.
            return false;
        }
        let now_ms = self.physical_ms();
        match self.store.merge(update, now_ms) {
            Merge::Applied => {
                self.clock.witness(update.stamp.hlc);
                self.stats.updates_applied += 1;
                let header = Proposal {
                    origin: update.stamp.node,
                    request: RequestId(0),
                    command: command::encode_write(&update.key, update.value.as_ref()),
                };
                let entry = self.log.append(update.stamp.hlc.pack(), header.encode(), None);
                self.out.entries.push(entry);
                true
            }
            Merge::Stale => false,
            Merge::Refused { watermark } => {
                self.stats.updates_refused += 1;
                if update.value.is_some() {
                    repairs.push(Update { key: update.key.clone(), value: None, stamp: watermark });
                }
                false
            }
        }
    }

    /// Publishes up to `allowance` own writes not yet in this replica's digest.
    pub(crate) fn publish(&mut self, allowance: usize) {
        if allowance == 0 {
            return;
        }
        let after = self.have.get(self.id);
        let mut published = 0;
        let mut last = None;
        for (hlc, _) in
            self.store.origin_range(self.id, after, Hlc::new(u64::MAX, u16::MAX)).take(allowance)
        {
            published += 1;
            last = Some(hlc);
        }
        if let Some(last) = last {
            self.have.raise(self.id, last);
            self.flow.spend(published);
        }
    }

    /// The store took a snapshot, so the log may be compacted up to it; the map's stamps are
    /// not in the store's snapshot, so an image of the map goes into the log first, after the
    /// compaction point.
    pub(crate) fn on_snapshot_taken(&mut self, snapshot: Snapshot) {
        let image = Image {
            have: self.have.clone(),
            entries: self.store.map().keys().filter_map(|k| self.store.update(k)).collect(),
        };
        let term = self.clock.now().pack();
        let entry = self.log.append_with(|index| image.to_entry(index, term));
        self.out.entries.push(entry);
        self.out.compact_to = Some(snapshot.meta.index.min(self.log.next_index() - 2));
        self.after_event();
    }

    /// Releases what the log may hand out, after any event that could have changed it: a new
    /// entry, an acknowledgement, a deadline.
    pub(crate) fn after_event(&mut self) {
        if self.log.is_holding() {
            let quorum = self.config.write_quorum;
            let timeout_ms = self.config.write_quorum_timeout_ms;
            let acked = &self.acked;
            let me = self.id;
            let timed_out = self.log.release(quorum, self.ticks, timeout_ms, |hlc| {
                acked.values().filter(|v| v.get(me) >= hlc).count()
            });
            for (request, error) in timed_out {
                self.stats.quorum_timeouts += 1;
                self.reject(request, error);
            }
        }
        if self.convergence.is_waiting() && self.members.live_count() > 0 {
            let empty = Hlc::ZERO;
            let acked_by_all = self
                .members
                .live()
                .map(|p| self.acked.get(&p).map_or(empty, |v| v.get(self.id)))
                .min()
                .unwrap_or(empty);
            self.convergence.acknowledged(acked_by_all, self.ticks);
        }
    }
}
