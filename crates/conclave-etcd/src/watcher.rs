//! One watcher on a watch stream: the key range it follows, what it wants to hear, and the
//! next revision it has not been told about yet.

use bytes::Bytes;
use conclave_kv::{Event, EventKind};

use crate::convert;
use crate::pb::etcdserverpb::WatchCreateRequest;
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::mvccpb;

#[derive(Debug)]
pub(crate) struct Watcher {
    key: Bytes,
    range_end: Bytes,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    pub progress_notify: bool,
    /// Events below this revision were delivered already (or precede the watch).
    pub next_revision: i64,
    /// Whether anything was sent since the last progress notification.
    pub sent_since_progress: bool,
}

impl Watcher {
    pub fn new(req: &WatchCreateRequest, next_revision: i64) -> Self {
        Self {
            key: req.key.clone(),
            range_end: req.range_end.clone(),
            no_put: req.filters.contains(&(FilterType::Noput as i32)),
            no_delete: req.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            next_revision,
            sent_since_progress: false,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn range_end(&self) -> &[u8] {
        &self.range_end
    }

    /// etcd's key range convention: an empty end is the key alone, `"\0"` every key from it.
    pub fn covers(&self, key: &[u8]) -> bool {
        match &self.range_end[..] {
            [] => key == &self.key[..],
            [0] => key >= &self.key[..],
            end => key >= &self.key[..] && key < end,
        }
    }

    /// The events of `events` this watcher wants, converted for the wire. The caller has
    /// checked the revision; this checks range and filters.
    pub fn select<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<mvccpb::Event> {
        events
            .into_iter()
            .filter(|e| self.covers(&e.kv.key))
            .filter(|e| match e.kind {
                EventKind::Put => !self.no_put,
                EventKind::Delete => !self.no_delete,
            })
            .map(|e| convert::event(e.clone(), self.prev_kv))
            .collect()
    }
}

/// Why a create request cannot make a watcher, if it cannot: etcd refuses an inverted range.
pub(crate) fn invalid_range(req: &WatchCreateRequest) -> Option<&'static str> {
    let end = &req.range_end[..];
    if !end.is_empty() && end != [0] && end <= &req.key[..] {
        return Some("mvcc: watcher range is empty");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_kv::KeyValue;

    fn put(key: &'static str) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue { key: Bytes::from_static(key.as_bytes()), ..Default::default() },
            prev_kv: None,
        }
    }

    #[test]
    fn prefix_watch_selects_keys_under_the_prefix() {
        let req = WatchCreateRequest {
            key: Bytes::from_static(b"a/"),
            range_end: Bytes::from_static(b"a0"),
            ..Default::default()
        };
        let w = Watcher::new(&req, 1);
        let events = [put("a/1"), put("b"), put("a/2"), put("a")];
        let keys: Vec<_> = w.select(&events).into_iter().map(|e| e.kv.unwrap().key).collect();
        assert_eq!(keys, vec![Bytes::from_static(b"a/1"), Bytes::from_static(b"a/2")]);
    }

    #[test]
    fn noput_filter_drops_puts() {
        let req = WatchCreateRequest {
            key: Bytes::from_static(b"k"),
            filters: vec![FilterType::Noput as i32],
            ..Default::default()
        };
        assert!(Watcher::new(&req, 1).select(&[put("k")]).is_empty());
    }

    #[test]
    fn inverted_range_is_refused() {
        let req = WatchCreateRequest {
            key: Bytes::from_static(b"b"),
            range_end: Bytes::from_static(b"a"),
            ..Default::default()
        };
        assert!(invalid_range(&req).is_some());
    }
}
