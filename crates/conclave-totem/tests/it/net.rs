//! A small synchronous network of Totem members for tests: virtual milliseconds, a fixed
//! per-message latency, seeded message loss, partitions, message filters, crash and restart
//! from an in-memory store, and a state machine that records what it applied.

use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{
    DetRng, Entry, EntryKind, Membership, NodeId, Protocol, ReadState, Recovered, Rejection,
    RequestId, Snapshot, SnapshotMeta,
};
use conclave_totem::{
    Delivered, HardState, MembershipState, RingId, Token, Totem, TotemConfig, TotemMessage,
};
use std::collections::{BTreeMap, BTreeSet};

/// What a store holds: the durable part of a member.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    pub hard_state: Option<Bytes>,
    /// A hard state written lazily (`Ready::hard_state_lazy`) and not yet carried by a sync:
    /// a crash loses it.
    pub unsynced_hard_state: Option<Bytes>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl MemStorage {
    fn write(&mut self, ready: &conclave_core::Ready<TotemMessage>) {
        if let Some(s) = &ready.snapshot {
            self.entries.retain(|e| e.index > s.meta.index);
            self.snapshot = Some(s.clone());
        }
        if let Some(hs) = &ready.hard_state {
            if ready.hard_state_lazy {
                self.unsynced_hard_state = Some(hs.clone());
            } else {
                self.hard_state = Some(hs.clone());
                self.unsynced_hard_state = None;
            }
        }
        if ready.must_sync()
            && let Some(hs) = self.unsynced_hard_state.take()
        {
            // The sync carries the lazy write made before it.
            self.hard_state = Some(hs);
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            if let Some(last) = self.entries.last() {
                assert_eq!(last.index + 1, first.index, "entries persisted with a gap");
            }
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(to) = ready.compact_to {
            self.entries.retain(|e| e.index > to);
        }
    }

    fn recover(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// The applied state: every command applied, by index.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub index: u64,
    pub commands: BTreeMap<u64, Bytes>,
}

impl Applied {
    fn encode(&self) -> Bytes {
        let pairs: Vec<(u64, Vec<u8>)> =
            self.commands.iter().map(|(i, c)| (*i, c.to_vec())).collect();
        Bytes::from(postcard::to_stdvec(&(self.index, pairs)).unwrap())
    }

    fn decode(data: &[u8]) -> Self {
        let (index, pairs): (u64, Vec<(u64, Vec<u8>)>) = postcard::from_bytes(data).unwrap();
        Self { index, commands: pairs.into_iter().map(|(i, c)| (i, Bytes::from(c))).collect() }
    }
}

/// What one `Ready` asked for, for assertions on the order of effects.
#[derive(Clone, Debug)]
pub struct ReadyRecord {
    /// Indexes of the entries it asked to persist.
    pub entries: Vec<u64>,
    /// Tokens it let leave before its sync.
    pub eager_tokens: Vec<Token>,
    pub hard_state: Option<HardState>,
    pub hard_state_lazy: bool,
}

/// One member and what its driver observed.
#[derive(Debug)]
pub struct Node {
    pub totem: Option<Totem>,
    pub store: MemStorage,
    pub applied: Applied,
    /// Every committed entry handed out, in order, in this incarnation.
    pub committed: Vec<Entry>,
    pub reads: Vec<ReadState>,
    pub rejected: Vec<Rejection>,
    pub deliveries: Vec<Delivered>,
    /// Messages this member sent, by kind, for assertions.
    pub sent: Vec<(NodeId, TotemMessage)>,
    /// The Readies it carried out (while `record_sent` is set).
    pub readies: Vec<ReadyRecord>,
}

impl Node {
    pub fn totem(&self) -> &Totem {
        self.totem.as_ref().expect("node is up")
    }
}

type Filter = Box<dyn FnMut(NodeId, NodeId, &TotemMessage) -> bool>;

/// The network and its members.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub now_ms: u64,
    pub latency_ms: u64,
    /// Extra latency drawn per message in `0..=latency_jitter_ms` (reorders messages).
    pub latency_jitter_ms: u64,
    pub drop_rate: f64,
    pub config: TotemConfig,
    membership: Membership,
    in_flight: Vec<(u64, u64, NodeId, NodeId, TotemMessage)>,
    sequence: u64,
    rng: DetRng,
    blocked: BTreeSet<(NodeId, NodeId)>,
    filter: Option<Filter>,
    next_request: u64,
    pub record_sent: bool,
}

pub fn n(i: u64) -> NodeId {
    NodeId(i)
}

impl Cluster {
    pub fn new(size: u64, config: TotemConfig) -> Self {
        Self::with_seed(size, config, 1)
    }

    pub fn with_seed(size: u64, config: TotemConfig, seed: u64) -> Self {
        let membership = Membership::new((1..=size).map(NodeId));
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            now_ms: 0,
            latency_ms: 1,
            latency_jitter_ms: 0,
            drop_rate: 0.0,
            config,
            membership,
            in_flight: Vec::new(),
            sequence: 0,
            rng: DetRng::new(seed),
            blocked: BTreeSet::new(),
            filter: None,
            next_request: 1,
            record_sent: false,
        };
        for id in 1..=size {
            let node = Node {
                totem: None,
                store: MemStorage::default(),
                applied: Applied::default(),
                committed: Vec::new(),
                reads: Vec::new(),
                rejected: Vec::new(),
                deliveries: Vec::new(),
                sent: Vec::new(),
                readies: Vec::new(),
            };
            cluster.nodes.insert(NodeId(id), node);
            cluster.start(NodeId(id));
        }
        cluster
    }

    fn start(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let recovered = node.store.recover();
        node.applied = match &recovered.snapshot {
            Some(s) => Applied::decode(&s.data),
            None => Applied::default(),
        };
        let totem = Totem::new(id, self.membership.clone(), self.config.clone(), recovered, id.0)
            .expect("valid member");
        node.totem = Some(totem);
        self.process(id);
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn totem(&self, id: NodeId) -> &Totem {
        self.nodes[&id].totem()
    }

    pub fn totem_mut(&mut self, id: NodeId) -> &mut Totem {
        self.nodes.get_mut(&id).unwrap().totem.as_mut().expect("node is up")
    }

    pub fn up(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.totem.is_some()).map(|(id, _)| *id).collect()
    }

    /// Carries out the member's Ready exactly as a driver would.
    pub fn process(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).unwrap();
            let Some(totem) = node.totem.as_mut() else {
                return;
            };
            if !totem.has_ready() {
                node.deliveries.extend(totem.take_deliveries());
                return;
            }
            let ready = totem.ready();
            node.deliveries.extend(totem.take_deliveries());
            node.store.write(&ready);
            if let Some(s) = &ready.snapshot {
                node.applied = Applied::decode(&s.data);
            }
            // Eager messages leave first (before the sync, which is instant here).
            for env in ready.eager_messages.iter().chain(&ready.messages) {
                if self.record_sent {
                    node.sent.push((env.to, env.msg.clone()));
                }
            }
            if self.record_sent {
                node.readies.push(ReadyRecord {
                    entries: ready.entries.iter().map(|e| e.index).collect(),
                    eager_tokens: ready
                        .eager_messages
                        .iter()
                        .filter_map(|env| match &env.msg {
                            TotemMessage::Token(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect(),
                    hard_state: ready.hard_state.as_ref().map(|b| HardState::decode(b).unwrap()),
                    hard_state_lazy: ready.hard_state_lazy,
                });
            }
            for entry in &ready.committed {
                assert_eq!(
                    entry.index,
                    node.applied.index + 1,
                    "node {id} applies entry {} after {}",
                    entry.index,
                    node.applied.index
                );
                node.applied.index = entry.index;
                if entry.kind == EntryKind::Command {
                    node.applied.commands.insert(entry.index, entry.data.clone());
                }
                node.committed.push(entry.clone());
            }
            node.reads.extend(ready.reads.iter().copied());
            node.rejected.extend(ready.rejected.iter().cloned());
            node.totem.as_mut().expect("node is up").advance();
            if ready.snapshot_wanted
                && let Some(snapshot) = node.store.snapshot.clone()
            {
                node.totem.as_mut().expect("node is up").snapshot_loaded(snapshot);
            }
            for env in ready.eager_messages.into_iter().chain(ready.messages) {
                self.sequence += 1;
                let jitter = if self.latency_jitter_ms > 0 {
                    self.rng.below(self.latency_jitter_ms + 1)
                } else {
                    0
                };
                let at = self.now_ms + self.latency_ms + jitter;
                self.in_flight.push((at, self.sequence, id, env.to, env.msg));
            }
        }
    }

    /// Advances virtual time by `ms`: delivers due messages, ticks every member every
    /// `tick_interval_ms`.
    pub fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step_ms();
        }
    }

    /// Runs until `done` holds (checked every millisecond) or `max_ms` passed; returns whether
    /// it held.
    pub fn run_until(&mut self, max_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        for _ in 0..max_ms {
            if done(self) {
                return true;
            }
            self.step_ms();
        }
        done(self)
    }

    fn step_ms(&mut self) {
        self.now_ms += 1;
        let now = self.now_ms;
        self.in_flight.sort_by_key(|m| (m.0, m.1));
        let due: Vec<_> = {
            let split = self.in_flight.partition_point(|m| m.0 <= now);
            self.in_flight.drain(..split).collect()
        };
        for (_, _, from, to, msg) in due {
            if !self.deliverable(from, to, &msg) {
                continue;
            }
            if let Some(totem) = self.nodes.get_mut(&to).and_then(|n| n.totem.as_mut()) {
                totem.step(from, msg);
                self.process(to);
            }
        }
        if now.is_multiple_of(self.config.tick_interval_ms) {
            for id in self.up() {
                self.totem_mut(id).tick();
                self.process(id);
            }
        }
    }

    fn deliverable(&mut self, from: NodeId, to: NodeId, msg: &TotemMessage) -> bool {
        if self.blocked.contains(&(from, to)) {
            return false;
        }
        if let Some(filter) = self.filter.as_mut()
            && !filter(from, to, msg)
        {
            return false;
        }
        !(self.drop_rate > 0.0 && self.rng.chance(self.drop_rate))
    }

    /// Drops every message for which `keep` returns false.
    pub fn set_filter(
        &mut self,
        keep: impl FnMut(NodeId, NodeId, &TotemMessage) -> bool + 'static,
    ) {
        self.filter = Some(Box::new(keep));
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Cuts the network into the given groups (nodes in no group are cut from everyone).
    pub fn partition(&mut self, groups: &[&[u64]]) {
        self.blocked.clear();
        let group_of = |id: NodeId| groups.iter().position(|g| g.contains(&id.0));
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for &a in &ids {
            for &b in &ids {
                if a != b && (group_of(a).is_none() || group_of(a) != group_of(b)) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    /// Blocks messages from `a` to `b` only (an asymmetric partition).
    pub fn block(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a, b));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Stops the member; what it wrote without a sync is lost.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.totem = None;
        node.store.unsynced_hard_state = None;
    }

    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.committed.clear();
        node.deliveries.clear();
        node.reads.clear();
        node.rejected.clear();
        self.start(id);
    }

    /// Takes a snapshot of the member's applied state and hands it to the protocol.
    pub fn take_snapshot(&mut self, id: NodeId) -> u64 {
        let node = self.nodes.get_mut(&id).unwrap();
        let index = node.applied.index;
        let term = node.totem().entry(index).map_or(0, |e| e.term);
        let meta = SnapshotMeta { index, term, membership: self.membership.clone() };
        let snapshot = Snapshot { meta, data: node.applied.encode() };
        node.store.snapshot = Some(snapshot.clone());
        node.totem.as_mut().unwrap().snapshot_taken(snapshot);
        self.process(id);
        index
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Proposes `command` at `id`, wrapped in the driver's header; returns the request id.
    pub fn propose(&mut self, id: NodeId, command: &str) -> RequestId {
        let request = self.request_id();
        let data =
            Proposal { origin: id, request, command: Bytes::copy_from_slice(command.as_bytes()) }
                .encode();
        self.totem_mut(id).propose(request, data);
        self.process(id);
        request
    }

    pub fn read(&mut self, id: NodeId) -> RequestId {
        let request = self.request_id();
        self.totem_mut(id).read(request);
        self.process(id);
        request
    }

    /// The applied commands of `id`, decoded back to strings, in index order.
    pub fn applied_commands(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id]
            .applied
            .commands
            .values()
            .map(|data| {
                let p = Proposal::decode(data).expect("a proposal header");
                String::from_utf8(p.command.to_vec()).unwrap()
            })
            .collect()
    }

    pub fn is_applied(&self, id: NodeId, command: &str) -> bool {
        self.applied_commands(id).iter().any(|c| c == command)
    }

    /// Whether every listed member is operational on one ring made of exactly them.
    pub fn ring_of(&self, members: &[u64]) -> Option<RingId> {
        let want: Vec<NodeId> = members.iter().map(|&i| NodeId(i)).collect();
        let mut ring = None;
        for &id in &want {
            let t = self.nodes[&id].totem.as_ref()?;
            if t.state() != MembershipState::Operational || t.ring_members() != want {
                return None;
            }
            if ring.is_some_and(|r| Some(r) != t.ring_id()) {
                return None;
            }
            ring = t.ring_id();
        }
        ring
    }

    /// Checks that the applied states of all members are prefixes of one another (state
    /// machine safety).
    pub fn check_applied_prefixes(&self) {
        let all: Vec<(&NodeId, &Applied)> =
            self.nodes.iter().map(|(id, n)| (id, &n.applied)).collect();
        for (a, x) in &all {
            for (b, y) in &all {
                for (index, command) in &x.commands {
                    if *index <= y.index {
                        assert_eq!(
                            y.commands.get(index),
                            Some(command),
                            "nodes {a} and {b} applied different entries at {index}"
                        );
                    }
                }
            }
        }
    }
}
