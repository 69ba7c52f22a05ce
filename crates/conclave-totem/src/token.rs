//! The ordering protocol (Totem §3): the regular token, regular messages, retransmission,
//! flow control, and agreed and safe delivery.
//!
//! Only the token holder broadcasts, stamping each message with the token's next sequence
//! number, so sequence numbers give a total order. The token's `aru` is lowered by any member
//! that lacks a message and raised again only by that member, so when the token comes back to
//! a member with `aru ≥ s` on two successive visits, every member had every message up to `s`
//! during the rotation in between: `s` may be delivered in safe order.
//!
//! "Had" means "held durably": a member counts in its aru only the messages whose entries its
//! store has synced. That lets the token and the regular messages leave before this member's
//! own writes are durable (`Ready::eager_messages`), so the ring does not stop at every member
//! for an `fdatasync`:
//!
//! - a regular message promises nothing about the sender's disk: receivers store it on their
//!   own, and it counts towards safe delivery only through their arus;
//! - the token promises only its aru, and on an open operational ring this member's share of it
//!   is capped at what its store has synced ([`Ring::durable_seq`], advanced by
//!   `Protocol::advance`). Its own broadcasts of this visit, and messages received since its
//!   last `Ready`, are acknowledged on a later visit instead. While a ring is being installed
//!   the token still waits for the sync: recovery's bookkeeping on it assumes full arus.
//!
//! Proposals queued at a member are batched: one regular message carries up to
//! [`MAX_BATCH_COMMANDS`] commands (about [`MAX_BATCH_BYTES`]), so that the window, which counts
//! messages, does not throttle many clients, and one sequence number and one acknowledgement
//! cover a whole batch.
//!
//! An idle ring does not spin its token: once every member has delivered everything, the
//! representative keeps it for up to `token_hold_ms` (a heartbeat rotation follows each hold).
//! A request at the representative takes it at once; one elsewhere sends a `Wake`.

use crate::delivery::{Delivered, DeliveredMessage, DeliveredWhat};
use crate::message::{Body, Content, Mcast, MergeDetect, Payload, Token};
use crate::ring::Ring;
use crate::totem::{Pending, Phase, Totem};
use crate::{Delivery, RingId, TotemMessage};
use conclave_core::{Entry, NodeId, ReadState};

/// Most commands one regular message carries.
pub(crate) const MAX_BATCH_COMMANDS: usize = 128;
/// A batch is closed once its commands reach this many bytes (a single larger command still
/// travels alone).
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Quiet visits of the token to the representative before it may rest there. After the first,
/// every member had passed on `aru == seq` once; after the second, every member had seen it
/// twice in a row and so delivered everything (safe order included). The token rests on the
/// third: a member whose answer waits on a delivery never waits for the hold.
pub(crate) const QUIET_VISITS_BEFORE_REST: u32 = 3;

