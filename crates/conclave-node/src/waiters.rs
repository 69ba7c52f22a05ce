//! Callers waiting for the node thread: proposals until applied, reads until their index is.

use bytes::Bytes;
use conclave_core::{ConsensusError, RequestId};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tokio::sync::oneshot;

pub type ProposalReply = oneshot::Sender<Result<Bytes, ConsensusError>>;
pub type ReadReply = oneshot::Sender<Result<u64, ConsensusError>>;

/// Everything the node thread owes an answer to.
#[derive(Debug, Default)]
pub struct Waiters {
    proposals: HashMap<RequestId, (Instant, ProposalReply)>,
    /// Reads the protocol has not yet answered.
    reads: HashMap<RequestId, (Instant, ReadReply)>,
    /// Reads the protocol answered, waiting for the state machine to reach their index.
    ready_reads: BTreeMap<u64, Vec<ReadReply>>,
}

impl Waiters {
    pub fn add_proposal(&mut self, id: RequestId, deadline: Instant, reply: ProposalReply) {
        self.proposals.insert(id, (deadline, reply));
    }

    pub fn add_read(&mut self, id: RequestId, deadline: Instant, reply: ReadReply) {
        self.reads.insert(id, (deadline, reply));
    }

    pub fn pending(&self) -> usize {
        self.proposals.len()
            + self.reads.len()
            + self.ready_reads.values().map(Vec::len).sum::<usize>()
    }

    /// Answers a proposal, if its caller is still waiting here.
    pub fn complete_proposal(&mut self, id: RequestId, result: Result<Bytes, ConsensusError>) {
        if let Some((_, reply)) = self.proposals.remove(&id) {
            let _ = reply.send(result);
        }
    }

    /// The protocol says read `id` may be served once `index` is applied.
    pub fn read_ready(&mut self, id: RequestId, index: u64) {
        if let Some((_, reply)) = self.reads.remove(&id) {
            self.ready_reads.entry(index).or_default().push(reply);
        }
    }

    /// Fails a request of either kind.
    pub fn fail(&mut self, id: RequestId, error: ConsensusError) {
        if let Some((_, reply)) = self.proposals.remove(&id) {
            let _ = reply.send(Err(error));
        } else if let Some((_, reply)) = self.reads.remove(&id) {
            let _ = reply.send(Err(error));
        }
    }

    /// Answers every ready read whose index has been applied.
    pub fn applied(&mut self, applied: u64) {
        while let Some(entry) = self.ready_reads.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for reply in entry.remove() {
                let _ = reply.send(Ok(applied));
            }
        }
    }

    /// Fails every request whose deadline passed. Ready reads wait on the local apply only, so
    /// they are bounded by the caller's own timeout instead.
    pub fn expire(&mut self, now: Instant, timeout_ms: u64) {
        let expired: Vec<RequestId> =
            self.proposals.iter().filter(|(_, (d, _))| *d <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.fail(id, ConsensusError::Timeout(timeout_ms));
        }
        let expired: Vec<RequestId> =
            self.reads.iter().filter(|(_, (d, _))| *d <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.fail(id, ConsensusError::Timeout(timeout_ms));
        }
    }

    /// Fails everything: the node is stopping.
    pub fn fail_all(&mut self, error: ConsensusError) {
        for (_, (_, reply)) in self.proposals.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, (_, reply)) in self.reads.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, replies) in std::mem::take(&mut self.ready_reads) {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
