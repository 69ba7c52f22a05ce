//! A leader's linearizable reads in waiting (thesis §6.4) and its lease (§6.4.1).
//!
//! ReadIndex: a read records the commit index when it arrives, then waits until a majority has
//! acknowledged a heartbeat round that started after it arrived — proof that this replica was
//! still the leader at some moment after the read began. Every read that arrives before a round
//! starts shares that round, so a burst of reads costs one round.
//!
//! Lease: an acknowledged round also proves that a majority will refuse votes for an election
//! timeout after they received it, so for a while after the round was *sent* no other leader
//! can exist and reads need no round at all.

use conclave_core::{NodeId, RequestId};
use std::collections::VecDeque;

/// Who asked for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    /// A client of this replica.
    Local(RequestId),
    /// A client of follower `from`, which forwarded the read.
    Forwarded { from: NodeId, request: RequestId },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingRead {
    pub round: u64,
    pub index: u64,
    pub origin: ReadOrigin,
}

/// Rounds remembered for the lease, at most; older ones are only forgotten early (which
/// shortens the lease, never lengthens it) when a majority stops answering.
const MAX_ROUNDS_REMEMBERED: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before the leader committed an entry of its own term; until then its
    /// commit index may be behind entries that earlier leaders committed.
    pub waiting_commit: Vec<ReadOrigin>,
    /// Reads waiting for their round, in arrival (and so round) order.
    pending: VecDeque<PendingRead>,
    /// The latest round started.
    round: u64,
    /// (round, tick it was sent at), for rounds not yet known to be acknowledged by a majority.
    round_ticks: VecDeque<(u64, u64)>,
    /// The tick at which the latest majority-acknowledged round was sent.
    lease_from: Option<u64>,
    /// Set once leadership transfer began: the transferee may win an election that ignores
    /// leases, so this leader's lease is void for the rest of its term.
    lease_revoked: bool,
}

impl ReadQueue {
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Queues a read at `index` for the next round to start.
    pub fn push(&mut self, index: u64, origin: ReadOrigin) {
        self.pending.push_back(PendingRead { round: self.round + 1, index, origin });
    }

    /// Whether a read waits for a round that has not started yet.
    pub fn needs_round(&self) -> bool {
        self.pending.back().is_some_and(|r| r.round > self.round)
    }

    /// Starts a round at tick `now` and returns its number.
    pub fn start_round(&mut self, now: u64) -> u64 {
        self.round += 1;
        self.round_ticks.push_back((self.round, now));
        if self.round_ticks.len() > MAX_ROUNDS_REMEMBERED {
            self.round_ticks.pop_front();
        }
        self.round
    }

    /// A majority has acknowledged every round up to `round`: returns the reads that may now
    /// be answered, and extends the lease.
    pub fn acknowledged(&mut self, round: u64) -> Vec<PendingRead> {
        let mut sent_at = None;
        while let Some(&(r, tick)) = self.round_ticks.front() {
            if r > round {
                break;
            }
            sent_at = Some(tick);
            self.round_ticks.pop_front();
        }
        if let Some(tick) = sent_at {
            self.lease_from = Some(self.lease_from.map_or(tick, |t| t.max(tick)));
        }
        let mut ready = Vec::new();
        while self.pending.front().is_some_and(|r| r.round <= round) {
            ready.extend(self.pending.pop_front());
        }
        ready
    }

    /// Whether the lease covers tick `now`.
    pub fn lease_valid(&self, now: u64, lease_ticks: u64) -> bool {
        !self.lease_revoked && self.lease_from.is_some_and(|from| now < from + lease_ticks)
    }

    pub fn revoke_lease(&mut self) {
        self.lease_revoked = true;
    }

    /// Every read still waiting, for rejection when leadership is lost.
    pub fn drain(&mut self) -> Vec<ReadOrigin> {
        let mut all: Vec<ReadOrigin> = self.waiting_commit.drain(..).collect();
        all.extend(self.pending.drain(..).map(|r| r.origin));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_share_a_round_and_lease_counts_from_send_time() {
        let mut q = ReadQueue::default();
        q.push(5, ReadOrigin::Local(RequestId(1)));
        q.push(5, ReadOrigin::Local(RequestId(2)));
        assert!(q.needs_round());
        assert_eq!(q.start_round(100), 1);
        assert!(!q.needs_round());
        q.push(6, ReadOrigin::Local(RequestId(3)));
        assert!(q.acknowledged(0).is_empty());
        assert_eq!(q.acknowledged(1).len(), 2);
        assert!(q.lease_valid(105, 10));
        assert!(!q.lease_valid(110, 10));
        q.revoke_lease();
        assert!(!q.lease_valid(105, 10));
        assert_eq!(q.drain(), vec![ReadOrigin::Local(RequestId(3))]);
    }
}
