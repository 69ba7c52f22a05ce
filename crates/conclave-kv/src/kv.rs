//! The records clients see: a key's value at a revision (`mvccpb.KeyValue`) and a change to it
//! (`mvccpb.Event`), plus the revision numbering that orders every change.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A key's state at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Bytes,
    /// The revision of the put that created this generation of the key.
    pub create_revision: i64,
    /// The revision of the last change to the key.
    pub mod_revision: i64,
    /// Puts since the key was (re)created: 1 on create, 0 on a delete event's record.
    pub version: i64,
    pub value: Bytes,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// Whether an event wrote or removed its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change to one key, as etcd's `mvccpb.Event`.
///
/// A delete's `kv` holds only the key and the deleting revision (in `mod_revision`), as etcd's
/// does. `prev_kv` is the key's value just before the change, when the key existed then and
/// that value has not been compacted away; the API layer drops it for watchers that did not ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// Orders every change: `main` is the store revision a write request created, `sub` the position
/// of the change among that request's changes (a txn's writes share one `main`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub(crate) struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }
}
