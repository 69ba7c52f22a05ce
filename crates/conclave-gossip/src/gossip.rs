//! [`Gossip`]: one replica, its state, its recovery and its face as a [`Protocol`].
//!
//! The event handlers live beside this file: [`crate::exchange`] (scuttlebutt rounds),
//! [`crate::repair`] (Merkle comparison), [`crate::round`] (ticks: rounds, failure detection,
//! tombstone collection) and [`crate::write`] (client writes and the apply sequence).

use crate::apply_log::ApplyLog;
use crate::command::{self, Plan};
use crate::config::{GossipConfig, PlantedBug};
use crate::convergence::Convergence;
use crate::durable::{HLC_RESERVE_MS, HardState, Image};
use crate::error::GossipError;
use crate::flow::FlowControl;
use crate::hlc::{Clock, Hlc, Stamp};
use crate::members::{Liveness, Members};
use crate::message::{Body, Message, WireSize};
use crate::store::{LwwStore, Versioned};
use crate::versions::VersionVector;
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{
    ConsensusError, DetRng, Entry, EntryKind, Envelope, Guarantees, Membership, NodeId, Protocol,
    Ready, Recovered, Rejection, RequestId, Role, Snapshot, Status,
};
use std::collections::BTreeMap;

/// Effects accumulated until the next [`Protocol::ready`].
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub entries: Vec<Entry>,
    pub compact_to: Option<u64>,
    pub messages: Vec<Envelope<Message>>,
    pub rejected: Vec<Rejection>,
    pub hard_state_dirty: bool,
}

/// Monotonic counters, exported through [`Protocol::counters`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub rounds: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub updates_applied: u64,
    pub updates_refused: u64,
    pub merkle_rounds: u64,
    pub merkle_repairs: u64,
    pub tombstones_collected: u64,
    pub quorum_timeouts: u64,
    pub oversized_messages: u64,
}

/// One gossip replica: a deterministic, IO-free state machine.
#[derive(Debug)]
pub struct Gossip {
    pub(crate) id: NodeId,
    pub(crate) config: GossipConfig,
    pub(crate) rng: DetRng,
    pub(crate) ticks: u64,
    pub(crate) clock: Clock,
    pub(crate) store: LwwStore,
    pub(crate) members: Members,
    pub(crate) seeds: Vec<NodeId>,
    /// What this replica covers, per origin; its own entry is how far its writes are published.
    pub(crate) have: VersionVector,
    /// Per peer, the newest digest it sent: what it acknowledged holding.
    pub(crate) acked: BTreeMap<NodeId, VersionVector>,
    pub(crate) flow: FlowControl,
    pub(crate) log: ApplyLog,
    pub(crate) out: Outbox,
    pub(crate) generation: u64,
    pub(crate) hlc_reserved_ms: u64,
    pub(crate) convergence: Convergence,
    pub(crate) stats: Stats,
}

impl Gossip {
    /// Builds a replica from its configuration and what storage recovered.
    ///
    /// `membership` lists the initial members (seeds included); `config.seeds` names the nodes
    /// to join through (all initial members when empty). The first [`Ready`] persists a hard
    /// state with a new generation and hands out every recovered entry again, so the store —
    /// restored from its snapshot — applies them.
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: GossipConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Self, GossipError> {
        config.validate()?;
        let hard = match &recovered.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        let wall_clock_only = config.planted_bug == Some(PlantedBug::LwwByWallClockOnly);
        let mut store = LwwStore::new(wall_clock_only);
        store.restore_watermarks(hard.watermarks.iter().copied());
        let mut have = VersionVector::new();
        let start_ms = physical_ms(&config, 0);
        replay(id, &recovered.entries, &mut store, &mut have, start_ms)?;
        // Everything this replica wrote before the restart is published again at once.
        if let Some((last, _)) = store.origin_range(id, have.get(id), Hlc::new(u64::MAX, 0)).last()
        {
            have.raise(id, last);
        }
        let floor = Hlc::new(hard.hlc_reserved_ms.saturating_add(1), 0).max(store.max_hlc());
        let seeds = if config.seeds.is_empty() {
            membership.voters.iter().copied().filter(|&s| s != id).collect()
        } else {
            config.seeds.iter().copied().filter(|&s| s != id).collect()
        };
        let generation = hard.generation + 1;
        let members = Members::new(
            id,
            generation,
            membership.voters.iter().copied(),
            config.ticks(config.suspect_timeout_ms),
            config.ticks(config.dead_timeout_ms),
        );
        let snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let last_index =
            recovered.entries.last().map_or(snapshot_index, |e| e.index).max(snapshot_index);
        // The store was restored from the snapshot: it applies only what follows it (a crash
        // between a snapshot and the compaction it allows leaves older entries in the log).
        let mut unapplied = recovered.entries;
        unapplied.retain(|e| e.index > snapshot_index);
        let flow = FlowControl::new(config.flow_rate_min_per_round, config.flow_rate_max_per_round);
        Ok(Self {
            id,
            rng: DetRng::new(seed),
            ticks: 0,
            clock: Clock::new(floor),
            store,
            members,
            seeds,
            have,
            acked: BTreeMap::new(),
            flow,
            log: ApplyLog::new(last_index, unapplied),
            out: Outbox { hard_state_dirty: true, ..Outbox::default() },
            generation,
            hlc_reserved_ms: hard.hlc_reserved_ms,
            convergence: Convergence::default(),
            stats: Stats::default(),
            config,
        })
    }