impl Totem {
    pub(crate) fn on_token(&mut self, token: Token) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        if token.ring != ring.id || ring.last_token_seq.is_some_and(|last| token.token_seq <= last)
        {
            // Another ring's token, or a retransmitted or delayed copy (Totem §3.3).
            return;
        }
        ring.last_token_seq = Some(token.token_seq);
        ring.since_token = 0;
        ring.forwarded = None;
        self.visit(token, true);
    }

    /// Whether the token may rest at this member after this visit: it is the representative of
    /// an open ring, nobody asked for the token, nothing is queued here, and the ring has been
    /// quiet for [`QUIET_VISITS_BEFORE_REST`] visits, so every member has delivered everything.
    fn may_rest(&self, ring: &Ring, t: &Token) -> bool {
        self.ticks.token_hold > 0
            && matches!(self.phase, Phase::Operational)
            && ring.open
            && ring.id.rep == self.id
            && !ring.woken
            && ring.quiet_visits >= QUIET_VISITS_BEFORE_REST
            && t.recovery.is_none()
            && t.rtr.is_empty()
            && ring.buffer.delivered == t.seq
            && self.pending.is_empty()
    }

    /// Processes a held token now (a proposal or read arrived, or the hold expired) and
    /// passes it on: a released token does not rest again before a rotation.
    pub(crate) fn release_held(&mut self) {
        if let Some(token) = self.ring.as_mut().and_then(|r| r.held.take()) {
            self.visit(token, false);
        }
    }

    /// One visit of the token at this member; `may_rest`: the representative may keep it
    /// afterwards if the ring is idle.
    pub(crate) fn visit(&mut self, mut t: Token, may_rest: bool) {
        let mut ring = self.ring.take().expect("a token visit needs a ring");
        let me = self.id;
        self.counters.token_rotations += 1;
        if let Some(at) = ring.last_visit_at {
            self.counters.token_rotation_ticks = self.now - at;
        }
        ring.last_visit_at = Some(self.now);
        ring.wake_sent = false;
        // Quiet: nothing stamped since this member last passed the token, every member holds
        // everything, nobody has anything queued or missing.
        let quiet = t.seq == ring.last_forwarded_seq
            && t.aru == t.seq
            && t.backlog == 0
            && t.rtr.is_empty()
            && t.recovery.is_none();
        ring.idle_seen = quiet;
        ring.quiet_visits = if quiet { ring.quiet_visits.saturating_add(1) } else { 0 };
        // The token may leave before this visit's writes are durable only on an open ring in
        // normal operation; its aru then counts only what is synced here (module docs).
        let eager = matches!(self.phase, Phase::Operational) && ring.open && t.recovery.is_none();
        if self.out.entries.is_empty() && self.out.snapshot.is_none() {
            // Nothing received since the last `Ready` waits for the disk.
            ring.durable_seq = ring.durable_seq.max(ring.log_seq);
        }
        ring.last_token_seq = Some(ring.last_token_seq.unwrap_or(0).max(t.token_seq));
        ring.since_token = 0;
        ring.buffer.note_seen(t.seq);
        let received_aru = t.aru;
        ring.last_seen_aru = received_aru;

        // Flow control (Totem §3.5): what others sent during the last rotation counts against
        // the window; this member may send at most its share of it, and no more per visit.
        let window = self.config.window_size;
        let others = t.fcc.saturating_sub(ring.prev_sent);
        let budget = window.saturating_sub(others).min(self.config.max_messages_per_visit);
        let mut sent = 0;

        // Retransmit what others asked for and this member has (Totem §3.3).
        for seq in std::mem::take(&mut t.rtr) {
            match ring.buffer.get(seq) {
                Some(content) if sent < budget => {
                    let m = Mcast { ring: ring.id, seq, content: content.clone() };
                    self.broadcast(&ring, m);
                    sent += 1;
                    self.counters.retransmits += 1;
                }
                _ => t.rtr.push(seq),
            }
        }

        if matches!(self.phase, Phase::Operational)
            && !ring.open
            && t.recovery.as_ref().is_none_or(|p| p.installed.len() == ring.members.len())
        {
            self.open_ring(&mut ring);
        }

        let mine = self.backlog(&ring);
        let total = t.backlog.saturating_sub(ring.prev_backlog).saturating_add(mine);
        let share = if total == 0 {
            0
        } else {
            (u64::from(window) * u64::from(mine)).div_ceil(u64::from(total))
        };
        let room = (t.aru + u64::from(window)).saturating_sub(t.seq);
        let allowed = u64::from(budget.saturating_sub(sent)).min(share).min(room) as u32;
        sent += self.broadcast_new(&mut ring, &mut t, allowed);

        // The aru rule (Totem §3.2). A token that waits for this Ready's sync may count
        // everything received; an eager one only what is already durable.
        let my_aru =
            if eager { ring.buffer.aru().min(ring.durable_seq) } else { ring.buffer.aru() };
        if my_aru < t.aru || t.aru_id == Some(me) || t.aru_id.is_none() {
            t.aru = my_aru;
            t.aru_id = if t.aru >= t.seq { None } else { Some(me) };
        }
        // Ask only for messages stamped before this member last passed the token: those
        // stamped since may still be on their way (the holder sends them to each member
        // directly, while the token takes the ring), and asking now would only retransmit them.
        let overdue = ring.last_forwarded_seq.min(t.seq);
        for seq in ring.buffer.missing(overdue, window as usize) {
            if t.rtr.len() >= window as usize {
                break;
            }
            if !t.rtr.contains(&seq) {
                t.rtr.push(seq);
            }
        }
        // Safe: the aru was at least this high when this member last forwarded the token and
        // still is after a whole rotation.
        let safe = received_aru.min(ring.last_forwarded_aru.unwrap_or(0));
        ring.safe = ring.safe.max(safe);

        self.extend_log(&mut ring);
        self.deliver(&mut ring);

        if matches!(self.phase, Phase::Recovery(_)) {
            self.recovery_step(&mut ring, &mut t, sent > 0);
            if matches!(self.phase, Phase::Operational)
                && t.recovery.as_ref().is_some_and(|p| p.installed.len() == ring.members.len())
            {
                // The last member to install opens the ring at once.
                self.open_ring(&mut ring);
            }
        }
        if ring.open {
            t.recovery = None;
        }

        t.fcc = others + sent;
        ring.prev_sent = sent;
        let backlog = self.backlog(&ring);
        t.backlog = t.backlog.saturating_sub(ring.prev_backlog).saturating_add(backlog);
        ring.prev_backlog = backlog;

        t.token_seq += 1;
        ring.last_forwarded_aru = Some(t.aru);
        ring.last_forwarded_seq = t.seq;
        let next = ring.next_after(me);
        // The representative of an idle ring keeps the token for up to `token_hold_ms` instead
        // of spinning it: a request here takes it at once, one elsewhere sends a `Wake`.
        let rest = may_rest && sent == 0 && self.may_rest(&ring, &t);
        if next == me || rest {
            // Resting, or a ring of one: the token is processed again when released (by a
            // request, a wake or the end of the hold; at the next tick in a ring of one).
            ring.held = Some(t);
            ring.held_for = 0;
        } else {
            ring.woken = false;
            ring.forwarded = Some(t.clone());
            ring.since_forward = 0;
            if eager {
                self.out.send_eager(next, TotemMessage::Token(t));
            } else {
                self.out.send(next, TotemMessage::Token(t));
            }
        }
        self.ring = Some(ring);
    }

    /// Messages this member has waiting to be broadcast on `ring` (proposals counted in
    /// batches).
    fn backlog(&self, ring: &Ring) -> u32 {
        let n = match &self.phase {
            Phase::Recovery(rec) => rec.queue.len(),
            Phase::Operational if ring.open => self.pending_messages(),
            _ => 0,
        };
        n.min(u32::MAX as usize) as u32
    }

    /// How many regular messages the pending requests make: each read marker is one, and runs
    /// of proposals are batched.
    fn pending_messages(&self) -> usize {
        let (mut messages, mut run) = (0, 0);
        for pending in &self.pending {
            match pending {
                Pending::Propose(..) => {
                    if run == 0 {
                        messages += 1;
                    }
                    run = (run + 1) % MAX_BATCH_COMMANDS;
                }
                Pending::Read(_) => {
                    messages += 1;
                    run = 0;
                }
            }
        }
        messages
    }

    /// Takes the next batch of queued proposals (at least one; the caller saw one at the
    /// front), stamping them with consecutive global indexes.
    fn take_batch(&mut self, t: &mut Token, term: u64) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(self.pending.len().min(MAX_BATCH_COMMANDS));
        let mut bytes = 0;
        while entries.len() < MAX_BATCH_COMMANDS {
            let fits = match self.pending.front() {
                Some(Pending::Propose(_, data)) => {
                    entries.is_empty() || bytes + data.len() <= MAX_BATCH_BYTES
                }
                _ => false,
            };
            if !fits {
                break;
            }
            let Some(Pending::Propose(_, data)) = self.pending.pop_front() else {
                unreachable!("the front was just seen to be a proposal");
            };
            bytes += data.len();
            t.index += 1;
            entries.push(Entry::command(t.index, term, data));
        }
        entries
    }

    /// Broadcasts up to `allowed` new messages: old-ring messages in recovery, proposals and
    /// read markers once the ring is open.
    fn broadcast_new(&mut self, ring: &mut Ring, t: &mut Token, allowed: u32) -> u32 {
        let mut count = 0;
        while count < allowed {
            let content = match &mut self.phase {
                Phase::Recovery(rec) => match rec.queue.pop_front() {
                    Some(old) => Content::Recovered(old),
                    None => break,
                },
                Phase::Operational if ring.open => match self.pending.front() {
                    Some(Pending::Propose(..)) => {
                        let entries = self.take_batch(t, ring.id.seq);
                        Content::Regular(Payload { origin: self.id, body: Body::Entries(entries) })
                    }
                    Some(Pending::Read(request)) => {
                        let request = *request;
                        self.pending.pop_front();
                        self.reads_in_flight.insert(request);
                        let body = Body::Read { request, index: t.index };
                        Content::Regular(Payload { origin: self.id, body })
                    }
                    None => break,
                },
                _ => break,
            };
            t.seq += 1;
            ring.buffer.insert(t.seq, content.clone());
            self.broadcast(ring, Mcast { ring: ring.id, seq: t.seq, content });
            count += 1;
        }
        count
    }

    /// Sends a regular message to every other member of the ring. It promises nothing about
    /// this member's disk, so it leaves before this Ready's sync (module docs).
    fn broadcast(&mut self, ring: &Ring, m: Mcast) {
        for to in ring.others(self.id) {
            self.out.send_eager(to, TotemMessage::Mcast(m.clone()));
        }
    }

    pub(crate) fn on_mcast(&mut self, m: Mcast) {
        if let Some(mut ring) = self.ring.take() {
            if ring.id == m.ring {
                if ring.forwarded.as_ref().is_some_and(|f| m.seq > f.seq) {
                    // A later holder broadcast: the token got through.
                    ring.forwarded = None;
                }
                if ring.buffer.insert(m.seq, m.content.clone()) {
                    if let Content::Recovered(old) = &m.content {
                        self.take_recovered(old);
                    }
                    self.extend_log(&mut ring);
                    self.deliver(&mut ring);
                }
                self.ring = Some(ring);
                return;
            }
            self.ring = Some(ring);
        }
        // A late message of the old ring still helps recovery, until the old ring's state has
        // been reported.
        if let Some(mut old) = self.old.take() {
            if old.id == m.ring
                && !old.frozen
                && matches!(m.content, Content::Regular(_))
                && old.buffer.insert(m.seq, m.content)
            {
                self.extend_log(&mut old);
            }
            self.old = Some(old);
        }
    }

    /// Delivers, in sequence order, every message that may be: agreed-order ones once all
    /// before them arrived, safe-order ones once also held by every member.
    pub(crate) fn deliver(&mut self, ring: &mut Ring) {
        if !ring.open {
            return;
        }
        let commit_safe = self.config.effective_delivery() == Delivery::Safe;
        while ring.buffer.delivered < ring.buffer.aru() {
            let seq = ring.buffer.delivered + 1;
            if let Some(Content::Regular(payload)) = ring.buffer.get(seq) {
                let needs_safe = match payload.body {
                    Body::Entries(_) => commit_safe,
                    Body::Read { .. } => true,
                };
                if needs_safe && seq > ring.safe {
                    break;
                }
                self.record_delivery(ring.id, seq, payload);
                match &payload.body {
                    Body::Entries(entries) => {
                        if let Some(last) = entries.last().filter(|_| ring.primary) {
                            self.commit_to(last.index);
                        }
                    }
                    &Body::Read { request, index } => {
                        if payload.origin == self.id && self.reads_in_flight.remove(&request) {
                            self.out.reads.push(ReadState { request, index });
                        }
                    }
                }
            }
            ring.buffer.delivered = seq;
        }
        ring.buffer.free_up_to(ring.safe);
    }

    /// Adds a delivered message to the delivery log, with the order this member claims.
    pub(crate) fn record_delivery(&mut self, ring: RingId, seq: u64, payload: &Payload) {
        let (order, what) = match &payload.body {
            Body::Entries(entries) => {
                // A batch is recorded by its last entry: the one its delivery commits through.
                let (index, term) = entries.last().map_or((0, 0), |e| (e.index, e.term));
                (self.config.delivery, DeliveredWhat::Entry { index, term })
            }
            Body::Read { .. } => (Delivery::Safe, DeliveredWhat::Read),
        };
        self.deliveries.push(Delivered::Message(DeliveredMessage {
            ring,
            seq,
            origin: payload.origin,
            order,
            what,
        }));
    }

    /// The ring's timers: token loss, token retransmission, the hold, merge detection.
    pub(crate) fn tick_ring(&mut self) {
        let me = self.id;
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        ring.since_token += 1;
        if ring.held.is_some() {
            ring.held_for += 1;
            if ring.held_for >= self.ticks.token_hold.max(1) {
                self.release_held();
            }
            self.tick_merge_detect();
            return;
        }
        if ring.since_token >= self.ticks.token_timeout {
            // Token loss (Totem §4.1): form a new ring.
            self.counters.token_losses += 1;
            self.enter_gather([]);
            return;
        }
        if let Some(t) = &ring.forwarded {
            ring.since_forward += 1;
            if ring.since_forward >= self.ticks.token_retransmit {
                ring.since_forward = 0;
                let next = ring.next_after(me);
                let t = t.clone();
                self.counters.token_retransmits += 1;
                self.out.send(next, TotemMessage::Token(t));
            }
        }
        self.tick_merge_detect();
    }

    /// The representative of an operational ring that lacks configured members announces it to
    /// them now and then, so that rings split by a partition find each other after it heals.
    fn tick_merge_detect(&mut self) {
        let me = self.id;
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        if !matches!(self.phase, Phase::Operational) || ring.id.rep != me {
            return;
        }
        ring.since_merge_detect += 1;
        if ring.since_merge_detect < self.ticks.merge_timeout {
            return;
        }
        ring.since_merge_detect = 0;
        let outside: Vec<NodeId> =
            self.configured.voters.iter().copied().filter(|m| !ring.members.contains(m)).collect();
        let window = 3 * self.ticks.merge_timeout;
        let heard =
            self.last_heard.iter().filter(|(_, at)| self.now <= **at + window).map(|(m, _)| *m);
        let md = MergeDetect { ring: ring.id, heard: heard.collect() };
        for to in outside {
            self.out.send(to, TotemMessage::MergeDetect(md.clone()));
        }
    }
}
