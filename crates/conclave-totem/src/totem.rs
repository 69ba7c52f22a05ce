//! The Totem member: its state, its construction from recovered storage, inspection for
//! checkers, and the effects it accumulates for the next `Ready`.
//!
//! The handlers live beside this file, by subject: `token` (the regular token and regular
//! messages, Totem §3), `membership` (gather and commit, Totem §4.2–4.3), `recovery` (Totem
//! §4.4 and the primary component's catch-up), `clients` (proposals and reads) and `protocol`
//! (the `conclave_core::Protocol` face).

use crate::config::Ticks;
use crate::counters::Counters;
use crate::delivery::{Delivered, DeliveryLog};
use crate::gather::Gather;
use crate::hard_state::HardState;
use crate::log::TotemLog;
use crate::recovery::Recovery;
use crate::ring::Ring;
use crate::{RingId, TotemConfig, TotemError, TotemMessage};
use bytes::Bytes;
use conclave_core::{
    DetRng, Entry, Envelope, HeldSnapshot, Membership, NodeId, ReadState, Recovered, Rejection,
    RequestId, Snapshot,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where a member is in the membership protocol (Totem §4, Figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MembershipState {
    /// On an installed ring, ordering messages.
    Operational,
    /// Agreeing on the members of the next ring.
    Gather,
    /// Passing the commit token around the next ring.
    Commit,
    /// Exchanging old-ring messages and catching up logs on the new ring.
    Recovery,
}

/// The phase with its own state.
#[derive(Debug)]
pub(crate) enum Phase {
    Gather(Gather),
    Commit(CommitWait),
    Recovery(Recovery),
    Operational,
}

/// Waiting for the commit token to come around.
#[derive(Clone, Debug)]
pub(crate) struct CommitWait {
    pub ring: RingId,
    pub elapsed: u64,
}

/// A request waiting for this member to hold the token.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    Propose(RequestId, Bytes),
    Read(RequestId),
}

/// Effects accumulated for the next `Ready`, other than the hard state.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub compact_to: Option<u64>,
    /// Messages that promise nothing about this Ready's writes (`Ready::eager_messages`).
    pub eager: Vec<Envelope<TotemMessage>>,
    pub messages: Vec<Envelope<TotemMessage>>,
    pub committed: Vec<Entry>,
    pub reads: Vec<ReadState>,
    pub rejected: Vec<Rejection>,
}

impl Outbox {
    /// Queues an entry to persist, keeping the batch contiguous: an entry that replaces part
    /// of the batch drops the replaced part (storage then replaces its own suffix).
    pub fn push_entry(&mut self, entry: Entry) {
        while self.entries.last().is_some_and(|e| e.index >= entry.index) {
            self.entries.pop();
        }
        self.entries.push(entry);
    }

    pub fn send(&mut self, to: NodeId, msg: TotemMessage) {
        self.messages.push(Envelope { to, msg });
    }

    /// Sends a message that may leave before this Ready's writes are durable.
    pub fn send_eager(&mut self, to: NodeId, msg: TotemMessage) {
        self.eager.push(Envelope { to, msg });
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.compact_to.is_none()
            && self.eager.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.rejected.is_empty()
    }
}

/// One member of a Totem cluster, as a deterministic state machine without IO.
///
/// Drive it through [`conclave_core::Protocol`]; see the crate documentation.
#[derive(Debug)]
pub struct Totem {
    pub(crate) id: NodeId,
    pub(crate) configured: Membership,
    pub(crate) config: TotemConfig,
    pub(crate) ticks: Ticks,
    pub(crate) rng: DetRng,
    /// Ticks since construction: the member's only clock.
    pub(crate) now: u64,

    // Durable state; `persisted` is the last hard state handed out.
    pub(crate) ring_seq_max: u64,
    pub(crate) log: TotemLog,
    pub(crate) committed: u64,
    pub(crate) installed: Option<RingId>,
    pub(crate) persisted: HardState,
    /// The latest snapshot: sent to members of a new primary component that lag behind. Its
    /// data is read back from the store when one does (`Ready::snapshot_wanted`).
    pub(crate) snapshot: HeldSnapshot,
    /// The last index handed out in `Ready::committed` (or covered by a snapshot).
    pub(crate) applied: u64,

    pub(crate) phase: Phase,
    /// The ring whose tokens this member processes (in Recovery and Operational).
    pub(crate) ring: Option<Ring>,
    /// The ring this member last installed, kept while the next one forms; `None` once the
    /// next is installed, and after a restart (the messages it held are gone).
    pub(crate) old: Option<Ring>,
    /// Log entries may be appended from this ring's messages: the ring that produced the
    /// log's tail. `None` once the log has been reported for a new ring's catch-up.
    pub(crate) log_ring: Option<RingId>,
    /// Whether the last ring installed in this incarnation was a primary component (`None`
    /// before the first).
    pub(crate) accepting: Option<bool>,
    /// What this member received on rings it has left (aru, and sequence numbers held above
    /// it), for checkers.
    pub(crate) ring_history: BTreeMap<RingId, (u64, Vec<u64>)>,

