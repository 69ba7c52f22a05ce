//! A tiny synchronous cluster for tests: replicas, an in-memory durable store per replica, a
//! message queue delivered in order, links that can be cut, and crashes that keep only what a
//! `Ready` made durable.

use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{
    Entry, EntryKind, Membership, NodeId, Protocol, ReadState, Ready, Recovered, Rejection,
    RequestId, Role, Snapshot, SnapshotMeta,
};
use conclave_raft::{Raft, RaftConfig, RaftMessage};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub fn ids(ids: &[u64]) -> Membership {
    Membership::new(ids.iter().map(|&i| NodeId(i)))
}

/// A config with small, round numbers: election timeout 10..=20 ticks, heartbeat every 2.
pub fn config() -> RaftConfig {
    RaftConfig {
        tick_interval_ms: 10,
        election_timeout_ms_min: 100,
        election_timeout_ms_max: 200,
        heartbeat_interval_ms: 20,
        ..RaftConfig::default()
    }
}

/// What a replica's disk holds.
#[derive(Clone, Debug, Default)]
pub struct Store {
    pub hard_state: Option<Bytes>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Store {
    /// Carries out the persistence part of a `Ready`, as the core's contract describes it.
    pub fn persist(&mut self, ready: &Ready<RaftMessage>) {
        if let Some(snapshot) = &ready.snapshot {
            // A snapshot from a peer replaces the whole log.
            self.entries.clear();
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(hs) = &ready.hard_state {
            self.hard_state = Some(hs.clone());
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(to) = ready.compact_to {
            self.entries.retain(|e| e.index > to);
        }
    }

    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// One replica with its disk and its state machine (the list of applied entries).
pub struct Node {
    pub raft: Raft,
    pub store: Store,
    /// (index, term, data) of every applied entry, in order; a snapshot resets it.
    pub applied: Vec<(u64, u64, Bytes)>,
    pub applied_index: u64,
    pub reads: Vec<ReadState>,
    pub rejected: Vec<Rejection>,
    pub snapshots_restored: Vec<SnapshotMeta>,
}

pub struct Network {
    pub nodes: BTreeMap<NodeId, Node>,
    pub queue: VecDeque<(NodeId, NodeId, RaftMessage)>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Crashed replicas: their `Raft` is gone until `restart`.
    pub down: BTreeSet<NodeId>,
    pub config: RaftConfig,
    pub initial: Membership,
    next_request: u64,
    /// Every message delivered, for assertions.
    pub delivered: Vec<(NodeId, NodeId, RaftMessage)>,
    /// Every leader seen, by term: Election Safety (§5.2) is checked on every step.
    pub leaders: BTreeMap<u64, NodeId>,
    /// The term of every entry any replica applied, by index: each new leader must hold them
    /// all (Leader Completeness, §5.4).
    pub committed: BTreeMap<u64, u64>,
    /// For each read in flight, the highest index applied anywhere when it was issued: a
    /// linearizable read must be answered at an index at least that high.
    pub read_floors: BTreeMap<(NodeId, RequestId), u64>,
    /// Whether a broken invariant panics at once (the default) or is only recorded in
    /// `violations`, for tests that show a planted bug being caught.
    pub strict: bool,
    pub violations: Vec<String>,
    /// Snapshots read back from a store because Raft asked (`Ready::snapshot_wanted`).
    pub snapshots_loaded: u64,
}

impl Network {
    pub fn new(n: u64, config: RaftConfig) -> Self {
        let members: Vec<u64> = (1..=n).collect();
        Self::with_members(&members, &members, config)
    }

    /// Replicas `started`, all with initial membership `voters`.
    pub fn with_members(started: &[u64], voters: &[u64], config: RaftConfig) -> Self {
        let mut net = Network {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            config,
            initial: ids(voters),
            next_request: 1,
            delivered: Vec::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            read_floors: BTreeMap::new(),
            strict: true,
            violations: Vec::new(),
            snapshots_loaded: 0,
        };
        for &id in started {
            net.add_node(NodeId(id), net.initial.clone());
        }
        net
    }

    pub fn add_node(&mut self, id: NodeId, membership: Membership) {
        let raft = Raft::new(id, membership, self.config.clone(), Recovered::default(), 7)
            .expect("valid config");
        let node = Node {
            raft,
            store: Store::default(),
            applied: Vec::new(),
            applied_index: 0,
            reads: Vec::new(),
            rejected: Vec::new(),
            snapshots_restored: Vec::new(),
        };
        self.nodes.insert(id, node);
    }

    pub fn raft(&self, id: u64) -> &Raft {
        &self.nodes[&NodeId(id)].raft
    }

    pub fn raft_mut(&mut self, id: u64) -> &mut Raft {
        &mut self.nodes.get_mut(&NodeId(id)).unwrap().raft
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    /// Drains every `Ready` of replica `id`: persists, queues messages, applies — checking
    /// Election Safety, Leader Completeness and read linearizability on the way.
    pub fn process(&mut self, id: NodeId) {
        if self.down.contains(&id) {
            return;
        }
        let mut violations = Vec::new();
        let node = self.nodes.get_mut(&id).unwrap();
        let term = node.raft.term();
        if node.raft.role() == Role::Leader && !self.leaders.contains_key(&term) {
            self.leaders.insert(term, id);
            for (&index, &committed) in self.committed.range(node.raft.first_index()..) {
                if node.raft.term_at(index) != Some(committed) {
                    violations
                        .push(format!("leader {id} of term {term} lacks committed entry {index}"));
                }
            }
        } else if node.raft.role() == Role::Leader && self.leaders[&term] != id {
            violations.push(format!("two leaders in term {term}"));
        }
        while node.raft.has_ready() {
            let ready = node.raft.ready();
            node.store.persist(&ready);
            if let Some(snapshot) = &ready.snapshot {
                node.applied.clear();
                node.applied_index = snapshot.meta.index;
                node.snapshots_restored.push(snapshot.meta.clone());
            }
            for env in ready.eager_messages.into_iter().chain(ready.messages) {
                self.queue.push_back((id, env.to, env.msg));
            }
            for entry in ready.committed {
                assert_eq!(entry.index, node.applied_index + 1, "committed entries are contiguous");
                node.applied_index = entry.index;
                node.applied.push((entry.index, entry.term, entry.data.clone()));
                self.committed.entry(entry.index).or_insert(entry.term);
            }
            for read in &ready.reads {
                let floor = self.read_floors.remove(&(id, read.request)).unwrap_or(0);
                if read.index < floor {
                    violations.push(format!(
                        "node {id} answered read {} at {} though {floor} was applied before it began",
                        read.request, read.index
                    ));
                }
            }
            node.reads.extend(ready.reads);
            node.rejected.extend(ready.rejected);
            node.raft.advance();
            if ready.snapshot_wanted
                && let Some(snapshot) = node.store.snapshot.clone()
            {
                self.snapshots_loaded += 1;
                node.raft.snapshot_loaded(snapshot);
            }
        }
        for violation in violations {
            assert!(!self.strict, "{violation}");
            self.violations.push(violation);
        }
    }

    pub fn process_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    /// Delivers messages until none is left.
    pub fn deliver_all(&mut self) {
        self.deliver_filtered(|_, _, _| true);
    }

    /// Delivers messages until none is left, dropping those `keep` refuses.
    pub fn deliver_filtered(&mut self, mut keep: impl FnMut(NodeId, NodeId, &RaftMessage) -> bool) {
        for _ in 0..1_000_000 {
            self.process_all();
            let Some((from, to, msg)) = self.queue.pop_front() else { return };
            if self.cut.contains(&(from, to))
                || self.down.contains(&to)
                || !self.nodes.contains_key(&to)
                || !keep(from, to, &msg)
            {
                continue;
            }
            self.delivered.push((from, to, msg.clone()));
            self.nodes.get_mut(&to).unwrap().raft.step(from, msg);
        }
        panic!("messages never stopped flowing");
    }

    /// Ticks every live replica `n` times, delivering everything after each tick.
    pub fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                if !self.down.contains(&id) {
                    self.nodes.get_mut(&id).unwrap().raft.tick();
                }
            }
            self.deliver_all();
        }
    }

    /// Ticks only replica `id` until it leads (others stay silent but answer).
    pub fn elect(&mut self, id: u64) {
        for _ in 0..200 {
            if self.raft(id).role() == Role::Leader {
                // Let the no-op commit.
                self.deliver_all();
                return;
            }
            self.raft_mut(id).tick();
            self.deliver_all();
        }
        panic!("node {id} did not become leader");
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(id, n)| !self.down.contains(id) && n.raft.role() == Role::Leader)
            .max_by_key(|(_, n)| n.raft.term())
            .map(|(id, _)| id.0)
    }

    /// Proposes `command` at replica `id`, wrapped in the driver's header.
    pub fn propose(&mut self, id: u64, command: &str) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let data =
            Proposal { origin: NodeId(id), request, command: Bytes::from(command.to_owned()) }
                .encode();
        self.raft_mut(id).propose(request, data);
        request
    }

