//! Proposals and linearizable reads: queued at the member that received them and broadcast
//! when it holds the token (any member may originate; there is no leader).
//!
//! A member accepts requests while the last ring it installed is a primary component (and,
//! before its first ring, while it waits to find out). When it installs a ring that is not,
//! requests it never broadcast are refused; a proposal already broadcast stays pending, since
//! recovery may still deliver it in a later primary component (its client times out, meaning
//! "possibly applied"). Read markers in flight are refused whenever the ring changes: a read
//! has no effect, so refusing is always safe.

use crate::TotemMessage;
use crate::message::Wake;
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
        self.wake_token();
    }

    pub(crate) fn read_marker(&mut self, id: RequestId) {
        if !self.accepts_requests() {
            self.reject(id);
            return;
        }
        self.pending.push_back(Pending::Read(id));
        self.wake_token();
    }

    /// A request was queued: have the token come now if it idles. A held token here is
    /// processed at once; otherwise, if the ring looked idle at the token's last visit here,
    /// the representative, which holds the token of an idle ring for `token_hold_ms`, is asked
    /// once per visit to pass it on. On a busy ring the token is coming anyway.
    fn wake_token(&mut self) {
        self.release_held();
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        if matches!(self.phase, Phase::Operational)
            && ring.open
            && ring.id.rep != self.id
            && ring.idle_seen
            && !ring.wake_sent
            && self.ticks.token_hold > 0
        {
            ring.wake_sent = true;
            let wake = Wake { ring: ring.id };
            self.out.send_eager(ring.id.rep, TotemMessage::Wake(wake));
        }
    }

    /// A member has requests queued: pass on the token if it is held here, else do not hold
    /// it before it has been passed on once (the request may have been queued after its owner
    /// last counted its backlog on the token).
    pub(crate) fn on_wake(&mut self, wake: Wake) {
        let Some(ring) = self.ring.as_mut().filter(|r| r.id == wake.ring) else {
            return;
        };
        if ring.held.is_none() {
            ring.woken = true;
        }
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
