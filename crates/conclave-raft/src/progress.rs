//! What a leader knows about one follower's log (Figure 2's `nextIndex` and `matchIndex`), and
//! how it paces replication to it.
//!
//! A follower is probed one AppendEntries at a time until an append succeeds; then the leader
//! pipelines, advancing `next_index` optimistically with up to `max_inflight_appends` messages
//! unacknowledged; a follower that needs compacted entries gets a snapshot and waits for it.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
    /// Looking for the point where the logs agree: one append in flight at a time.
    Probe,
    /// The logs agree up to `match_index`: appends are pipelined.
    Replicate,
    /// A snapshot ending at `index` was sent at tick `sent_at`; appends wait for its answer.
    Snapshot { index: u64, sent_at: u64 },
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub match_index: u64,
    pub next_index: u64,
    pub state: ReplicationState,
    /// In probe state: an append is out and unanswered.
    pub probe_sent: bool,
    /// In replicate state: the last index of each unacknowledged append, oldest first.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum (thesis §6.2).
    pub recent_active: bool,
    /// The latest read round this follower echoed back (thesis §6.4).
    pub acked_round: u64,
}

impl Progress {
    pub fn new(next_index: u64) -> Self {
        Self {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: true,
            acked_round: 0,
        }
    }

    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => self.inflight.len() >= max_inflight,
            ReplicationState::Snapshot { .. } => true,
        }
    }

    pub fn become_probe(&mut self) {
        self.next_index = match self.state {
            // After a snapshot the follower holds at least the snapshot.
            ReplicationState::Snapshot { index, .. } => (self.match_index + 1).max(index + 1),
            _ => self.match_index + 1,
        };
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, index: u64, now: u64) {
        self.state = ReplicationState::Snapshot { index, sent_at: now };
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Records that an append carrying entries up to `last` went out.
    pub fn sent_entries(&mut self, last: u64) {
        match self.state {
            ReplicationState::Replicate => {
                self.next_index = last + 1;
                self.inflight.push_back(last);
            }
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// The follower holds the leader's log through `index`. Returns whether that is news.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// The follower rejected an append after `rejected`; `hint_next` is where the leader thinks
    /// the logs may agree from. Returns false for a stale rejection, which changes nothing.
    pub fn maybe_decrease(&mut self, rejected: u64, hint_next: u64) -> bool {
        match self.state {
            ReplicationState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                // An append was lost or reordered: fall back to probing from the hint.
                self.become_probe();
                self.next_index = hint_next.min(rejected).max(self.match_index + 1);
                true
            }
            ReplicationState::Probe => {
                if self.next_index.saturating_sub(1) != rejected {
                    return false;
                }
                self.next_index = hint_next.min(rejected).max(self.match_index + 1);
                self.probe_sent = false;
                true
            }
            ReplicationState::Snapshot { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_window_and_acks() {
        let mut p = Progress::new(1);
        p.become_replicate();
        for last in [3, 6, 9] {
            p.sent_entries(last);
        }
        assert!(p.is_paused(3));
        assert!(p.maybe_update(6));
        assert_eq!(p.inflight, VecDeque::from([9]));
        assert_eq!(p.next_index, 10);
        assert!(!p.is_paused(3));
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10);
        assert!(!p.maybe_decrease(5, 3));
        assert!(p.maybe_decrease(9, 4));
        assert_eq!(p.next_index, 4);
        p.match_index = 3;
        p.become_replicate();
        assert!(!p.maybe_decrease(2, 1));
    }
}
