//! The fan-out from the store to watch streams: the store's event listener publishes each
//! write's events once, and every watch stream holds a receiver.
//!
//! The channel is a bounded tokio broadcast. A stream that falls behind loses the oldest
//! batches (`Lagged`) and catches up from the store's history instead, so one slow client
//! never holds back the apply loop or the other watchers.

use conclave_kv::{Event, EventListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Batches a stream may fall behind by before it must catch up from the store.
const CHANNEL_CAPACITY: usize = 1024;

/// The events of one write, all at `revision`.
#[derive(Debug)]
pub(crate) struct Batch {
    pub revision: i64,
    pub events: Vec<Event>,
}

#[derive(Debug)]
pub(crate) struct WatchHub {
    sender: broadcast::Sender<Arc<Batch>>,
    /// Watchers open on this member, over every stream.
    watchers: AtomicUsize,
}

impl WatchHub {
    pub fn new() -> Self {
        Self { sender: broadcast::channel(CHANNEL_CAPACITY).0, watchers: AtomicUsize::new(0) }
    }

    /// Takes a place for one more watcher, unless `max` are open already.
    pub fn reserve_watcher(&self, max: usize) -> bool {
        self.watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Gives back `n` places taken with [`Self::reserve_watcher`].
    pub fn release_watchers(&self, n: usize) {
        if n > 0 {
            self.watchers.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// The function to install as the store's event listener. It runs inside the apply loop,
    /// so it only copies the events (and not even that while nobody watches) and never waits.
    pub fn listener(&self) -> EventListener {
        let sender = self.sender.clone();
        Box::new(move |revision, events| {
            if sender.receiver_count() > 0 {
                let batch = Arc::new(Batch { revision, events: events.to_vec() });
                // No receiver left between the check and the send is fine: nobody watches.
                let _ = sender.send(batch);
            }
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.sender.subscribe()
    }
}