    pub fn read(&mut self, id: u64) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let floor = self.committed.keys().next_back().copied().unwrap_or(0);
        self.read_floors.insert((NodeId(id), request), floor);
        self.raft_mut(id).read(request);
        request
    }

    pub fn isolate(&mut self, id: u64) {
        for &other in self.nodes.keys() {
            if other != NodeId(id) {
                self.cut.insert((NodeId(id), other));
                self.cut.insert((other, NodeId(id)));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes replica `id`: messages it had not sent are lost, its disk stays.
    pub fn crash(&mut self, id: u64) {
        self.down.insert(NodeId(id));
        self.queue.retain(|(from, to, _)| *from != NodeId(id) && *to != NodeId(id));
    }

    /// Restarts replica `id` from its disk; the state machine restarts from the snapshot.
    pub fn restart(&mut self, id: u64) {
        let nid = NodeId(id);
        self.down.remove(&nid);
        let node = self.nodes.get_mut(&nid).unwrap();
        node.raft =
            Raft::new(nid, self.initial.clone(), self.config.clone(), node.store.recovered(), 99)
                .expect("recovers");
        node.applied.clear();
        node.applied_index = node.store.snapshot.as_ref().map_or(0, |s| s.meta.index);
    }

    /// Hands replica `id` a snapshot the way the driver does: stored first (Raft reads its data
    /// back from the store when it sends it), then given to Raft.
    pub fn snapshot_taken(&mut self, id: u64, snapshot: Snapshot) {
        let node = self.nodes.get_mut(&NodeId(id)).unwrap();
        node.store.snapshot = Some(snapshot.clone());
        node.raft.snapshot_taken(snapshot);
    }

    /// Takes a snapshot of replica `id` at its applied index, as the driver would: persisted
    /// first, then handed to Raft.
    pub fn take_snapshot(&mut self, id: u64) {
        if self.down.contains(&NodeId(id)) {
            return;
        }
        // The driver snapshots between Readys, never with one half carried out.
        self.process(NodeId(id));
        let node = self.nodes.get_mut(&NodeId(id)).unwrap();
        let index = node.applied_index;
        let newest = node.store.snapshot.as_ref().map_or(0, |s| s.meta.index);
        if index <= newest {
            return;
        }
        let meta = SnapshotMeta {
            index,
            term: node.raft.term_at(index).unwrap(),
            membership: node.raft.membership_at(index).clone(),
        };
        let snapshot = Snapshot { meta, data: Bytes::from(format!("state@{index}")) };
        node.store.snapshot = Some(snapshot.clone());
        node.raft.snapshot_taken(snapshot);
    }

    /// The commands applied by replica `id`, as strings, in order.
    pub fn commands(&self, id: u64) -> Vec<String> {
        self.node(id)
            .applied
            .iter()
            .filter_map(|(_, _, data)| Proposal::decode(data))
            .map(|p| String::from_utf8(p.command.to_vec()).unwrap())
            .collect()
    }

    /// Indexes at which two replicas applied different entries (State Machine Safety,
    /// §5.4.3, says there are none).
    pub fn state_machine_conflicts(&self) -> Vec<u64> {
        let mut seen: BTreeMap<u64, (u64, Bytes)> = BTreeMap::new();
        let mut conflicts = BTreeSet::new();
        for node in self.nodes.values() {
            for (index, term, data) in &node.applied {
                let mine = (*term, data.clone());
                if *seen.entry(*index).or_insert_with(|| mine.clone()) != mine {
                    conflicts.insert(*index);
                }
            }
        }
        conflicts.into_iter().collect()
    }

    pub fn assert_state_machine_safety(&self) {
        assert_eq!(self.state_machine_conflicts(), Vec::<u64>::new(), "state machines diverged");
    }
}

/// A membership entry's payload.
pub fn decode_membership(entry: &Entry) -> Option<Membership> {
    (entry.kind == EntryKind::Membership).then(|| postcard::from_bytes(&entry.data).unwrap())
}
