//! Remembers which forwarded proposals this replica already appended, so that a duplicated
//! `Propose` message (networks may deliver a message twice) never orders one command twice.

use conclave_core::{NodeId, RequestId};
use std::collections::{BTreeSet, VecDeque};

/// How many forwarded proposals are remembered. A duplicate arrives within moments of the
/// original; this window covers far more than the proposals in flight at once.
const WINDOW: usize = 65_536;

/// A bounded set of `(origin, request)` pairs, oldest forgotten first.
#[derive(Clone, Debug, Default)]
pub(crate) struct ForwardedSeen {
    seen: BTreeSet<(NodeId, RequestId)>,
    order: VecDeque<(NodeId, RequestId)>,
}

impl ForwardedSeen {
    /// Records the pair; false if it was already recorded (a duplicate).
    pub fn insert(&mut self, from: NodeId, request: RequestId) -> bool {
        if !self.seen.insert((from, request)) {
            return false;
        }
        self.order.push_back((from, request));
        if self.order.len() > WINDOW
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_the_window_is_bounded() {
        let mut seen = ForwardedSeen::default();
        assert!(seen.insert(NodeId(2), RequestId(1)));
        assert!(!seen.insert(NodeId(2), RequestId(1)));
        assert!(seen.insert(NodeId(3), RequestId(1)));
        for i in 0..WINDOW as u64 + 10 {
            seen.insert(NodeId(9), RequestId(100 + i));
        }
        assert!(seen.order.len() <= WINDOW && seen.seen.len() == seen.order.len());
    }
}
