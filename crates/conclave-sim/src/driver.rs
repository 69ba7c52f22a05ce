//! The replica side of the simulation: feeding a protocol its events and carrying out each
//! `Ready` exactly as the real driver does, in the order `conclave_core::protocol` prescribes —
//! persist and sync, then send, then apply (matching entries to waiting clients through the
//! proposal header), then serve reads and answer rejections — plus crashes and restarts.

use crate::clients::{OpKind, Reply, Request};
use crate::events::Event;
use crate::kv_ops;
use crate::node::{TornWrite, Waiting};
use crate::protocols::{Checker, Cluster, Observation, SimProtocol};
use crate::simulation::Phase;
use crate::{Simulation, Violation};
use conclave_core::proposal::Proposal;
use conclave_core::{
    Entry, EntryKind, Envelope, Ready, Role, Snapshot, SnapshotMeta, StateMachine,
};
use conclave_storage::{LogStore, WriteBatch};

impl<P: SimProtocol> Simulation<P> {
    /// Builds replica `node` from its storage and starts its clock.
    pub(crate) fn start_node(&mut self, node: usize, restarted: bool) {
        let seed = self.rngs.nodes.next_u64();
        let n = &mut self.nodes[node];
        let recovered = n.store.recover();
        n.applied = 0;
        n.applied_term = 0;
        n.snapshot_index = 0;
        if let Some(snapshot) = &recovered.snapshot {
            if let Err(error) = n.kv.restore(&snapshot.meta, &snapshot.data) {
                let detail =
                    format!("n{} cannot restore its recovered snapshot: {error}", node + 1);
                return self.fail(Violation::new(self.now_us, "recovery", detail));
            }
            n.applied = snapshot.meta.index;
            n.applied_term = snapshot.meta.term;
            n.snapshot_index = snapshot.meta.index;
        }
        let applied = n.applied;
        match P::build(n.id, &self.membership, &self.setup.protocol, recovered, seed) {
            Ok(protocol) => n.protocol = Some(protocol),
            Err(error) => {
                let detail = format!("n{} cannot restart from its storage: {error}", node + 1);
                return self.fail(Violation::new(self.now_us, "recovery", detail));
            }
        }
        self.safety.restarted(node, applied);
        // A random phase, so that replicas do not tick in lockstep.
        let first_tick = self.now_us + self.rngs.nodes.range_inclusive(1, self.nodes[node].tick_us);
        let incarnation = self.nodes[node].incarnation;
        self.agenda.schedule(first_tick, Event::Tick { node, incarnation });
        if restarted {
            self.observe(node, &[], None, &[], true);
            self.drive(node);
        }
    }

    pub(crate) fn tick(&mut self, node: usize, incarnation: u32) {
        let n = &mut self.nodes[node];
        if n.incarnation != incarnation {
            return;
        }
        let Some(protocol) = n.protocol.as_mut() else { return };
        protocol.tick();
        let next = self.now_us + n.tick_us;
        self.agenda.schedule(next, Event::Tick { node, incarnation });
        self.drive(node);
    }

    pub(crate) fn deliver(&mut self, from: usize, to: usize, msg: P::Message) {
        if self.network.is_blocked(from, to) {
            self.network.stats.blocked += 1;
            return;
        }
        let sender = self.nodes[from].id;
        let Some(protocol) = self.nodes[to].protocol.as_mut() else { return };
        protocol.step(sender, msg);
        self.drive(to);
    }

