//! Leases as replicated state: their ids, TTLs and attached keys.
//!
//! Nothing here measures time. Expiry must be decided identically on every replica, so the
//! store never decides it: the server's leader counts down each lease and proposes a
//! [`crate::Command::LeaseRevoke`] when one runs out, and may propose
//! [`crate::Command::LeaseCheckpoint`]s so that a new leader resumes the countdown.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::KvError;

/// The longest TTL a lease may be granted, in seconds (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// What is known about a lease (the substance of etcd's `LeaseTimeToLive` and `LeaseLeases`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub id: i64,
    /// The TTL the lease was granted, in seconds.
    pub ttl: i64,
    /// The seconds left at the last checkpoint; equal to `ttl` until one is recorded.
    pub remaining_ttl: i64,
    /// The keys attached to the lease, in key order.
    pub keys: Vec<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    ttl: i64,
    remaining_ttl: i64,
    keys: BTreeSet<Bytes>,
}

/// Every lease, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leases {
    leases: BTreeMap<i64, Lease>,
    /// Counts the ids drawn for grants that let the store choose, so the next draw differs.
    id_draws: u64,
}

impl Leases {
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Creates a lease; `id` 0 draws a fresh one. Returns the id.
    pub fn grant(&mut self, id: i64, ttl: i64) -> Result<i64, KvError> {
        if ttl > MAX_LEASE_TTL {
            return Err(KvError::LeaseTtlTooLarge);
        }
        let id = if id == 0 { self.draw_id() } else { id };
        if self.leases.contains_key(&id) {
            return Err(KvError::LeaseExists);
        }
        self.leases.insert(id, Lease { ttl, remaining_ttl: ttl, keys: BTreeSet::new() });
        Ok(id)
    }

    /// Removes a lease and returns the keys that were attached to it, in key order.
    pub fn revoke(&mut self, id: i64) -> Result<Vec<Bytes>, KvError> {
        let lease = self.leases.remove(&id).ok_or(KvError::LeaseNotFound)?;
        Ok(lease.keys.into_iter().collect())
    }

    pub fn checkpoint(&mut self, id: i64, remaining_ttl: i64) -> Result<(), KvError> {
        let lease = self.leases.get_mut(&id).ok_or(KvError::LeaseNotFound)?;
        lease.remaining_ttl = remaining_ttl;
        Ok(())
    }

    pub fn attach(&mut self, id: i64, key: &Bytes) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.clone());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }

    pub fn info(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.get(&id).map(|lease| LeaseInfo {
            id,
            ttl: lease.ttl,
            remaining_ttl: lease.remaining_ttl,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    pub fn all(&self) -> Vec<LeaseInfo> {
        self.leases.keys().filter_map(|&id| self.info(id)).collect()
    }

    /// Each lease's id, granted TTL and attached keys, and whether another id can still be
    /// drawn: what validating a restored snapshot needs.
    pub fn attachments(&self) -> impl Iterator<Item = (i64, i64, &BTreeSet<Bytes>)> {
        self.leases.iter().map(|(&id, lease)| (id, lease.ttl, &lease.keys))
    }

    /// Whether the draw counter is at most `max`, far enough from its end to advance.
    pub fn can_draw(&self, max: u64) -> bool {
        self.id_draws <= max
    }

    /// How many leases exist.
    pub fn count(&self) -> usize {
        self.leases.len()
    }

    /// Puts the draw counter at its maximum, as a damaged snapshot might.
    #[cfg(test)]
    pub fn exhaust_draws(&mut self) {
        self.id_draws = u64::MAX;
    }

    /// A positive id not in use, from a counter scrambled by SplitMix64 so ids look like etcd's
    /// (large and unordered) while every replica draws the same sequence.
    fn draw_id(&mut self) -> i64 {
        loop {
            self.id_draws += 1;
            let mut z = self.id_draws.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let id = (z >> 1) as i64;
            if id != 0 && !self.leases.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_ids_are_positive_distinct_and_reproducible() {
        let mut a = Leases::default();
        let mut b = Leases::default();
        let ids: Vec<i64> = (0..50).map(|_| a.grant(0, 10).unwrap()).collect();
        let again: Vec<i64> = (0..50).map(|_| b.grant(0, 10).unwrap()).collect();
        assert_eq!(ids, again);
        assert!(ids.iter().all(|&id| id > 0));
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    }

    #[test]
    fn grant_refuses_duplicates_and_huge_ttls() {
        let mut leases = Leases::default();
        assert_eq!(leases.grant(7, 10), Ok(7));
        assert_eq!(leases.grant(7, 10), Err(KvError::LeaseExists));
        assert_eq!(leases.grant(8, MAX_LEASE_TTL + 1), Err(KvError::LeaseTtlTooLarge));
        assert_eq!(leases.revoke(9), Err(KvError::LeaseNotFound));
    }
}
