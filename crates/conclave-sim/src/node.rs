//! One simulated replica: a protocol instance (absent while crashed), its storage, its state
//! machine, and the driver's bookkeeping of the clients waiting on it.

use crate::clients::{OpKind, Request};
use crate::protocols::SimProtocol;
use conclave_core::{NodeId, RequestId};
use conclave_kv::KvStore;
use conclave_storage::MemStore;
use std::collections::BTreeMap;

/// A client request the replica accepted and has not answered yet.
#[derive(Clone, Debug)]
pub(crate) struct Waiting {
    pub client: usize,
    pub op: u64,
    pub key: String,
    pub kind: OpKind,
}

impl From<Request> for Waiting {
    fn from(r: Request) -> Self {
        Self { client: r.client, op: r.op, key: r.key, kind: r.kind }
    }
}

/// Which write a planned power loss strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TornWrite {
    /// The next write of entries or hard state.
    Next,
    /// The `n`-th such write made while leading (counting down): a new leader dies before
    /// its first entries, or its first commit, leave (Figure 8's crashes).
    AsLeader(u8),
}

/// A replica.
#[derive(Debug)]
pub struct SimNode<P> {
    pub(crate) id: NodeId,
    /// `None` while the replica is down.
    pub(crate) protocol: Option<P>,
    /// Survives crashes (minus unsynced writes).
    pub(crate) store: MemStore,
    /// Rebuilt from the recovered snapshot on restart.
    pub(crate) kv: KvStore,
    pub(crate) applied: u64,
    pub(crate) applied_term: u64,
    /// Index of the last snapshot taken or installed.
    pub(crate) snapshot_index: u64,
    /// Bumped at every crash, so that events of a previous life are ignored and request ids
    /// never repeat.
    pub(crate) incarnation: u32,
    next_request: u64,
    /// Requests waiting for an applied entry or a rejection.
    pub(crate) waiting: BTreeMap<RequestId, Waiting>,
    /// Reads the protocol allowed, waiting for the state machine to reach their index.
    pub(crate) reads: Vec<(u64, RequestId)>,
    /// The tick period, drift included.
    pub(crate) tick_us: u64,
    /// The last term in which this replica was seen leading.
    pub(crate) led_term: Option<u64>,
    /// Crash after a coming write, before it is synced and before its messages leave.
    pub(crate) torn_write: Option<TornWrite>,
}

impl<P: SimProtocol> SimNode<P> {
    pub(crate) fn new(index: usize, tick_us: u64) -> Self {
        Self {
            id: NodeId(index as u64 + 1),
            protocol: None,
            store: MemStore::new(),
            kv: KvStore::new(),
            applied: 0,
            applied_term: 0,
            snapshot_index: 0,
            incarnation: 0,
            next_request: 0,
            waiting: BTreeMap::new(),
            reads: Vec::new(),
            tick_us,
            led_term: None,
            torn_write: None,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.protocol.is_some()
    }

    /// A request id never used before on this replica, in any incarnation.
    pub(crate) fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId((u64::from(self.incarnation) << 40) | self.next_request)
    }

    /// Power loss: the protocol and the state machine are gone, the store keeps what was
    /// synced plus the first `keep_unsynced` writes after it.
    pub(crate) fn crash(&mut self, keep_unsynced: usize) {
        self.protocol = None;
        self.store.crash_keeping_writes(keep_unsynced);
        self.kv = KvStore::new();
        self.waiting.clear();
        self.reads.clear();
        self.incarnation += 1;
        self.torn_write = None;
    }
}
