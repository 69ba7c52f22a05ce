//! A small deterministic network of gossip replicas for the integration tests.
//!
//! Each node owns a real `KvStore` and a durable log kept the way the driver keeps it: hard
//! state, entries (with compaction) and the store's snapshot. Ticking the cluster ticks every
//! running node once and then delivers messages until none are in flight, so one tick is
//! enough for a whole Syn / Ack / Ack2 / Receipt exchange. Links can be cut in either
//! direction, and nodes crashed and restarted from what they persisted.

use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{
    Entry, EntryKind, Membership, NodeId, Protocol, Ready, Recovered, Rejection, RequestId,
    Snapshot, SnapshotMeta, StateMachine,
};
use conclave_gossip::{Gossip, GossipConfig, Message, WireSize};
use conclave_kv::{Command, DeleteRangeRequest, KvStore, Output, PutRequest, RangeRequest};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub fn id(n: u64) -> NodeId {
    NodeId(n)
}

pub fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<NodeId> {
    range.map(NodeId).collect()
}

/// What one node persisted and applied.
#[derive(Debug, Default)]
pub struct Disk {
    pub hard_state: Option<Bytes>,
    pub log: Vec<Entry>,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug)]
pub struct Node {
    pub gossip: Option<Gossip>,
    pub kv: KvStore,
    pub disk: Disk,
    pub outputs: BTreeMap<RequestId, Output>,
    pub rejected: Vec<Rejection>,
    pub config: GossipConfig,
    pub membership: Membership,
}

impl Node {
    pub fn gossip(&self) -> &Gossip {
        self.gossip.as_ref().expect("node is running")
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    in_flight: VecDeque<(NodeId, NodeId, Message)>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message delivered, with its encoded size, for budget checks.
    pub delivered: Vec<(NodeId, NodeId, &'static str, usize)>,
    next_request: u64,
}

impl Cluster {
    /// `n` nodes (ids 1..=n) that all know each other.
    pub fn new(n: u64, config: GossipConfig) -> Self {
        let members = ids(1..=n);
        let mut cluster = Self::empty();
        for &node in &members {
            cluster.add(node, Membership::new(members.iter().copied()), config.clone());
        }
        cluster
    }

    pub fn empty() -> Self {
        Self {
            nodes: BTreeMap::new(),
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            delivered: Vec::new(),
            next_request: 1,
        }
    }

    /// Starts a node knowing `membership` (its initial members and seeds).
    pub fn add(&mut self, node: NodeId, membership: Membership, config: GossipConfig) {
        let gossip =
            Gossip::new(node, membership.clone(), config.clone(), Recovered::default(), node.0)
                .expect("valid config");
        let state = Node {
            gossip: Some(gossip),
            kv: KvStore::new(),
            disk: Disk::default(),
            outputs: BTreeMap::new(),
            rejected: Vec::new(),
            config,
            membership,
        };
        self.nodes.insert(node, state);
        self.process(node);
    }

    pub fn node(&self, node: NodeId) -> &Node {
        &self.nodes[&node]
    }

    pub fn gossip(&self, node: NodeId) -> &Gossip {
        self.nodes[&node].gossip()
    }

    pub fn gossip_mut(&mut self, node: NodeId) -> &mut Gossip {
        self.nodes.get_mut(&node).and_then(|n| n.gossip.as_mut()).expect("node is running")
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.gossip.is_some()).map(|(&id, _)| id).collect()
    }

    // ----- client commands --------------------------------------------------------------

    pub fn propose(&mut self, node: NodeId, command: Command) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let data = Proposal { origin: node, request, command: command.encode() }.encode();
        self.gossip_mut(node).propose(request, data);
        self.process(node);
        request
    }

    pub fn put(&mut self, node: NodeId, key: &str, value: &str) -> RequestId {
        self.propose(node, Command::Put(PutRequest::new(key.to_owned(), value.to_owned())))
    }

    pub fn delete(&mut self, node: NodeId, key: &str) -> RequestId {
        self.propose(node, Command::DeleteRange(DeleteRangeRequest::key(key.to_owned())))
    }

    /// The value a node's gossip map holds for `key`.
    pub fn value(&self, node: NodeId, key: &str) -> Option<Bytes> {
        self.gossip(node).value(key.as_bytes()).cloned()
    }

    /// The value a node's key-value store holds for `key`.
    pub fn kv_value(&self, node: NodeId, key: &str) -> Option<Bytes> {
        let range = self.nodes[&node].kv.range(&RangeRequest::key(key.to_owned())).ok()?;
        range.kvs.first().map(|kv| kv.value.clone())
    }

    /// Every running node's store, as key → value.
    pub fn kv_contents(&self, node: NodeId) -> BTreeMap<Bytes, Bytes> {
        let all =
            self.nodes[&node].kv.range(&RangeRequest::prefix(Bytes::new())).unwrap_or_default();
        all.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
    }

    // ----- time and the network ---------------------------------------------------------

    /// Ticks every running node once, then delivers until nothing is in flight.
    pub fn tick(&mut self) {
        for node in self.running() {
            self.gossip_mut(node).tick();
            self.process(node);
        }
        self.deliver_all();
    }

    /// Ticks one node alone (the others' clocks stand still), then delivers.
    pub fn tick_only(&mut self, node: NodeId) {
        self.gossip_mut(node).tick();
        self.process(node);
        self.deliver_all();
    }

