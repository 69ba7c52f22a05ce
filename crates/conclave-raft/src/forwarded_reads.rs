//! Linearizable reads taken on a follower, batched: every read taken between two `Ready`s goes
//! to the leader in one `ReadIndex`, whose request id is the batch's first read, and the
//! leader's one index answers them all (etcd batches its ReadIndex requests the same way). A
//! batch is sent after all of its reads arrived, so the leader notes its commit index after
//! each of them, which is all ReadIndex asks.

use conclave_core::{NodeId, RequestId};
use std::collections::BTreeMap;

/// A batch sent to a leader and not yet answered.
#[derive(Clone, Debug)]
struct InFlight {
    leader: NodeId,
    sent_at: u64,
    reads: Vec<RequestId>,
}

/// The follower's reads: those waiting for the next `Ready`, and batches awaiting an answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct ForwardedReads {
    queued: Vec<RequestId>,
    in_flight: BTreeMap<RequestId, InFlight>,
}

impl ForwardedReads {
    pub fn queue(&mut self, request: RequestId) {
        self.queued.push(request);
    }

    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Takes the queued reads as a batch sent now to `leader`; returns the batch's id.
    pub fn send(&mut self, leader: NodeId, now: u64) -> Option<RequestId> {
        let reads = std::mem::take(&mut self.queued);
        let id = *reads.first()?;
        self.in_flight.insert(id, InFlight { leader, sent_at: now, reads });
        Some(id)
    }

    /// Takes the queued reads, to refuse them (no leader to send them to).
    pub fn take_queued(&mut self) -> Vec<RequestId> {
        std::mem::take(&mut self.queued)
    }

    /// The reads of the batch `id`, answered; empty if it is unknown (answered or given up).
    pub fn answered(&mut self, id: RequestId) -> Vec<RequestId> {
        self.in_flight.remove(&id).map(|batch| batch.reads).unwrap_or_default()
    }

    /// Gives up the batches sent to another leader than `leader`, or sent before
    /// `sent_before`: their answers may never come. Returns their reads, to refuse.
    pub fn abandon(&mut self, leader: Option<NodeId>, sent_before: u64) -> Vec<RequestId> {
        let mut abandoned = Vec::new();
        self.in_flight.retain(|_, batch| {
            let keep = Some(batch.leader) == leader && batch.sent_at >= sent_before;
            if !keep {
                abandoned.append(&mut batch.reads);
            }
            keep
        });
        abandoned
    }

    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_batch_answers_every_read_it_took_and_only_once() {
        let mut reads = ForwardedReads::default();
        reads.queue(RequestId(7));
        reads.queue(RequestId(8));
        let id = reads.send(NodeId(1), 10).unwrap();
        assert_eq!(id, RequestId(7));
        assert!(reads.send(NodeId(1), 10).is_none(), "nothing queued, nothing sent");
        assert_eq!(reads.answered(id), vec![RequestId(7), RequestId(8)]);
        assert!(reads.answered(id).is_empty(), "a duplicated answer answers nothing");
    }

    #[test]
    fn batches_to_a_former_leader_or_too_old_are_abandoned() {
        let mut reads = ForwardedReads::default();
        reads.queue(RequestId(1));
        reads.send(NodeId(1), 5);
        reads.queue(RequestId(2));
        reads.send(NodeId(2), 20);
        reads.queue(RequestId(3));
        reads.send(NodeId(2), 30);
        assert_eq!(reads.abandon(Some(NodeId(2)), 25), vec![RequestId(1), RequestId(2)]);
        assert!(reads.in_flight());
        assert_eq!(reads.abandon(None, 0), vec![RequestId(3)]);
        assert!(!reads.in_flight());
    }
}