    /// A client request reached replica `node` (lost if it is down: the client times out).
    pub(crate) fn node_request(&mut self, node: usize, request: Request) {
        let n = &mut self.nodes[node];
        if !n.is_up() {
            return;
        }
        let id = n.request_id();
        match kv_ops::command(&request.key, &request.kind) {
            Some(command) => {
                let data = Proposal { origin: n.id, request: id, command: command.encode() };
                n.waiting.insert(id, Waiting::from(request));
                n.protocol.as_mut().expect("up").propose(id, data.encode());
            }
            None if self.guarantees.linearizable_reads => {
                n.waiting.insert(id, Waiting::from(request));
                n.protocol.as_mut().expect("up").read(id);
            }
            None => {
                // No linearizable reads on offer: serve what this replica has applied.
                let reply = kv_ops::read(&n.kv, &request.key);
                return self.send_reply(request.client, request.op, reply);
            }
        }
        self.drive(node);
    }

    /// Drains and carries out every `Ready` the replica has.
    pub(crate) fn drive(&mut self, node: usize) {
        while self.violation.is_none() {
            let Some(protocol) = self.nodes[node].protocol.as_mut() else { return };
            if !protocol.has_ready() {
                return;
            }
            let ready = protocol.ready();
            let empty = ready.is_empty();
            self.carry_out(node, ready);
            let promised = || self.nodes[node].protocol.as_ref().is_some_and(|p| p.has_ready());
            if empty && self.violation.is_none() && promised() {
                // A real node would spin on it (conclave-node stops after one such Ready).
                let detail = format!(
                    "n{} says it has a Ready and hands out empty ones, even after advance",
                    node + 1
                );
                return self.fail(Violation::new(self.now_us, "protocol contract", detail));
            }
        }
    }

    fn carry_out(&mut self, node: usize, ready: Ready<P::Message>) {
        // 1. Write what is to persist.
        let batch = WriteBatch::from_ready(&ready);
        let must_sync = ready.must_sync();
        if !batch.is_empty() {
            let n = &mut self.nodes[node];
            if let Err(error) = n.store.write(&batch) {
                let detail = format!("n{} handed out a batch its store refused: {error}", node + 1);
                return self.fail(Violation::new(self.now_us, "storage contract", detail));
            }
        }
        let Ready {
            snapshot,
            entries,
            eager_messages,
            messages,
            committed,
            reads,
            rejected,
            snapshot_wanted,
            ..
        } = ready;
        // 2. Messages that may leave before the write is durable.
        if !self.send_all(node, eager_messages) {
            return;
        }
        // 3. Make the write durable — or lose power first.
        if must_sync {
            let n = &mut self.nodes[node];
            let strikes = match n.torn_write {
                Some(TornWrite::Next) => true,
                Some(TornWrite::AsLeader(left)) => {
                    let leading =
                        n.protocol.as_ref().is_some_and(|p| p.status().role == Role::Leader);
                    if leading && left > 1 {
                        n.torn_write = Some(TornWrite::AsLeader(left - 1));
                    }
                    leading && left <= 1
                }
                _ => false,
            };
            if strikes {
                // Power fails before the sync: the write may or may not have reached the disk,
                // and only this Ready's eager messages were sent. A leader's write survives
                // more often than not, so that its entries linger on its disk only (Figure 8's
                // S5).
                let leading = matches!(n.torn_write, Some(TornWrite::AsLeader(_)));
                let odds = if leading { 0.75 } else { 0.5 };
                let unsynced = n.store.unsynced_writes();
                // Some prefix of the unsynced writes reaches the disk: usually all of them for a
                // leader, any number otherwise.
                let keep = if self.rngs.nemesis.chance(odds) {
                    unsynced
                } else {
                    self.rngs.nemesis.range_inclusive(0, unsynced.saturating_sub(1) as u64) as usize
                };
                self.nemesis_stats.torn_writes += 1;
                if self.config.verbose {
                    self.trace(&format!(
                        "n{} crashes before syncing (keeps {keep} of {unsynced} writes)",
                        node + 1
                    ));
                }
                self.crash(node, keep);
                let back = self.now_us + self.rngs.nemesis.range_inclusive(20_000, 1_000_000);
                self.agenda.schedule(back, Event::Restart { node });
                return;
            }
            n.store.sync().expect("syncing a memory store cannot fail");
        }
        if let Some(snapshot) = &snapshot {
            self.install(node, snapshot);
        }
        // 4. Messages that promise what is now durable.
        if !self.send_all(node, messages) {
            return;
        }
        // 5. Apply.
        for entry in &committed {
            self.apply(node, entry);
        }
        // 6. Reads and rejections.
        self.nodes[node].reads.extend(reads.iter().map(|r| (r.index, r.request)));
        self.serve_reads(node);
        for rejection in rejected {
            if let Some(w) = self.nodes[node].waiting.remove(&rejection.request) {
                self.send_reply(w.client, w.op, Reply::Refused(rejection.error));
            }
        }
        // 7. Done: the protocol may count what it asked to persist as durable.
        let n = &mut self.nodes[node];
        if let Some(protocol) = n.protocol.as_mut() {
            protocol.advance();
            // The protocol let go of its snapshot's data and has a peer to send it to.
            if snapshot_wanted {
                match n.store.load_snapshot() {
                    Ok(Some(stored)) => protocol.snapshot_loaded(stored),
                    Ok(None) => {}
                    Err(error) => {
                        let detail =
                            format!("n{} cannot read its snapshot back: {error}", node + 1);
                        return self.fail(Violation::new(self.now_us, "storage contract", detail));
                    }
                }
            }
        }
        self.observe(node, &entries, snapshot.as_ref().map(|s| &s.meta), &committed, false);
        if self.guarantees.has_leader
            && let Some(status) = self.nodes[node].protocol.as_ref().map(|p| p.status())
            && status.role == Role::Leader
            && self.nodes[node].led_term != Some(status.term)
        {
            self.nodes[node].led_term = Some(status.term);
            self.new_leader(node);
        }
        self.maybe_snapshot(node);
    }

