//! Lease deadlines, and the task that revokes leases whose deadline passed.
//!
//! Time must not enter the replicated store, so expiry is decided by one member — the lease
//! holder (see [`EtcdContext::lease_holder`]) — which keeps a deadline per lease in memory and
//! proposes a `LeaseRevoke` when one passes. Keep-alives reach the holder: received there, they
//! renew the deadline; received elsewhere, they are forwarded to it (see `lease.rs`). When a
//! member becomes the holder it starts every lease afresh from its remaining TTL (the TTL
//! itself unless a checkpoint recorded less), as etcd's lessor does on promotion, so a change
//! of leader extends leases rather than cutting them short.

use conclave_kv::{Command, LeaseInfo};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::Code;

use crate::context::EtcdContext;
use crate::metrics::LEASE_EXPIRED_TOTAL;

#[derive(Debug, Default)]
struct Deadlines {
    by_lease: BTreeMap<i64, Instant>,
    /// Whether this member was the holder at the last expiry pass.
    holding: bool,
}

/// The deadlines this member keeps while it is the lease holder.
#[derive(Debug, Default)]
pub(crate) struct LeaseKeeper {
    deadlines: Mutex<Deadlines>,
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0).unsigned_abs())
}

impl LeaseKeeper {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease lives `ttl` seconds from now (a grant or a keep-alive).
    pub fn renew(&self, id: i64, ttl: i64, now: Instant) {
        self.lock().by_lease.insert(id, now + seconds(ttl));
    }

    pub fn forget(&self, id: i64) {
        self.lock().by_lease.remove(&id);
    }

    /// Whole seconds until the lease's deadline, rounded up as etcd rounds them; `None` when
    /// this member keeps no deadline for it.
    pub fn remaining_secs(&self, id: i64, now: Instant) -> Option<i64> {
        let deadline = *self.lock().by_lease.get(&id)?;
        let left = deadline.saturating_duration_since(now);
        Some(i64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(i64::MAX))
    }

    /// One expiry pass against the store's `leases`: forgets leases that are gone, starts the
    /// countdown of leases seen for the first time (or of all of them when this member has just
    /// become the holder), and returns the ids whose deadline has passed.
    pub fn expired(&self, leases: &[LeaseInfo], holding: bool, now: Instant) -> Vec<i64> {
        let mut state = self.lock();
        if !holding {
            state.holding = false;
            state.by_lease.clear();
            return Vec::new();
        }
        if !state.holding {
            state.holding = true;
            state.by_lease.clear();
        }
        let mut live = BTreeMap::new();
        for lease in leases {
            let deadline = state
                .by_lease
                .get(&lease.id)
                .copied()
                .unwrap_or_else(|| now + seconds(lease.remaining_ttl.min(lease.ttl).max(1)));
            live.insert(lease.id, deadline);
        }
        state.by_lease = live;
        state.by_lease.iter().filter(|(_, deadline)| **deadline <= now).map(|(id, _)| *id).collect()
    }
}

/// A tick every `period` (the first at once; a late one delays the next) until `shutdown`
/// completes: the clock of the server's background tasks (lease expiry, the compactor).
pub(crate) struct Every<S> {
    interval: tokio::time::Interval,
    shutdown: std::pin::Pin<Box<S>>,
}

impl<S: Future<Output = ()>> Every<S> {
    pub fn new(period: Duration, shutdown: S) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { interval, shutdown: Box::pin(shutdown) }
    }

    /// Waits for the next tick: `true`, or `false` once shutdown has come (then stop calling).
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            () = &mut self.shutdown => false,
        }
    }
}

/// The task that revokes expired leases. Run one per member (`serve` does); it acts only while
/// its member is the lease holder.
#[derive(Debug)]
pub struct LeaseExpiry {
    ctx: EtcdContext,
}

impl LeaseExpiry {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }

    /// Checks deadlines every `lease_check_interval_ms` until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut clock = Every::new(self.ctx.options.lease_check_interval(), shutdown);
        while clock.tick().await {
            self.pass().await;
        }
    }

    /// One pass: revoke, through the consensus, every lease whose deadline passed.
    pub async fn pass(&self) {
        let holding = self.ctx.is_lease_holder();
        let leases = if holding { self.ctx.read_store().leases() } else { Vec::new() };
        let expired = self.ctx.leases.expired(&leases, holding, Instant::now());
        for id in expired {
            match self.ctx.propose(&Command::LeaseRevoke { id }).await {
                Ok(_) => {
                    self.ctx.leases.forget(id);
                    metrics::counter!(LEASE_EXPIRED_TOTAL, "protocol" => self.ctx.protocol)
                        .increment(1);
                    tracing::debug!(lease = id, "revoked expired lease");
                }
                // Someone revoked it first.
                Err(status) if status.code() == Code::NotFound => self.ctx.leases.forget(id),
                // Left in place: the next pass tries again.
                Err(status) => {
                    tracing::warn!(lease = id, error = %status.message(), "revoking an expired lease failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64, ttl: i64) -> LeaseInfo {
        LeaseInfo { id, ttl, remaining_ttl: ttl, keys: Vec::new() }
    }

    #[test]
    fn leases_expire_after_their_ttl_unless_renewed() {
        let keeper = LeaseKeeper::new();
        let t0 = Instant::now();
        let leases = [lease(1, 5), lease(2, 5)];
        assert!(keeper.expired(&leases, true, t0).is_empty());
        keeper.renew(2, 5, t0 + Duration::from_secs(4));
        assert_eq!(keeper.expired(&leases, true, t0 + Duration::from_secs(5)), vec![1]);
        assert_eq!(keeper.remaining_secs(2, t0 + Duration::from_secs(5)), Some(4));
        assert_eq!(keeper.expired(&leases, true, t0 + Duration::from_secs(9)), vec![1, 2]);
    }

    #[test]
    fn a_new_holder_restarts_every_countdown() {
        let keeper = LeaseKeeper::new();
        let t0 = Instant::now();
        let leases = [lease(1, 5)];
        assert!(keeper.expired(&leases, true, t0).is_empty());
        // Leadership lost, then regained after the old deadline.
        assert!(keeper.expired(&leases, false, t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(keeper.remaining_secs(1, t0), None);
        assert!(keeper.expired(&leases, true, t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(keeper.expired(&leases, true, t0 + Duration::from_secs(11)), vec![1]);
    }

    #[test]
    fn revoked_leases_are_forgotten() {
        let keeper = LeaseKeeper::new();
        let t0 = Instant::now();
        keeper.renew(7, 10, t0);
        assert!(keeper.expired(&[], true, t0).is_empty());
        assert_eq!(keeper.remaining_secs(7, t0), None);
    }
}