    pub fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Ticks until `done` holds or `limit` ticks passed; returns the ticks taken.
    pub fn ticks_until(
        &mut self,
        limit: u64,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Option<u64> {
        for t in 0..=limit {
            if done(self) {
                return Some(t);
            }
            self.tick();
        }
        None
    }

    pub fn deliver_all(&mut self) {
        let mut budget = 1_000_000;
        while let Some((from, to, msg)) = self.in_flight.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let Some(gossip) = self.nodes.get_mut(&to).and_then(|n| n.gossip.as_mut()) else {
                continue;
            };
            let size = postcard::to_allocvec(&msg).expect("encodes").len();
            assert_eq!(size, msg.wire_size(), "wire size must match postcard for {msg:?}");
            self.delivered.push((from, to, msg.body.kind(), size));
            gossip.step(from, msg);
            self.process(to);
        }
    }

    /// Drops every message between the two groups, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Cuts `node` off from everyone.
    pub fn isolate(&mut self, node: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&n| n != node).collect();
        self.partition(&[node], &others);
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    // ----- crashes ----------------------------------------------------------------------

    pub fn crash(&mut self, node: NodeId) {
        let n = self.nodes.get_mut(&node).expect("known node");
        n.gossip = None;
        n.kv = KvStore::new();
    }

    /// Restarts `node` from its disk; `clock_offset_ms` is its physical clock at restart.
    pub fn restart(&mut self, node: NodeId, clock_offset_ms: i64) {
        let n = self.nodes.get_mut(&node).expect("known node");
        let mut kv = KvStore::new();
        if let Some(snapshot) = &n.disk.snapshot {
            kv.restore(&snapshot.meta, &snapshot.data).expect("snapshot restores");
        }
        n.kv = kv;
        let recovered = Recovered {
            hard_state: n.disk.hard_state.clone(),
            snapshot: n.disk.snapshot.clone(),
            entries: n.disk.log.clone(),
        };
        let config = GossipConfig { clock_offset_ms, ..n.config.clone() };
        let gossip = Gossip::new(node, n.membership.clone(), config, recovered, node.0 ^ 0xABCD)
            .expect("recovers");
        n.gossip = Some(gossip);
        self.process(node);
    }

    /// Takes a store snapshot the way the driver does and tells the protocol.
    pub fn snapshot(&mut self, node: NodeId) {
        let n = self.nodes.get_mut(&node).expect("known node");
        let meta =
            SnapshotMeta { index: n.kv.applied_index(), term: 0, membership: n.membership.clone() };
        let snapshot = Snapshot { meta, data: n.kv.snapshot() };
        n.disk.snapshot = Some(snapshot.clone());
        n.gossip.as_mut().expect("running").snapshot_taken(snapshot);
        self.process(node);
    }

    /// Carries out a node's `Ready`s in the documented order.
    pub fn process(&mut self, node: NodeId) {
        loop {
            let n = self.nodes.get_mut(&node).expect("known node");
            let Some(gossip) = n.gossip.as_mut() else { return };
            if !gossip.has_ready() {
                return;
            }
            let ready: Ready<Message> = gossip.ready();
            if let Some(hs) = ready.hard_state {
                n.disk.hard_state = Some(hs);
            }
            if let Some(first) = ready.entries.first() {
                n.disk.log.retain(|e| e.index < first.index);
                n.disk.log.extend(ready.entries.iter().cloned());
            }
            if let Some(upto) = ready.compact_to {
                n.disk.log.retain(|e| e.index > upto);
            }
            for envelope in ready.messages {
                self.in_flight.push_back((node, envelope.to, envelope.msg));
            }
            let n = self.nodes.get_mut(&node).expect("known node");
            for entry in ready.committed {
                if entry.index <= n.kv.applied_index() {
                    continue;
                }
                match (entry.kind, Proposal::decode(&entry.data)) {
                    (EntryKind::Command, Some(p)) => {
                        let out = n.kv.apply(entry.index, Some(&p.command));
                        if p.origin == node && p.request != RequestId(0) {
                            n.outputs.insert(p.request, Output::decode(&out).expect("output"));
                        }
                    }
                    _ => {
                        n.kv.apply(entry.index, None);
                    }
                }
            }
            n.rejected.extend(ready.rejected);
        }
    }

    // ----- checks -----------------------------------------------------------------------

    /// Whether every running node (or those given) holds the same map and the same store
    /// contents.
    pub fn converged_among(&self, nodes: &[NodeId]) -> bool {
        let Some(&first) = nodes.first() else { return true };
        let root = self.gossip(first).merkle_root();
        let kv = self.kv_contents(first);
        nodes.iter().all(|&n| self.gossip(n).merkle_root() == root && self.kv_contents(n) == kv)
    }

    pub fn converged(&self) -> bool {
        self.converged_among(&self.running())
    }

    pub fn counter(&self, node: NodeId, name: &str) -> u64 {
        self.gossip(node)
            .counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
}

/// A config with short timeouts, so tests run in a few hundred ticks.
pub fn fast_config() -> GossipConfig {
    GossipConfig {
        tick_interval_ms: 10,
        gossip_interval_ms: 50,
        merkle_interval_ms: 200,
        suspect_timeout_ms: 300,
        dead_timeout_ms: 1_000,
        tombstone_grace_ms: 200,
        ..GossipConfig::default()
    }
}
