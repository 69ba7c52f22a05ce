//! A synchronous in-test network of Paxos replicas with a model store.
//!
//! Each `Ready` is carried out in full and in order (persist, send, apply), the way the driver
//! does; a crash drops the in-memory replica and restarts it from the model store. Messages
//! wait in one FIFO queue; links can be cut in either direction.

use bytes::Bytes;
use conclave_core::{
    Entry, EntryKind, Membership, NodeId, Protocol, ReadState, Ready, Recovered, Rejection,
    RequestId, Snapshot, SnapshotMeta,
};
use conclave_paxos::{Message, Paxos, PaxosConfig};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a replica has made durable, with the log store's contract.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub hard_state: Option<Bytes>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    /// How many entries were ever written (rewrites included).
    pub written: usize,
}

impl Store {
    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        self.written += entries.len();
        self.entries.retain(|e| e.index < first.index);
        let expected = self
            .entries
            .last()
            .map(|e| e.index + 1)
            .or(self.snapshot.as_ref().map(|s| s.meta.index + 1))
            .unwrap_or(1);
        assert!(
            first.index <= expected,
            "entries must stay contiguous: writing {} after {}",
            first.index,
            expected - 1
        );
        for pair in entries.windows(2) {
            assert_eq!(pair[0].index + 1, pair[1].index, "a Ready's entries are contiguous");
        }
        self.entries.extend_from_slice(entries);
    }

    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// One replica with its store, its applied sequence and what its callers were told.
#[derive(Debug)]
pub struct Replica {
    pub node: Paxos,
    pub store: Store,
    /// Every entry applied, in order (restored from a snapshot's data on install).
    pub applied: Vec<Entry>,
    pub reads: Vec<ReadState>,
    pub rejected: Vec<Rejection>,
}

pub struct Cluster {
    pub replicas: BTreeMap<NodeId, Replica>,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub config: PaxosConfig,
    pub membership: Membership,
    next_request: u64,
}

pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

pub fn config() -> PaxosConfig {
    PaxosConfig::default()
}

impl Cluster {
    pub fn new(n: u64) -> Self {
        Self::with_config(n, config())
    }

    pub fn with_config(n: u64, config: PaxosConfig) -> Self {
        let membership = Membership::new(ids(n));
        let mut cluster = Self {
            replicas: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            config,
            membership: membership.clone(),
            next_request: 1,
        };
        for id in ids(n) {
            cluster.add_replica(id, membership.clone());
        }
        cluster
    }

    /// Starts a fresh replica (for a reconfiguration that adds it).
    pub fn add_replica(&mut self, id: NodeId, membership: Membership) {
        let node = Paxos::new(id, membership, self.config.clone(), Recovered::default(), id.0)
            .expect("valid replica");
        let replica = Replica {
            node,
            store: Store::default(),
            applied: Vec::new(),
            reads: Vec::new(),
            rejected: Vec::new(),
        };
        self.replicas.insert(id, replica);
    }

    pub fn node(&self, id: u64) -> &Paxos {
        &self.replicas[&NodeId(id)].node
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Paxos {
        &mut self.replicas.get_mut(&NodeId(id)).unwrap().node
    }

    pub fn replica(&self, id: u64) -> &Replica {
        &self.replicas[&NodeId(id)]
    }

    /// Ticks every replica past the startup loyalty window, dropping whatever they send, so
    /// that a chosen node can then win with [`Cluster::elect`].
    pub fn warm_up(&mut self) {
        let ticks = self.config.leader_timeout_ms_min.div_ceil(self.config.tick_interval_ms);
        for _ in 0..ticks {
            for id in self.ids() {
                self.replicas.get_mut(&id).unwrap().node.tick();
                self.process(id);
            }
        }
        self.queue.clear();
    }

    /// Makes `id` run phase 1 and delivers messages until the network is quiet.
    pub fn elect(&mut self, id: u64) {
        self.node_mut(id).campaign();
        self.process(NodeId(id));
        self.deliver_all();
        assert!(self.node(id).is_leader(), "node {id} should lead: {:?}", self.node(id));
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.replicas.keys().copied().collect()
    }

    /// Carries out one replica's Ready the way the driver does.
    pub fn process(&mut self, id: NodeId) {
        let replica = self.replicas.get_mut(&id).unwrap();
        while replica.node.has_ready() {
            let ready: Ready<Message> = replica.node.ready();
            if let Some(snapshot) = ready.snapshot {
                // A peer's snapshot replaces the whole stored log (the strictest store
                // contract); the protocol re-emits whatever it keeps after the snapshot.
                replica.store.entries.clear();
                replica.applied = postcard::from_bytes(&snapshot.data).unwrap();
                replica.store.snapshot = Some(snapshot);
            }
            if let Some(hs) = ready.hard_state {
                replica.store.hard_state = Some(hs);
            }
            replica.store.append(&ready.entries);
            if let Some(index) = ready.compact_to {
                replica.store.entries.retain(|e| e.index > index);
            }
            // The model store is durable at once, so eager messages simply go first.
            for env in ready.eager_messages.into_iter().chain(ready.messages) {
                self.queue.push_back((id, env.to, env.msg));
            }
            for entry in ready.committed {
                let expected = replica.applied.last().map_or(1, |e| e.index + 1);
                assert_eq!(entry.index, expected, "node {id} applies in slot order");
                replica.applied.push(entry);
            }
            replica.reads.extend(ready.reads);
            replica.rejected.extend(ready.rejected);
            replica.node.advance();
            if ready.snapshot_wanted
                && let Some(snapshot) = replica.store.snapshot.clone()
            {
                replica.node.snapshot_loaded(snapshot);
            }
        }
    }

    /// Delivers one queued message; returns false when the queue is empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else { return false };
        if self.cut.contains(&(from, to)) || !self.replicas.contains_key(&to) {
            return true;
        }
        self.replicas.get_mut(&to).unwrap().node.step(from, msg);
        self.process(to);
        true
    }