    // ----- inspection -------------------------------------------------------------------

    /// The whole LWW map: every key with its value (or tombstone), stamp and apply time.
    pub fn map(&self) -> &BTreeMap<Bytes, Versioned> {
        self.store.map()
    }

    /// A key's newest write as held here.
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.store.get(key)
    }

    /// The key's value, if it holds one (not a tombstone).
    pub fn value(&self, key: &[u8]) -> Option<&Bytes> {
        self.store.get(key).and_then(|v| v.value.as_ref())
    }

    /// The current HLC reading.
    pub fn hlc(&self) -> Hlc {
        self.clock.now()
    }

    /// Members not declared dead (alive or suspect), this replica excluded.
    pub fn live_members(&self) -> Vec<NodeId> {
        self.members.live().collect()
    }

    pub fn suspect_members(&self) -> Vec<NodeId> {
        self.members.suspects().collect()
    }

    pub fn liveness(&self, id: NodeId) -> Option<Liveness> {
        self.members.liveness(id)
    }

    /// What this replica covers, per origin (its digest).
    pub fn version_vector(&self) -> &VersionVector {
        &self.have
    }

    /// What `peer` last acknowledged holding.
    pub fn acknowledged_by(&self, peer: NodeId) -> Option<&VersionVector> {
        self.acked.get(&peer)
    }

    /// How many writes held here `peer` lacks, as last learned from its digest.
    pub fn version_lag(&self, peer: NodeId) -> u64 {
        let empty = VersionVector::new();
        let acked = self.acked.get(&peer).unwrap_or(&empty);
        self.store.origins().map(|o| self.store.count_after(o, acked.get(o)) as u64).sum()
    }

    /// The Merkle root over the map.
    pub fn merkle_root(&self) -> u64 {
        self.store.merkle().root()
    }

    /// A hash of the live keys and their stamps: two replicas with the same values (whatever
    /// tombstones each still keeps) have the same digest.
    pub fn live_digest(&self) -> u64 {
        self.store.live_hash()
    }

    /// Collected-through watermarks, per Merkle leaf.
    pub fn watermarks(&self) -> &BTreeMap<u16, Stamp> {
        self.store.watermarks()
    }

    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Own writes applied here but not yet published to gossip (flow control's backlog).
    pub fn publish_backlog(&self) -> usize {
        self.store.count_after(self.id, self.have.get(self.id))
    }

    /// The replica's physical clock: ticks × interval plus the configured offset.
    pub fn physical_ms(&self) -> u64 {
        physical_ms(&self.config, self.ticks)
    }

    // ----- helpers shared by the handlers -----------------------------------------------

    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        let msg = Message { hlc: self.clock.now(), body };
        let size = msg.wire_size();
        if size > self.config.mtu_bytes {
            self.stats.oversized_messages += 1;
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += size as u64;
        self.out.messages.push(Envelope { to, msg });
    }

    pub(crate) fn reject(&mut self, request: RequestId, error: ConsensusError) {
        self.out.rejected.push(Rejection { request, error });
    }

    /// Persists a new HLC reservation once the clock passes the old one: before any message
    /// or entry carrying a later reading leaves this `Ready`.
    fn reserve_clock(&mut self) {
        let now = self.clock.now().physical_ms;
        if now >= self.hlc_reserved_ms {
            self.hlc_reserved_ms = now + HLC_RESERVE_MS;
            self.out.hard_state_dirty = true;
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            generation: self.generation,
            hlc_reserved_ms: self.hlc_reserved_ms,
            watermarks: self.store.watermarks().iter().map(|(&l, &s)| (l, s)).collect(),
        }
    }

    fn counter_values(&self) -> Vec<(&'static str, u64)> {
        let version_lag_max = self.members.live().map(|p| self.version_lag(p)).max().unwrap_or(0);
        vec![
            ("rounds_total", self.stats.rounds),
            ("messages_sent_total", self.stats.messages_sent),
            ("bytes_sent_total", self.stats.bytes_sent),
            ("oversized_messages_total", self.stats.oversized_messages),
            ("live_members", self.members.live_count() as u64),
            ("suspect_members", self.members.suspects().count() as u64),
            ("pruned_members_total", self.members.pruned_total()),
            ("version_lag_max", version_lag_max),
            ("convergence_ticks_last", self.convergence.last_ticks()),
            ("converged_writes_total", self.convergence.converged_total()),
            ("convergence_ticks_total", self.convergence.ticks_total()),
            ("keys", self.store.map().len() as u64),
            ("tombstones", self.store.tombstone_count() as u64),
            ("tombstones_collected_total", self.stats.tombstones_collected),
            ("updates_applied_total", self.stats.updates_applied),
            ("updates_refused_total", self.stats.updates_refused),
            ("merkle_rounds_total", self.stats.merkle_rounds),
            ("merkle_repairs_total", self.stats.merkle_repairs),
            ("flow_rate_per_round", self.flow.rate() as u64),
            ("publish_backlog", self.publish_backlog() as u64),
            ("write_quorum_timeouts_total", self.stats.quorum_timeouts),
        ]
    }
}

