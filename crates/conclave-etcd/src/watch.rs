//! The `Watch` service: one bidirectional stream per client connection, carrying any number of
//! watchers.
//!
//! Each stream runs as one task (`WatchSession`) that owns its watchers and a receiver on the
//! `WatchHub`. It answers a create with a `created` response
//! first, then replays history from `start_revision` out of the store when that lies in the
//! past (or cancels the watcher with `compact_revision` set when compaction removed it), then
//! follows live events. Every response's header carries a revision such that everything up to
//! it was delivered. A stream that falls behind the hub, or sees a revision gap (the store was
//! restored from a snapshot), catches up from the store instead of losing events.

use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth_check::Need;
use crate::context::EtcdContext;
use crate::error::{SERVER_STOPPED, TOO_MANY_WATCHERS, TOO_MANY_WATCHERS_ON_STREAM};
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb;
use crate::watch_hub::Batch;
use crate::watcher::{Watcher, invalid_range};

/// The watch id etcd uses in answers that belong to no watcher (a stream-wide progress
/// notification, a refused create).
const NO_WATCH_ID: i64 = -1;

/// Catch-up events per response, cut only between revisions so that one revision's events
/// always arrive together (clients rely on that without `fragment`).
const CATCH_UP_EVENTS_PER_RESPONSE: usize = 1000;

/// The `etcdserverpb.Watch` service.
#[derive(Clone, Debug)]
pub struct WatchService {
    ctx: EtcdContext,
}

