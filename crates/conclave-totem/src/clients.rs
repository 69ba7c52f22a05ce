//! Proposals and linearizable reads: queued at the member that received them and broadcast
//! when it holds the token (any member may originate; there is no leader).
//!
//! A member accepts requests while the last ring it installed is a primary component (and,
//! before its first ring, while it waits to find out). When it installs a ring that is not,
//! requests it never broadcast are refused; a proposal already broadcast stays pending, since
//! recovery may still deliver it in a later primary component (its client times out, meaning
//! "possibly applied"). Read markers in flight are refused whenever the ring changes: a read
//! has no effect, so refusing is always safe.

use crate::totem::{Pending, Phase, Totem};
use bytes::Bytes;
use conclave_core::{Rejection, RequestId};

impl Totem {
    fn accepts_requests(&self) -> bool {
        match (&self.phase, &self.ring) {
            (Phase::Operational, Some(ring)) => ring.primary,
            _ => self.accepting != Some(false),
        }
    }

    pub(crate) fn propose_command(&mut self, id: RequestId, command: Bytes) {
        if !self.accepts_requests() {
            self.reject(id);
            return;
        }
        self.pending.push_back(Pending::Propose(id, command));
        self.release_held();
    }

    pub(crate) fn read_marker(&mut self, id: RequestId) {
        if !self.accepts_requests() {
            self.reject(id);
            return;
        }
        self.pending.push_back(Pending::Read(id));
        self.release_held();
    }

    fn reject(&mut self, request: RequestId) {
        self.counters.rejected += 1;
        let error = self.unavailable();
        self.out.rejected.push(Rejection { request, error });
    }

    /// Refuses every request not yet broadcast.
    pub(crate) fn reject_pending(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            let id = match pending {
                Pending::Propose(id, _) | Pending::Read(id) => id,
            };
            self.reject(id);
        }
    }

    /// Refuses reads whose markers were broadcast on a ring this member is leaving.
    pub(crate) fn reject_reads_in_flight(&mut self) {
        for id in std::mem::take(&mut self.reads_in_flight) {
            self.reject(id);
        }
    }
}