    pub fn deliver_all(&mut self) {
        let mut steps = 0;
        while self.deliver_one() {
            steps += 1;
            assert!(steps < 1_000_000, "the network never went quiet");
        }
    }

    /// Ticks every replica once, then delivers everything.
    pub fn tick(&mut self) {
        for id in self.ids() {
            self.replicas.get_mut(&id).unwrap().node.tick();
            self.process(id);
        }
        self.deliver_all();
    }

    pub fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Ticks until some reachable replica leads and every live replica knows it.
    pub fn run_until_leader(&mut self, max_ticks: usize) -> NodeId {
        for _ in 0..max_ticks {
            self.tick();
            let leaders: Vec<NodeId> =
                self.ids().into_iter().filter(|id| self.replicas[id].node.is_leader()).collect();
            if let [leader] = leaders[..] {
                return leader;
            }
        }
        panic!("no single leader after {max_ticks} ticks");
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.ids().into_iter().filter(|id| self.replicas[id].node.is_leader()).collect()
    }

    /// Proposes `command` at `id` (wrapped in nothing: tests use raw bytes).
    pub fn propose(&mut self, id: u64, command: &str) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.node_mut(id).propose(request, Bytes::from(command.to_string()));
        self.process(NodeId(id));
        request
    }

    pub fn read(&mut self, id: u64) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.node_mut(id).read(request);
        self.process(NodeId(id));
        request
    }

    /// Cuts both directions between `a` and every other replica.
    pub fn isolate(&mut self, a: u64) {
        for id in self.ids() {
            if id != NodeId(a) {
                self.cut.insert((NodeId(a), id));
                self.cut.insert((id, NodeId(a)));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Drops the replica's memory and restarts it from its store.
    pub fn crash_restart(&mut self, id: u64) {
        let id = NodeId(id);
        let replica = self.replicas.get_mut(&id).unwrap();
        let recovered = replica.store.recovered();
        replica.applied = match &recovered.snapshot {
            Some(s) => postcard::from_bytes(&s.data).unwrap(),
            None => Vec::new(),
        };
        replica.node =
            Paxos::new(id, self.membership.clone(), self.config.clone(), recovered, id.0 + 1000)
                .expect("restart from store");
        // Messages already in flight to it arrive after the restart.
    }

    /// Takes a snapshot of what `id` applied, as the driver would.
    pub fn snapshot(&mut self, id: u64) {
        let replica = self.replicas.get_mut(&NodeId(id)).unwrap();
        let index = replica.applied.last().map_or(0, |e| e.index);
        let term = replica.applied.last().map_or(0, |e| e.term);
        let meta = SnapshotMeta { index, term, membership: replica.node.membership().clone() };
        let data = Bytes::from(postcard::to_stdvec(&replica.applied).unwrap());
        // The driver saves the snapshot it took before handing it to the protocol.
        let snapshot = Snapshot { meta, data };
        replica.store.snapshot = Some(snapshot.clone());
        replica.node.snapshot_taken(snapshot);
        self.process(NodeId(id));
    }

    /// The commands `id` applied, in order (no-ops and membership entries left out).
    pub fn commands(&self, id: u64) -> Vec<String> {
        self.replica(id)
            .applied
            .iter()
            .filter(|e| e.kind == EntryKind::Command)
            .map(|e| String::from_utf8(e.data.to_vec()).unwrap())
            .collect()
    }

    /// Every pair of applied sequences is a prefix of the other (state machine safety).
    pub fn check_prefixes(&self) {
        let seqs: Vec<(&NodeId, &Vec<Entry>)> =
            self.replicas.iter().map(|(id, r)| (id, &r.applied)).collect();
        for (a, sa) in &seqs {
            for (b, sb) in &seqs {
                let n = sa.len().min(sb.len());
                for i in 0..n {
                    assert_eq!(
                        (sa[i].index, sa[i].kind, &sa[i].data),
                        (sb[i].index, sb[i].kind, &sb[i].data),
                        "nodes {a} and {b} applied different values in slot {}",
                        sa[i].index
                    );
                }
            }
        }
    }

    /// Values chosen according to the acceptors' records: a majority holding the same ballot
    /// in a slot means that ballot's value is chosen there (whether or not anyone learned it).
    pub fn chosen_by_acceptors(&self) -> Vec<(u64, conclave_paxos::Ballot, Entry)> {
        let mut out = Vec::new();
        let last = self.replicas.values().map(|r| r.node.log_bounds().1).max().unwrap_or(0);
        let quorum = self.replicas.len() / 2 + 1;
        for slot in 1..=last {
            let mut by_ballot: BTreeMap<conclave_paxos::Ballot, (usize, Entry)> = BTreeMap::new();
            for r in self.replicas.values() {
                if let Some((b, e)) = r.node.accepted(slot) {
                    by_ballot.entry(b).or_insert((0, e.clone())).0 += 1;
                }
            }
            for (b, (count, e)) in by_ballot {
                if count >= quorum {
                    out.push((slot, b, e));
                }
            }
        }
        out
    }
}
