//! Linearizable reads: from the leader's lease, or through the log.
//!
//! A leader holding its lease, whose commit index has passed every slot its promises reported
//! (so it knows every value chosen before it took over), answers at once with its commit index:
//! no other proposer can have chosen anything since. Without the lease the read waits for the
//! next slot this leader proposes — a command, or a no-op "read marker" when there is none —
//! and is answered with that slot once it is chosen: a majority accepted it at this ballot
//! after the read arrived, so nothing that completed before the read can sit above it.
//!
//! A non-leader forwards the read to the leader it knows and serves it at the index the
//! leader returns, once its own state machine has applied that far (the driver waits for it).

use crate::leader_state::ReadWaiter;
use crate::paxos::RoleState;
use crate::{Message, Paxos};
use conclave_core::{ConsensusError, NodeId, ReadState, RequestId};

impl Paxos {
    pub(crate) fn read_request(&mut self, request: RequestId) {
        if self.is_leader() {
            self.leader_read(ReadWaiter::Local(request));
            return;
        }
        match self.leader.filter(|l| *l != self.id) {
            Some(leader) => {
                self.forwarded_reads.insert(request, self.now);
                self.send(leader, Message::ReadIndex { request });
            }
            None => self.reject(request, ConsensusError::NotLeader { leader: None }),
        }
    }

    pub(crate) fn on_read_index(&mut self, from: NodeId, request: RequestId) {
        if self.is_leader() {
            self.leader_read(ReadWaiter::Remote(from, request));
        } else {
            self.send(from, Message::ReadIndexResp { request, index: None });
        }
    }

    pub(crate) fn on_read_index_resp(&mut self, request: RequestId, index: Option<u64>) {
        if self.forwarded_reads.remove(&request).is_none() {
            return;
        }
        match index {
            Some(index) => self.out.reads.push(ReadState { request, index }),
            None => {
                let leader = self.leader.filter(|l| *l != self.id);
                self.reject(request, ConsensusError::NotLeader { leader });
            }
        }
    }

    fn leader_read(&mut self, waiter: ReadWaiter) {
        let lease_ok = self.lease_valid();
        let RoleState::Leader(l) = &mut self.role else { return };
        if lease_ok && self.commit >= l.recovery_end {
            self.counters.lease_reads_total += 1;
            let index = self.commit;
            self.serve_read(waiter, index);
            return;
        }
        self.counters.log_reads_total += 1;
        l.reads_waiting.push(waiter);
        self.drive_leader();
    }

    /// Refuses a read this leader can no longer answer (it stepped down).
    pub(crate) fn fail_read(&mut self, waiter: ReadWaiter) {
        match waiter {
            ReadWaiter::Local(request) => {
                self.reject(request, ConsensusError::NotLeader { leader: None })
            }
            ReadWaiter::Remote(peer, request) => {
                self.send(peer, Message::ReadIndexResp { request, index: None })
            }
        }
    }

    /// Forwarded reads whose answer never came (lost messages, a dead leader) are refused after
    /// a maximum timeout, so callers are not left waiting.
    pub(crate) fn expire_forwarded_reads(&mut self) {
        let deadline = self.ticks.timeout_max;
        let now = self.now;
        let expired: Vec<RequestId> = self
            .forwarded_reads
            .iter()
            .filter(|(_, sent)| now.saturating_sub(**sent) >= deadline)
            .map(|(r, _)| *r)
            .collect();
        let ms = deadline * self.config.tick_interval_ms;
        for request in expired {
            self.forwarded_reads.remove(&request);
            self.reject(request, ConsensusError::Timeout(ms));
        }
    }
}
