//! The node thread's loop: events in, effects out, in the order `Ready` prescribes.

use crate::NodeConfig;
use crate::handle::{Request, Shared};
use crate::metrics::NodeMetrics;
use crate::transport::{Inbound, Transport};
use crate::waiters::Waiters;
use conclave_core::proposal::Proposal;
use conclave_core::{
    ConsensusError, EntryKind, Frozen, Protocol, Ready, Role, Snapshot, SnapshotMeta, StateMachine,
};
use conclave_storage::{LogStore, StorageError, WriteBatch};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Owns the protocol, the store and the state machine's write side. Runs on its own thread.
pub(crate) struct Driver<P: Protocol, L: LogStore, S: StateMachine> {
    pub config: NodeConfig,
    pub protocol: P,
    pub store: L,
    pub state_machine: Arc<RwLock<S>>,
    pub transport: Arc<dyn Transport>,
    pub inbox: mpsc::Receiver<Inbound>,
    pub requests: mpsc::Receiver<Request>,
    pub shared: Arc<Shared>,
    pub metrics: Arc<NodeMetrics>,
    pub waiters: Waiters,
    pub applied: u64,
    pub last_snapshot_index: u64,
    /// The size of the last snapshot taken here, and the command bytes applied since: a
    /// snapshot costs time in proportion to the whole state, so the next one waits until the log
    /// has grown by as much (see `maybe_snapshot`).
    pub last_snapshot_bytes: u64,
    pub applied_bytes_since_snapshot: u64,
    pub last_term_applied: u64,
    pub last_leader: Option<conclave_core::NodeId>,
    /// The role last published, to log changes.
    pub last_role: Role,
    /// The membership as of the applied index, for snapshot metadata.
    pub membership: conclave_core::Membership,
    /// The snapshot whose file is being written on its own thread, if any.
    pub snapshotting: Option<SnapshotInFlight>,
    /// After a snapshot failed, none is tried again before this.
    pub snapshot_retry_at: Option<Instant>,
    /// Empty `Ready`s handed out after `has_ready` said there was one (see `process_ready`).
    pub empty_readies: u64,
}

/// A snapshot taken at `meta.index` on its way to disk (see `maybe_snapshot`).
pub(crate) struct SnapshotInFlight {
    /// The command bytes applied when it was taken: those applied later count towards the next.
    bytes_applied_at: u64,
    done: tokio::sync::oneshot::Receiver<Written>,
}

/// What the snapshot thread reports.
pub(crate) struct Written {
    result: Result<Snapshot, String>,
    encoding: Duration,
    writing: Duration,
}

/// A snapshot's data: encoded already (on the node thread), or a frozen state to encode.
enum Data {
    Encoded(bytes::Bytes, Duration),
    Frozen(Frozen),
}

impl Data {
    /// The encoded bytes and how long encoding took.
    fn encode(self) -> (bytes::Bytes, Duration) {
        match self {
            Data::Encoded(data, took) => (data, took),
            Data::Frozen(frozen) => {
                let started = Instant::now();
                let data = frozen();
                (data, started.elapsed())
            }
        }
    }
}

/// A snapshot whose file is written (or failed to be): what `install_snapshot` takes.
pub(crate) struct SnapshotDone {
    bytes_applied_at: u64,
    encoding: Duration,
    /// How long the file took to write.
    writing: Duration,
    result: Result<Snapshot, String>,
}

/// The snapshot thread's niceness: when encoding it competes for a core with the node threads
/// of this machine, which answer clients, and it can wait.
const SNAPSHOT_NICENESS: i32 = 10;

/// Makes the calling thread yield the CPU to normal-priority threads (Linux: a thread's own
/// niceness). Best effort: a failure leaves it at normal priority.
fn lower_own_priority() {
    let tid = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(tid), SNAPSHOT_NICENESS) {
        tracing::debug!(%error, "cannot lower the snapshot thread's priority");
    }
}

/// How long after a failed snapshot (a full disk, say) the next is tried.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);