/// Physical time for a replica: `offset + ticks × interval`, never below zero.
pub(crate) fn physical_ms(config: &GossipConfig, ticks: u64) -> u64 {
    let elapsed = ticks.saturating_mul(config.tick_interval_ms);
    let ms = i128::from(config.clock_offset_ms) + i128::from(elapsed);
    ms.clamp(0, i128::from(u64::MAX)) as u64
}

/// Rebuilds the map from the newest image in `entries` and the entries after it.
fn replay(
    id: NodeId,
    entries: &[Entry],
    store: &mut LwwStore,
    have: &mut VersionVector,
    now_ms: u64,
) -> Result<(), GossipError> {
    let mut start = 0;
    for (pos, entry) in entries.iter().enumerate().rev() {
        if let Some(image) = Image::from_entry(entry) {
            let image = image?;
            for u in image.entries {
                store.set(u.key, u.value, u.stamp, now_ms);
            }
            *have = image.have;
            start = pos + 1;
            break;
        }
    }
    for entry in &entries[start..] {
        if entry.kind != EntryKind::Command {
            continue;
        }
        let Some(proposal) = Proposal::decode(&entry.data) else { continue };
        let first = Hlc::unpack(entry.term);
        if proposal.request == RequestId(0) {
            // A peer's write (or a repair tombstone) that won here: one key, stamped as logged.
            if let Some(w) = command::decode_write(&proposal.command) {
                store.set(w.key, w.value, Stamp::new(first, proposal.origin), now_ms);
            }
            continue;
        }
        // A client's command: planned again against the map as it stood, it yields the same
        // writes, stamped with consecutive readings from the logged first one.
        if let Plan::Writes(writes) = command::plan(&proposal.command, store) {
            for (i, w) in writes.into_iter().enumerate() {
                let stamp = Stamp::new(first.advance(i as u64), proposal.origin);
                store.set(w.key, w.value, stamp, now_ms);
                if proposal.origin == id {
                    have.raise(id, stamp.hlc);
                }
            }
        }
    }
    Ok(())
}

impl Protocol for Gossip {
    type Message = Message;

    fn name(&self) -> &'static str {
        "gossip"
    }

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.on_tick();
    }

    fn step(&mut self, from: NodeId, msg: Message) {
        self.on_message(from, msg);
    }

    fn propose(&mut self, id: RequestId, command: Bytes) {
        self.on_propose(id, command);
    }

    fn read(&mut self, id: RequestId) {
        self.reject(
            id,
            ConsensusError::Unsupported {
                protocol: "gossip",
                what: "linearizable reads (gossip is eventually consistent; read locally)".into(),
            },
        );
    }

    fn snapshot_taken(&mut self, snapshot: Snapshot) {
        self.on_snapshot_taken(snapshot);
    }

    fn has_ready(&self) -> bool {
        self.out.hard_state_dirty
            || self.clock.now().physical_ms >= self.hlc_reserved_ms
            || !self.out.entries.is_empty()
            || self.out.compact_to.is_some()
            || !self.out.messages.is_empty()
            || self.log.has_released()
            || !self.out.rejected.is_empty()
    }

    fn ready(&mut self) -> Ready<Message> {
        self.reserve_clock();
        let hard_state =
            std::mem::take(&mut self.out.hard_state_dirty).then(|| self.hard_state().encode());
        Ready {
            snapshot: None,
            hard_state,
            entries: std::mem::take(&mut self.out.entries),
            compact_to: self.out.compact_to.take(),
            messages: std::mem::take(&mut self.out.messages),
            committed: self.log.take_released(),
            reads: Vec::new(),
            rejected: std::mem::take(&mut self.out.rejected),
            ..Ready::default()
        }
    }

    fn status(&self) -> Status {
        let mut members: Vec<NodeId> = self.members.live().collect();
        members.push(self.id);
        members.sort();
        Status {
            id: self.id,
            protocol: "gossip",
            role: Role::Member,
            leader: None,
            term: 0,
            commit_index: self.log.commit_index(),
            applied_index: 0,
            members,
        }
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            linearizable_writes: false,
            linearizable_reads: false,
            atomic_compare_and_swap: false,
            has_leader: false,
            fault_tolerance: None,
        }
    }

    fn message_kind(&self, msg: &Message) -> &'static str {
        msg.body.kind()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counter_values()
    }
}