    /// The highest ring sequence number seen in each node's joins: a join below it was sent
    /// during an earlier gather of that node and is stale.
    pub(crate) join_seq_seen: BTreeMap<NodeId, u64>,
    /// When this member last received anything from each node (in ticks).
    pub(crate) last_heard: BTreeMap<NodeId, u64>,
    pub(crate) pending: VecDeque<Pending>,
    pub(crate) reads_in_flight: BTreeSet<RequestId>,
    pub(crate) deliveries: DeliveryLog,
    pub(crate) out: Outbox,
    /// The ring, and how far on it messages had been considered for the log, when the last
    /// `Ready` was handed out: once it is carried out, all of that is durable.
    pub(crate) handed: Option<(RingId, u64)>,
    pub(crate) counters: Counters,
}

/// How many left rings `ring_history` remembers.
const RING_HISTORY: usize = 16;

impl Totem {
    /// Builds a member from what storage recovered (or from nothing, on first start).
    ///
    /// `membership` is the configured set of members: a ring is the primary component when it
    /// holds a majority of it. The member starts gathering at once. Totem needs no randomness;
    /// `seed` only staggers join retransmissions.
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: TotemConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Totem, TotemError> {
        config.validate()?;
        if !membership.contains(id) {
            return Err(TotemError::NotConfigured(id));
        }
        let hard = match &recovered.hard_state {
            Some(bytes) => HardState::decode(bytes)?,
            None => HardState::default(),
        };
        let log =
            TotemLog::recovered(recovered.snapshot.as_ref().map(|s| &s.meta), recovered.entries)?;
        let base = log.snapshot_index();
        let committed = hard.committed.clamp(base, log.last_index());
        let ticks = config.ticks();
        let mut totem = Totem {
            id,
            configured: membership,
            config,
            ticks,
            rng: DetRng::new(seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            now: 0,
            ring_seq_max: hard.ring_seq_max.max(hard.ring.map_or(0, |r| r.seq)),
            log,
            committed: base,
            installed: hard.ring,
            persisted: hard,
            snapshot: HeldSnapshot::new(recovered.snapshot),
            applied: base,
            phase: Phase::Operational,
            ring: None,
            old: None,
            log_ring: None,
            accepting: None,
            ring_history: BTreeMap::new(),
            join_seq_seen: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            pending: VecDeque::new(),
            reads_in_flight: BTreeSet::new(),
            deliveries: DeliveryLog::default(),
            out: Outbox::default(),
            handed: None,
            counters: Counters::default(),
        };
        // The state machine was restored from the snapshot only: replay the rest.
        totem.commit_to(committed);
        // Start by inviting every configured member: those that answer form the first ring
        // together, and the consensus timeout leaves out those that do not.
        let everyone: Vec<NodeId> = totem.configured.voters.iter().copied().collect();
        totem.enter_gather(everyone);
        Ok(totem)
    }

    // ---- Inspection, for the simulator's checkers and for tests. ----

    pub fn configured(&self) -> &Membership {
        &self.configured
    }

    pub fn config(&self) -> &TotemConfig {
        &self.config
    }

    /// The ring this member is on (forming or installed), else the last one it installed.
    pub fn ring_id(&self) -> Option<RingId> {
        self.ring.as_ref().map(|r| r.id).or(self.installed)
    }

    pub fn state(&self) -> MembershipState {
        match self.phase {
            Phase::Gather(_) => MembershipState::Gather,
            Phase::Commit(_) => MembershipState::Commit,
            Phase::Recovery(_) => MembershipState::Recovery,
            Phase::Operational => MembershipState::Operational,
        }
    }

    /// The members of the ring this member is on, else of the ring it last installed.
    pub fn ring_members(&self) -> Vec<NodeId> {
        match self.ring.as_ref().or(self.old.as_ref()) {
            Some(ring) => ring.members.clone(),
            None => vec![self.id],
        }
    }

    /// The global delivered sequence: entries up to here are committed and applied.
    pub fn delivered_index(&self) -> u64 {
        self.committed
    }

    /// The token's aru as this member last saw it.
    pub fn token_aru(&self) -> u64 {
        self.ring.as_ref().map_or(0, |r| r.last_seen_aru)
    }

    /// Whether this member is operational on a ring that holds a majority of the configured
    /// members (and so accepts writes and linearizable reads).
    pub fn is_primary(&self) -> bool {
        matches!(self.phase, Phase::Operational) && self.ring.as_ref().is_some_and(|r| r.primary)
    }

    /// Delivery events not yet taken, oldest first.
    pub fn deliveries(&self) -> impl Iterator<Item = &Delivered> {
        self.deliveries.events()
    }

    /// Takes the delivery events accumulated so far (checkers drain them after every step).
    pub fn take_deliveries(&mut self) -> Vec<Delivered> {
        self.deliveries.take()
    }

    /// How many delivery events this member produced since it was built. Events are numbered
    /// from 0; the log keeps the latest few thousand.
    pub fn deliveries_total(&self) -> u64 {
        self.deliveries.total()
    }

    /// The delivery events numbered `from` on, with their numbers (for checkers that cannot
    /// drain the log; events no longer held are skipped).
    pub fn deliveries_since(&self, from: u64) -> impl Iterator<Item = (u64, &Delivered)> {
        self.deliveries.since(from)
    }

    /// Whether this member received regular message `seq` of `ring` (on a ring it is on, or
    /// one of the last rings it left). Forgotten on restart.
    pub fn has_received(&self, ring: RingId, seq: u64) -> bool {
        for r in [self.ring.as_ref(), self.old.as_ref()].into_iter().flatten() {
            if r.id == ring {
                return r.buffer.has(seq);
            }
        }
        self.ring_history.get(&ring).is_some_and(|(aru, above)| seq <= *aru || above.contains(&seq))
    }

    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The highest ring sequence number this member has seen.
    pub fn ring_seq_max(&self) -> u64 {
        self.ring_seq_max
    }

    // ---- Helpers shared by the handlers. ----

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            ring_seq_max: self.ring_seq_max,
            ring: self.installed,
            committed: self.committed,
        }
    }

    /// Whether a ring with these members is a primary component: it holds a majority of the
    /// configured members.
    pub(crate) fn is_primary_set(&self, members: &[NodeId]) -> bool {
        if self.config.planted_bug == Some(crate::PlantedBug::MinorityAcceptsWrites) {
            return true;
        }
        members.iter().filter(|m| self.configured.contains(**m)).count() >= self.configured.quorum()
    }

    /// Commits every entry up to `to` and hands the new ones out for applying.
    pub(crate) fn commit_to(&mut self, to: u64) {
        if to <= self.committed {
            return;
        }
        assert!(
            to <= self.log.last_index(),
            "committing through {to} but the log ends at {}",
            self.log.last_index()
        );
        self.committed = to;
        for index in self.applied + 1..=to {
            let entry = self.log.entry(index).cloned().unwrap_or_else(|| {
                panic!(
                    "entry {index} to apply is not in the log (first {})",
                    self.log.first_index()
                )
            });
            self.out.committed.push(entry);
        }
        self.applied = self.applied.max(to);
    }

    /// Appends entries of `ring`'s messages received in order since the last call, if the
    /// log's tail comes from that ring.
    pub(crate) fn extend_log(&mut self, ring: &mut Ring) {
        use crate::message::{Body, Content};
        while ring.log_seq < ring.buffer.aru() {
            ring.log_seq += 1;
            if self.log_ring != Some(ring.id) {
                continue;
            }
            let Some(Content::Regular(payload)) = ring.buffer.get(ring.log_seq) else {
                continue;
            };
            let Body::Entries(entries) = &payload.body else {
                continue;
            };
            for entry in entries {
                if entry.index == self.log.last_index() + 1 {
                    self.log.append(entry.clone());
                    self.out.push_entry(entry.clone());
                } else if entry.index > self.log.last_index() {
                    // A hole in the indexes: this log no longer follows the ring.
                    self.log_ring = None;
                    break;
                }
            }
        }
    }

    /// Leaves `ring` for good, remembering how far it got for checkers.
    pub(crate) fn forget_ring(&mut self, ring: &Ring) {
        if ring.buffer.high_received() == 0 {
            // Nothing was received there: nothing to remember.
            return;
        }
        self.ring_history.insert(ring.id, (ring.buffer.aru(), ring.buffer.above_aru()));
        while self.ring_history.len() > RING_HISTORY {
            self.ring_history.pop_first();
        }
    }

    pub(crate) fn unavailable(&self) -> conclave_core::ConsensusError {
        let (ring, members) = match &self.ring {
            Some(r) => (r.id.to_string(), r.members.len()),
            None => ("none".to_string(), 0),
        };
        conclave_core::ConsensusError::Unavailable(format!(
            "not in the primary component (ring {ring} has {members} of {} configured members, \
             {} needed)",
            self.configured.voters.len(),
            self.configured.quorum()
        ))
    }
}