    /// Routes `messages` from `node` through the network. Returns false (after recording the
    /// violation) if one is addressed to a node that does not exist.
    fn send_all(&mut self, node: usize, messages: Vec<Envelope<P::Message>>) -> bool {
        for envelope in messages {
            let to = envelope.to.0 as usize;
            if to == 0 || to > self.nodes.len() {
                let detail =
                    format!("n{} sent a message to unknown node {}", node + 1, envelope.to);
                self.fail(Violation::new(self.now_us, "protocol", detail));
                return false;
            }
            for delay in self.network.route(node, to - 1) {
                let msg = envelope.msg.clone();
                self.agenda
                    .schedule(self.now_us + delay, Event::Deliver { from: node, to: to - 1, msg });
            }
        }
        true
    }

    fn install(&mut self, node: usize, snapshot: &Snapshot) {
        let n = &mut self.nodes[node];
        if let Err(error) = n.kv.restore(&snapshot.meta, &snapshot.data) {
            let detail = format!("n{} received a snapshot it cannot restore: {error}", node + 1);
            return self.fail(Violation::new(self.now_us, "snapshot", detail));
        }
        n.applied = snapshot.meta.index;
        n.applied_term = snapshot.meta.term;
        n.snapshot_index = snapshot.meta.index;
        self.snapshots_installed += 1;
        if self.config.verbose {
            self.trace(&format!(
                "n{} installs a snapshot through {}",
                node + 1,
                snapshot.meta.index
            ));
        }
        if let Err(detail) = self.safety.installed(node, snapshot.meta.index) {
            self.fail(Violation::new(self.now_us, "state machine safety", detail));
        }
    }