impl WatchService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.ctx.check_leader_required(request.metadata())?;
        let metadata = request.metadata().clone();
        let (tx, rx) = mpsc::channel(self.ctx.limits.stream_buffer_len);
        // Subscribe before reading the revision, so no write falls between the two.
        let receiver = self.ctx.hub.subscribe();
        let processed_revision = self.ctx.read_store().current_revision();
        let session = WatchSession {
            ctx: self.ctx.clone(),
            tx,
            receiver,
            watchers: BTreeMap::new(),
            next_watch_id: 0,
            processed_revision,
            metadata,
        };
        tokio::spawn(session.run(request.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The client is gone; the session ends.
struct Gone;

type Flow = Result<(), Gone>;

enum Input {
    Request(Result<Option<WatchRequest>, Status>),
    Batch(Result<Arc<Batch>, broadcast::error::RecvError>),
    Progress,
    Closed,
    Stopped,
}

struct WatchSession {
    ctx: EtcdContext,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
    receiver: broadcast::Receiver<Arc<Batch>>,
    watchers: BTreeMap<i64, Watcher>,
    next_watch_id: i64,
    /// Every batch up to this revision has been handed to the watchers.
    processed_revision: i64,
    /// The stream's metadata, whose token every create is authorized by.
    metadata: MetadataMap,
}

impl Drop for WatchSession {
    /// The stream is over: its watchers give their member-wide places back.
    fn drop(&mut self) {
        self.ctx.hub.release_watchers(self.watchers.len());
    }
}

impl WatchSession {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>) {
        let mut progress = tokio::time::interval(self.ctx.options.watch_progress_notify_interval());
        progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
        progress.reset();
        let stopped = self.ctx.stopped();
        tokio::pin!(stopped);
        loop {
            let input = tokio::select! {
                request = inbound.message() => Input::Request(request),
                batch = self.receiver.recv() => Input::Batch(batch),
                _ = progress.tick() => Input::Progress,
                () = self.tx.closed() => Input::Closed,
                () = &mut stopped => Input::Stopped,
            };
            let flow = match input {
                Input::Request(Ok(Some(request))) => self.handle(request).await,
                // The client closed its side; etcd ends the stream then too.
                Input::Request(Ok(None)) | Input::Closed => Err(Gone),
                Input::Request(Err(status)) => {
                    let _ = self.tx.send(Err(status)).await;
                    Err(Gone)
                }
                Input::Batch(Ok(batch)) => self.deliver(&batch).await,
                Input::Batch(Err(broadcast::error::RecvError::Lagged(_))) => self.catch_up().await,
                Input::Batch(Err(broadcast::error::RecvError::Closed)) => Err(Gone),
                Input::Progress => self.notify_progress().await,
                Input::Stopped => {
                    let _ = self.tx.send(Err(Status::unavailable(SERVER_STOPPED))).await;
                    Err(Gone)
                }
            };
            if flow.is_err() {
                break;
            }
        }
    }

    async fn send(&self, response: WatchResponse) -> Flow {
        self.tx.send(Ok(response)).await.map_err(|_| Gone)
    }

    async fn handle(&mut self, request: WatchRequest) -> Flow {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd answers nothing for an id that is not (or no longer) watching.
                if self.watchers.remove(&cancel.watch_id).is_none() {
                    return Ok(());
                }
                self.ctx.hub.release_watchers(1);
                let header = self.ctx.current_header();
                self.send(WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.drain_pending().await?;
                let header = self.ctx.header(self.processed_revision);
                self.send(WatchResponse { header, watch_id: NO_WATCH_ID, ..Default::default() })
                    .await
            }
            None => Ok(()),
        }
    }

    /// Answers a create that is not taken: created and canceled at once, with the reason, as
    /// etcd does; the stream and its other watchers go on.
    async fn refuse_create(&mut self, reason: String) -> Flow {
        let header = self.ctx.current_header();
        self.send(WatchResponse {
            header,
            watch_id: NO_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        })
        .await
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Flow {
        // etcd checks read permission on the watched range at each create, as the stream's
        // token allows at that moment, and answers a refusal as a canceled create.
        let need = [Need::read(&create.key, &create.range_end)];
        if let Err(status) = self.ctx.authorize_needs(&self.metadata, &need) {
            return self.refuse_create(status.message().to_owned()).await;
        }
        let mut refusal = if self.watchers.len() >= self.ctx.limits.max_watchers_per_stream {
            crate::metrics::limit_refused(self.ctx.protocol, "watchers_per_stream");
            Some(TOO_MANY_WATCHERS_ON_STREAM)
        } else if create.watch_id != 0 && self.watchers.contains_key(&create.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream")
        } else {
            invalid_range(&create)
        };
        // The member-wide place is taken last, once nothing else refuses the create, and given
        // back when the watcher goes (cancel, compaction, or the stream's end).
        if refusal.is_none() && !self.ctx.hub.reserve_watcher(self.ctx.limits.max_watchers) {
            crate::metrics::limit_refused(self.ctx.protocol, "watchers");
            refusal = Some(TOO_MANY_WATCHERS);
        }
        if let Some(reason) = refusal {
            return self.refuse_create(reason.to_string()).await;
        }
        let id = if create.watch_id != 0 { create.watch_id } else { self.fresh_watch_id() };

        // Read history and the revisions under one lock, so history and live events meet
        // exactly at `current`.
        let (current, compacted, history) = {
            let store = self.ctx.read_store();
            let current = store.current_revision();
            let start = create.start_revision;
            if start > 0 && start < store.compact_revision() {
                (current, Some(store.compact_revision()), Vec::new())
            } else if start > 0 && start <= current {
                let events = store.events_since(start, &create.key, &create.range_end);
                (current, None, events.unwrap_or_default())
            } else {
                (current, None, Vec::new())
            }
        };
        let header = self.ctx.header(current);
        let created = self
            .send(WatchResponse { header, watch_id: id, created: true, ..Default::default() })
            .await;
        if created.is_err() || compacted.is_some() {
            // The place was taken for a watcher that will not exist.
            self.ctx.hub.release_watchers(1);
        }
        created?;
        if let Some(compact_revision) = compacted {
            return self
                .send(WatchResponse {
                    header,
                    watch_id: id,
                    canceled: true,
                    compact_revision,
                    cancel_reason: crate::error::COMPACTED.to_string(),
                    ..Default::default()
                })
                .await;
        }
        let next_revision = create.start_revision.max(current + 1);
        let mut watcher = Watcher::new(&create, next_revision);
        let events = watcher.select(&history);
        watcher.sent_since_progress = !events.is_empty();
        self.watchers.insert(id, watcher);
        self.send_history(id, current, events).await
    }

    /// Sends replayed events in responses of bounded size, cut only between revisions.
    async fn send_history(&self, id: i64, current: i64, events: Vec<mvccpb::Event>) -> Flow {
        let mut chunk: Vec<mvccpb::Event> = Vec::new();
        for event in events {
            let revision = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            let last = chunk.last().and_then(|e| e.kv.as_ref()).map_or(0, |kv| kv.mod_revision);
            if chunk.len() >= CATCH_UP_EVENTS_PER_RESPONSE && revision != last {
                let events = std::mem::take(&mut chunk);
                self.send(self.events_response(id, current, events)).await?;
            }
            chunk.push(event);
        }
        if !chunk.is_empty() {
            self.send(self.events_response(id, current, chunk)).await?;
        }
        Ok(())
    }

    fn events_response(&self, id: i64, revision: i64, events: Vec<mvccpb::Event>) -> WatchResponse {
        WatchResponse {
            header: self.ctx.header(revision),
            watch_id: id,
            events,
            ..Default::default()
        }
    }

    fn fresh_watch_id(&mut self) -> i64 {
        loop {
            let id = self.next_watch_id;
            self.next_watch_id += 1;
            if !self.watchers.contains_key(&id) {
                return id;
            }
        }
    }

    /// Hands one write's events to every watcher that has not seen that revision yet.
    async fn deliver(&mut self, batch: &Batch) -> Flow {
        if batch.revision <= self.processed_revision {
            return Ok(());
        }
        if batch.revision > self.processed_revision + 1 {
            // Every write that changes keys creates exactly one revision, so a gap means writes
            // this stream never heard of (a snapshot was installed): replay them from the store.
            return self.catch_up().await;
        }
        self.processed_revision = batch.revision;
        let mut responses = Vec::new();
        for (&id, watcher) in &mut self.watchers {
            if batch.revision < watcher.next_revision {
                continue;
            }
            watcher.next_revision = batch.revision + 1;
            let events = watcher.select(&batch.events);
            if !events.is_empty() {
                watcher.sent_since_progress = true;
                responses.push((id, events));
            }
        }
        for (id, events) in responses {
            self.send(self.events_response(id, batch.revision, events)).await?;
        }
        Ok(())
    }

    /// Brings every watcher up to the store's current revision from its history, after the
    /// stream missed live batches; watchers whose history was compacted away are canceled.
    async fn catch_up(&mut self) -> Flow {
        let mut replays = Vec::new();
        let mut compacted = Vec::new();
        let current = {
            let store = self.ctx.read_store();
            let current = store.current_revision();
            for (&id, watcher) in &mut self.watchers {
                if watcher.next_revision > current {
                    continue;
                }
                match store.events_since(watcher.next_revision, watcher.key(), watcher.range_end())
                {
                    Ok(events) => {
                        let events = watcher.select(&events);
                        if !events.is_empty() {
                            watcher.sent_since_progress = true;
                            replays.push((id, events));
                        }
                        watcher.next_revision = current + 1;
                    }
                    Err(_) => compacted.push((id, store.compact_revision())),
                }
            }
            current
        };
        self.processed_revision = self.processed_revision.max(current);
        for (id, events) in replays {
            self.send_history(id, current, events).await?;
        }
        for (id, compact_revision) in compacted {
            if self.watchers.remove(&id).is_some() {
                self.ctx.hub.release_watchers(1);
            }
            self.send(WatchResponse {
                header: self.ctx.header(current),
                watch_id: id,
                canceled: true,
                compact_revision,
                cancel_reason: crate::error::COMPACTED.to_string(),
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Delivers whatever the hub already holds, so a progress answer is as fresh as it can be.
    async fn drain_pending(&mut self) -> Flow {
        loop {
            match self.receiver.try_recv() {
                Ok(batch) => self.deliver(&batch).await?,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.catch_up().await?,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(()),
                Err(broadcast::error::TryRecvError::Closed) => return Err(Gone),
            }
        }
    }

    /// Tells each idle watcher that asked for progress notifications how far it is.
    async fn notify_progress(&mut self) -> Flow {
        let mut due = Vec::new();
        for (&id, watcher) in &mut self.watchers {
            if watcher.progress_notify && !watcher.sent_since_progress {
                due.push((id, self.processed_revision.max(watcher.next_revision - 1)));
            }
            watcher.sent_since_progress = false;
        }
        for (id, revision) in due {
            self.send(WatchResponse {
                header: self.ctx.header(revision),
                watch_id: id,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }
}