impl<P: Protocol, L: LogStore, S: StateMachine> Driver<P, L, S> {
    /// Runs until shutdown is requested or storage fails.
    pub async fn run(mut self) {
        let tick = Duration::from_millis(self.config.tick_interval_ms);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop_reply = None;
        loop {
            let mut failed = None;
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(Request::Shutdown(reply)) => { stop_reply = Some(reply); }
                    Some(request) => self.on_request(request),
                    None => break,
                },
                Some(inbound) = self.inbox.recv() => self.on_inbound(inbound),
                done = snapshot_done(&mut self.snapshotting) => {
                    failed = self.install_snapshot(done).err();
                }
                _ = ticker.tick() => {
                    self.protocol.tick();
                    self.waiters.expire(Instant::now(), self.config.request_timeout_ms);
                    self.export_counters();
                }
            }
            if stop_reply.is_none() {
                stop_reply = self.drain_queued();
            }
            let processed = match failed {
                Some(error) => Err(error),
                None => self.process_ready().await,
            };
            if let Err(error) = processed {
                tracing::error!(%error, "storage failed; stopping the node");
                self.waiters.fail_all(ConsensusError::Fatal(format!("storage failed: {error}")));
                self.shared.closed.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            self.publish_status();
            if stop_reply.is_some() {
                break;
            }
            // Let the tasks that share this thread (the peer links) write what was sent and
            // read what arrived; without a yield, a busy loop would hold them off until tokio's
            // cooperative budget ran out.
            tokio::task::yield_now().await;
        }
        self.shared.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.waiters.fail_all(ConsensusError::ShuttingDown);
        if let Err(error) = self.store.sync() {
            tracing::error!(%error, "final sync failed");
        }
        self.publish_status();
        if let Some(reply) = stop_reply {
            let _ = reply.send(());
        }
    }

    /// Takes every event already queued, up to the batch limit, so one sync covers them all.
    fn drain_queued(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        for _ in 0..self.config.max_batch_events {
            let mut progressed = false;
            match self.requests.try_recv() {
                Ok(Request::Shutdown(reply)) => return Some(reply),
                Ok(request) => {
                    self.on_request(request);
                    progressed = true;
                }
                Err(_) => {}
            }
            if let Ok(inbound) = self.inbox.try_recv() {
                self.on_inbound(inbound);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        None
    }

    fn on_request(&mut self, request: Request) {
        let deadline = Instant::now() + Duration::from_millis(self.config.request_timeout_ms);
        match request {
            Request::Propose { id, command, reply } => {
                self.waiters.add_proposal(id, deadline, reply);
                let data = Proposal { origin: self.config.id, request: id, command }.encode();
                self.protocol.propose(id, data);
            }
            Request::Read { id, reply } => {
                self.waiters.add_read(id, deadline, reply);
                self.protocol.read(id);
            }
            Request::Transfer { to, reply } => {
                let _ = reply.send(self.protocol.transfer_leadership(to));
            }
            Request::Shutdown(_) => unreachable!("shutdown is handled by the loop"),
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match postcard::from_bytes::<P::Message>(&inbound.payload) {
            Ok(msg) => {
                let kind = self.protocol.message_kind(&msg);
                self.metrics.peer_message(inbound.from.0, kind, false, inbound.payload.len());
                self.protocol.step(inbound.from, msg);
            }
            Err(error) => {
                tracing::warn!(from = %inbound.from, %error, len = inbound.payload.len(), "dropping undecodable peer message");
            }
        }
    }

    /// Carries out every pending `Ready`, in order.
    async fn process_ready(&mut self) -> Result<(), StorageError> {
        while self.protocol.has_ready() {
            let ready = self.protocol.ready();
            let empty = ready.is_empty();
            self.handle_ready(ready).await?;
            if empty && self.protocol.has_ready() {
                // `has_ready` still promises work that `ready` does not hand out: a protocol
                // bug. Looping on it would spin the node thread, and with it the links and
                // clients it serves; the next event calls again.
                self.empty_readies += 1;
                if self.empty_readies.is_power_of_two() {
                    tracing::warn!(
                        protocol = self.protocol.name(),
                        count = self.empty_readies,
                        "the protocol said it had a Ready and handed out an empty one"
                    );
                }
                break;
            }
        }
        Ok(())
    }

    async fn handle_ready(&mut self, ready: Ready<P::Message>) -> Result<(), StorageError> {
        // 1. Persistence: a snapshot from a peer replaces the state machine, then everything
        //    this Ready asks to store is written; it is synced before `messages` leave.
        if let Some(snapshot) = &ready.snapshot {
            let mut sm = self.state_machine.write().expect("state machine lock poisoned");
            if let Err(error) = sm.restore(&snapshot.meta, &snapshot.data) {
                return Err(StorageError::Corrupt {
                    file: "snapshot from peer".into(),
                    offset: 0,
                    reason: error,
                });
            }
            self.applied = snapshot.meta.index;
            self.last_snapshot_index = snapshot.meta.index;
            self.last_snapshot_bytes = snapshot.data.len() as u64;
            self.applied_bytes_since_snapshot = 0;
            self.last_term_applied = snapshot.meta.term;
            self.membership = snapshot.meta.membership.clone();
        }
        let must_sync = ready.must_sync();
        // What needs no sync (a hard state that moved only in its commit index, a compaction
        // bound) is written after the callers are answered: a crash may lose it either way.
        let lazy_write = !must_sync && ready.must_write();
        if must_sync {
            self.store.write(&WriteBatch::from_ready(&ready))?;
        }
        // 2. Messages that need not wait for the sync (the Raft leader's appends): they travel
        //    while the disk works.
        let eager = !ready.eager_messages.is_empty();
        self.send_all(ready.eager_messages);
        if must_sync {
            if eager {
                // Peer links on this thread write them now, before the sync blocks it.
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            self.store.sync()?;
            self.metrics.fsync_duration.record(started.elapsed().as_secs_f64());
            self.metrics.fsyncs.increment(1);
        }
        // 3. Messages that promise what was just made durable.
        self.send_all(ready.messages);
        // 4. Apply.
        if !ready.committed.is_empty() {
            self.apply(&ready.committed);
        }
        // 5. Answers.
        for read in ready.reads {
            self.waiters.read_ready(read.request, read.index);
        }
        for rejection in ready.rejected {
            self.metrics.rejected.increment(1);
            self.waiters.fail(rejection.request, rejection.error);
        }
        self.waiters.applied(self.applied);
        if lazy_write {
            self.store.write(&WriteBatch {
                hard_state: ready.hard_state.as_deref(),
                compact_to: ready.compact_to,
                ..WriteBatch::default()
            })?;
        }
        // 6. Everything the Ready asked for is done.
        self.protocol.advance();
        if ready.snapshot_wanted {
            self.load_snapshot()?;
        }
        self.maybe_snapshot()
    }

    /// Reads the latest snapshot back from the store for the protocol, which let go of its
    /// data and now has a peer to send it to. A file that cannot be read is logged and left:
    /// the protocol asks again at its next attempt, and the store's log stays usable.
    fn load_snapshot(&mut self) -> Result<(), StorageError> {
        let started = Instant::now();
        match self.store.load_snapshot() {
            Ok(Some(snapshot)) => {
                tracing::info!(
                    index = snapshot.meta.index,
                    bytes = snapshot.data.len(),
                    read_ms = started.elapsed().as_millis() as u64,
                    "snapshot read back for a peer"
                );
                self.protocol.snapshot_loaded(snapshot);
            }
            Ok(None) => {}
            // The store failed earlier: the node stops, as for any write.
            Err(error @ StorageError::Failed(_)) => return Err(error),
            Err(error) => tracing::error!(%error, "cannot read the snapshot back for a peer"),
        }
        Ok(())
    }

    fn send_all(&mut self, messages: Vec<conclave_core::Envelope<P::Message>>) {
        for envelope in messages {
            let kind = self.protocol.message_kind(&envelope.msg);
            match postcard::to_allocvec(&envelope.msg) {
                Ok(bytes) => {
                    self.metrics.peer_message(envelope.to.0, kind, true, bytes.len());
                    self.transport.send(envelope.to, bytes.into());
                }
                Err(error) => tracing::error!(%error, kind, "cannot encode a protocol message"),
            }
        }
    }

    fn apply(&mut self, committed: &[conclave_core::Entry]) {
        let mut sm = self.state_machine.write().expect("state machine lock poisoned");
        for entry in committed {
            if entry.index <= self.applied {
                // Already covered by a snapshot restored in this same batch.
                continue;
            }
            let proposal = match entry.kind {
                EntryKind::Command => Proposal::decode(&entry.data),
                EntryKind::Noop => None,
                EntryKind::Membership => {
                    match postcard::from_bytes::<conclave_core::Membership>(&entry.data) {
                        Ok(membership) => self.membership = membership,
                        Err(error) => {
                            tracing::error!(index = entry.index, %error, "undecodable membership entry")
                        }
                    }
                    None
                }
            };
            match proposal {
                Some(proposal) => {
                    let output = sm.apply(entry.index, Some(&proposal.command));
                    if proposal.origin == self.config.id {
                        self.waiters.complete_proposal(proposal.request, Ok(output));
                    }
                }
                None => {
                    if entry.kind == EntryKind::Command {
                        tracing::warn!(
                            index = entry.index,
                            "committed command without a header; applied as a no-op"
                        );
                    }
                    sm.apply(entry.index, None);
                }
            }
            self.applied = entry.index;
            self.last_term_applied = entry.term;
            self.applied_bytes_since_snapshot += entry.data.len() as u64;
        }
        drop(sm);
        self.shared.applied.store(self.applied, std::sync::atomic::Ordering::Release);
    }

    /// Takes a snapshot once `snapshot_interval_entries` entries were applied since the last
    /// one **and** the entries applied since then are at least as large as that snapshot was.
    /// Encoding and writing a snapshot costs time in proportion to the whole state (every key
    /// and its held history), so with a large state a fixed interval would spend most of the
    /// node's time on snapshots; this way their cost stays a constant share of the bytes
    /// applied, and the log between snapshots stays no larger than the state itself.
    ///
    /// The node thread only freezes the state ([`StateMachine::frozen`]: the key-value store's
    /// persistent maps make that a few reference counts); encoding it, framing and writing the
    /// file (a copy with its checksum, the write, its fdatasync, the rename and the directory's
    /// sync) run on a thread of their own while the node goes on, and the snapshot is installed
    /// — its marker written to the log, the protocol told — when they are done
    /// (`install_snapshot`). A state machine that cannot freeze cheaply is encoded here.
    fn maybe_snapshot(&mut self) -> Result<(), StorageError> {
        let due = snapshot_due(
            self.config.snapshot_interval_entries,
            self.applied - self.last_snapshot_index,
            self.applied_bytes_since_snapshot,
            self.last_snapshot_bytes,
        );
        if !due
            || self.snapshotting.is_some()
            || self.snapshot_retry_at.is_some_and(|at| Instant::now() < at)
        {
            return Ok(());
        }
        let started = Instant::now();
        let data = {
            let sm = self.state_machine.read().expect("state machine lock poisoned");
            match sm.frozen() {
                Some(frozen) => Data::Frozen(frozen),
                None => Data::Encoded(sm.snapshot(), started.elapsed()),
            }
        };
        self.metrics.snapshot_pause.record(started.elapsed().as_secs_f64());
        // The membership in effect at the applied index: the last membership entry applied.
        let meta = SnapshotMeta {
            index: self.applied,
            term: self.last_term_applied,
            membership: self.membership.clone(),
        };
        let bytes_applied_at = self.applied_bytes_since_snapshot;
        let Some(writer) = self.store.snapshot_writer() else {
            // A store without snapshot files (in memory) takes it in the installing write.
            let (data, encoding) = data.encode();
            let result = Ok(Snapshot { meta, data });
            let done = SnapshotDone { bytes_applied_at, encoding, writing: Duration::ZERO, result };
            return self.install_snapshot(done);
        };
        let (tx, done) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("conclave-snapshot-{}", self.config.id))
            .spawn(move || {
                lower_own_priority();
                let (data, encoding) = data.encode();
                let snapshot = Snapshot { meta, data };
                let started = Instant::now();
                let result = writer.write(&snapshot).map(|()| snapshot).map_err(|e| e.to_string());
                let _ = tx.send(Written { result, encoding, writing: started.elapsed() });
            });
        match spawned {
            Ok(_) => self.snapshotting = Some(SnapshotInFlight { bytes_applied_at, done }),
            Err(error) => {
                tracing::error!(%error, "cannot start a snapshot thread");
                self.snapshot_retry_at = Some(Instant::now() + SNAPSHOT_RETRY);
            }
        }
        Ok(())
    }

    /// A snapshot's file is written (or its encoding failed): records it in the log and hands
    /// it to the protocol, which may then compact its log up to it.
    fn install_snapshot(&mut self, done: SnapshotDone) -> Result<(), StorageError> {
        let SnapshotDone { bytes_applied_at, encoding, writing, result } = done;
        let refused = |driver: &mut Self, error: &dyn std::fmt::Display| {
            // The log still holds everything; only compaction waits.
            tracing::error!(%error, "snapshot failed; retrying in {SNAPSHOT_RETRY:?}");
            driver.snapshot_retry_at = Some(Instant::now() + SNAPSHOT_RETRY);
        };
        let snapshot = match result {
            Ok(snapshot) => snapshot,
            Err(error) => {
                refused(self, &error);
                return Ok(());
            }
        };
        if snapshot.meta.index <= self.last_snapshot_index {
            // A newer snapshot arrived from a peer meanwhile.
            return Ok(());
        }
        match self.store.write(&WriteBatch { snapshot: Some(&snapshot), ..Default::default() }) {
            Ok(()) => self.store.sync()?,
            // Refused before anything was written: the store is unchanged and usable.
            Err(error @ (StorageError::InvalidBatch(_) | StorageError::RecordTooLarge { .. })) => {
                refused(self, &error);
                return Ok(());
            }
            Err(error) => return Err(error),
        }
        self.last_snapshot_index = snapshot.meta.index;
        self.last_snapshot_bytes = snapshot.data.len() as u64;
        self.applied_bytes_since_snapshot =
            self.applied_bytes_since_snapshot.saturating_sub(bytes_applied_at);
        self.snapshot_retry_at = None;
        self.metrics.snapshot_encode.record(encoding.as_secs_f64());
        self.metrics.snapshot_write.record(writing.as_secs_f64());
        self.metrics.snapshots.increment(1);
        self.metrics.snapshot_bytes.set(snapshot.data.len() as f64);
        tracing::info!(
            index = snapshot.meta.index,
            bytes = snapshot.data.len(),
            encode_ms = encoding.as_millis() as u64,
            write_ms = writing.as_millis() as u64,
            "snapshot saved"
        );
        self.protocol.snapshot_taken(snapshot);
        Ok(())
    }

    fn publish_status(&mut self) {
        let mut status = self.protocol.status();
        status.applied_index = self.applied;
        let m = &self.metrics;
        if let Some(l) = &m.leadership {
            l.is_leader.set(if status.role == Role::Leader { 1.0 } else { 0.0 });
            l.has_leader.set(if status.leader.is_some() { 1.0 } else { 0.0 });
            if status.leader != self.last_leader && status.leader.is_some() {
                l.leader_changes.increment(1);
            }
        }
        if status.leader != self.last_leader || status.role != self.last_role {
            tracing::info!(
                role = ?status.role,
                leader = status.leader.map(|l| l.0),
                term = status.term,
                commit = status.commit_index,
                "role or leader changed"
            );
        }
        self.last_leader = status.leader;
        self.last_role = status.role;
        m.term.set(status.term as f64);
        m.commit_index.set(status.commit_index as f64);
        m.applied_index.set(status.applied_index as f64);
        m.members.set(status.members.len() as f64);
        m.pending.set(self.waiters.pending() as f64);
        *self.shared.status.lock().expect("status lock poisoned") = status;
    }

    fn export_counters(&self) {
        for (name, value) in self.protocol.counters() {
            self.metrics.protocol_value(name, value);
        }
    }
}

/// The outcome of the snapshot in flight, with the bytes applied when it was taken; never
/// resolves while none is.
async fn snapshot_done(in_flight: &mut Option<SnapshotInFlight>) -> SnapshotDone {
    let Some(flight) = in_flight.as_mut() else {
        return std::future::pending().await;
    };
    let written = (&mut flight.done).await.unwrap_or_else(|_| Written {
        result: Err("the snapshot thread ended without an answer".into()),
        encoding: Duration::ZERO,
        writing: Duration::ZERO,
    });
    let done = SnapshotDone {
        bytes_applied_at: flight.bytes_applied_at,
        encoding: written.encoding,
        writing: written.writing,
        result: written.result,
    };
    *in_flight = None;
    done
}

/// Whether a snapshot is due: `interval` entries (0: never) and as many bytes as the last
/// snapshot held were applied since it. See `Driver::maybe_snapshot`.
fn snapshot_due(interval: u64, entries_since: u64, bytes_since: u64, last_bytes: u64) -> bool {
    interval != 0 && entries_since >= interval && bytes_since >= last_bytes
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn a_snapshot_waits_for_the_interval_and_for_as_many_bytes_as_the_last_one() {
        assert!(!snapshot_due(0, 1_000_000, 1 << 40, 0), "0 means never");
        assert!(!snapshot_due(10_000, 9_999, 1 << 30, 0));
        assert!(snapshot_due(10_000, 10_000, 0, 0), "the first one needs only the interval");
        // A 20 MB state: 10,000 entries of 300 bytes are not enough to pay for another.
        assert!(!snapshot_due(10_000, 10_000, 3_000_000, 20_000_000));
        assert!(snapshot_due(10_000, 70_000, 21_000_000, 20_000_000));
    }
}