    fn apply(&mut self, node: usize, entry: &Entry) {
        if let Err(detail) = self.safety.applied(node, entry) {
            return self.fail(Violation::new(self.now_us, "state machine safety", detail));
        }
        let n = &mut self.nodes[node];
        n.applied = entry.index;
        n.applied_term = entry.term;
        if entry.kind != EntryKind::Command {
            n.kv.apply(entry.index, None);
            return;
        }
        let Some(proposal) = Proposal::decode(&entry.data) else {
            n.kv.apply(entry.index, None);
            let detail =
                format!("n{} applied entry {} with no proposal header", node + 1, entry.index);
            return self.fail(Violation::new(self.now_us, "protocol", detail));
        };
        let output = n.kv.apply(entry.index, Some(&proposal.command));
        if proposal.origin == n.id
            && let Some(w) = n.waiting.remove(&proposal.request)
        {
            let reply = kv_ops::reply_for_output(&w.kind, &output);
            self.send_reply(w.client, w.op, reply);
        }
    }

    fn serve_reads(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.reads.is_empty() {
            return;
        }
        let applied = n.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            n.reads.drain(..).partition(|(i, _)| *i <= applied);
        n.reads = waiting;
        for (_, request) in ready {
            let n = &mut self.nodes[node];
            if let Some(w) = n.waiting.remove(&request) {
                debug_assert_eq!(w.kind, OpKind::Get);
                let reply = kv_ops::read(&n.kv, &w.key);
                self.send_reply(w.client, w.op, reply);
            }
        }
    }

    /// Takes a state-machine snapshot every `snapshot_interval_entries` applied entries, makes
    /// it durable, and hands it to the protocol, as the real driver does.
    fn maybe_snapshot(&mut self, node: usize) {
        let interval = self.setup.snapshot_interval_entries;
        let n = &mut self.nodes[node];
        if n.applied < n.snapshot_index + interval || n.protocol.is_none() {
            return;
        }
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: n.applied,
                term: n.applied_term,
                membership: self.membership.clone(),
            },
            data: n.kv.snapshot(),
        };
        let batch = WriteBatch { snapshot: Some(&snapshot), ..WriteBatch::default() };
        if let Err(error) = n.store.write(&batch).and_then(|()| n.store.sync()) {
            let detail = format!("n{} could not store its own snapshot: {error}", node + 1);
            return self.fail(Violation::new(self.now_us, "storage contract", detail));
        }
        n.snapshot_index = n.applied;
        n.protocol.as_mut().expect("up").snapshot_taken(snapshot);
        self.snapshots_taken += 1;
        self.drive(node);
    }

    /// Power loss on `node`, keeping the first `keep_unsynced` unsynced writes.
    pub(crate) fn crash(&mut self, node: usize, keep_unsynced: usize) {
        if !self.nodes[node].is_up() {
            return;
        }
        self.nodes[node].crash(keep_unsynced);
        self.nemesis_stats.crashes += 1;
        if self.config.verbose {
            self.trace(&format!("n{} crashed", node + 1));
        }
        if self.phase != Phase::Faults {
            // Only a torn write can crash a node now; bring it straight back.
            self.agenda.schedule(self.now_us + 50_000, Event::Restart { node });
        }
    }

    pub(crate) fn restart(&mut self, node: usize) {
        if self.nodes[node].is_up() {
            return;
        }
        if self.config.verbose {
            self.trace(&format!("n{} restarts", node + 1));
        }
        self.start_node(node, true);
        self.arm_churn(node);
    }

    /// Lets the protocol's checker look at what `node` just did.
    fn observe(
        &mut self,
        node: usize,
        persisted: &[Entry],
        installed: Option<&SnapshotMeta>,
        applied: &[Entry],
        restarted: bool,
    ) {
        let Some(protocol) = self.nodes[node].protocol.as_ref() else { return };
        let observation = Observation {
            id: self.nodes[node].id,
            node: protocol,
            now_ms: self.now_us / 1_000,
            persisted,
            installed,
            applied,
            restarted,
            cluster: Cluster { nodes: &self.nodes },
        };
        if let Err(detail) = self.checker.observe(&observation) {
            let check = format!("{} invariant", P::NAME);
            self.fail(Violation::new(self.now_us, check, detail));
        }
    }
}
