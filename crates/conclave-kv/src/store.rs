//! [`KvStore`]: the MVCC key-value store every replica applies the log to.
//!
//! Two structures hold the data, as in etcd's mvcc package: a key index (key → [`KeyHistory`],
//! its revisions grouped into generations) and a record store ordered by revision (revision →
//! the key's full record at that revision). A read at revision R walks the key index over the
//! requested range and, per key, looks up the record in force at R. Watch catch-up walks the
//! record store from a start revision. Both are ordered maps, so iteration order (and with it
//! every output and the snapshot encoding) is the same on every replica; both are persistent
//! (`imbl::OrdMap`: nodes shared between copies, copied on write), so a copy of the whole state
//! for a snapshot costs a few reference counts, and the snapshot is encoded off the node thread
//! while writes go on.
//!
//! The write path lives in `write.rs`, txns in `txn.rs`, compaction in `compact.rs`, the read
//! path's sorting and filtering in `range.rs`, and the [`conclave_core::StateMachine`] face in
//! `snapshot.rs`.

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::auth::AuthState;
use crate::key_index::KeyHistory;
use crate::key_range::KeyRange;
use crate::kv::Revision;
use crate::lease::Leases;
use crate::{Event, EventKind, KeyValue, KvError, LeaseInfo, RangeRequest, RangeResponse};

/// Called after each write that changed keys, with the new revision and its events in order.
///
/// It runs inside `apply`, while the caller holds the store: it must be quick and must not call
/// back into the store (hand the events to a channel instead).
pub type EventListener = Box<dyn FnMut(i64, &[Event]) + Send + Sync>;

/// One key's state at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// For a delete: the key, and the deleting revision as `mod_revision`. The key is the key
    /// index's copy, shared by every revision of the key (`put_in`).
    pub kv: KeyValue,
    pub deleted: bool,
    /// The key's previous record in the same generation (a delete's is the last put), for
    /// events' `prev_kv`. It may point at a record compaction has dropped.
    pub prev: Option<Revision>,
}

/// Everything replicated: what a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub applied_index: u64,
    /// The current revision: that of the last write (1 in an empty store, as in etcd).
    pub revision: i64,
    /// Reads below this revision fail; 0 before the first compaction.
    pub compact_revision: i64,
    #[serde(deserialize_with = "ord_map")]
    pub index: OrdMap<Bytes, KeyHistory>,
    #[serde(deserialize_with = "ord_map")]
    pub records: OrdMap<Revision, Record>,
    pub leases: Leases,
    /// Users, roles and whether auth is on.
    pub auth: AuthState,
}

/// Reads a map entry by entry. imbl's own `Deserialize` reserves room for as many entries as the
/// input claims, so a corrupt length in a snapshot would abort the process on an allocation of
/// gigabytes; this reserves nothing, and a short input ends in an error.
fn ord_map<'de, D, K, V>(deserializer: D) -> Result<OrdMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);

    impl<'de, K, V> serde::de::Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
    {
        type Value = OrdMap<K, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut entries: A,
        ) -> Result<Self::Value, A::Error> {
            let mut map = OrdMap::new();
            while let Some((key, value)) = entries.next_entry()? {
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

impl Default for State {
    fn default() -> Self {
        Self {
            applied_index: 0,
            revision: 1,
            compact_revision: 0,
            index: OrdMap::new(),
            records: OrdMap::new(),
            leases: Leases::default(),
            auth: AuthState::default(),
        }
    }
}

/// An MVCC key-value store with etcd v3's revision semantics, applied deterministically.
///
/// Writes arrive as [`crate::Command`]s through [`KvStore::apply_command`] (or
/// [`conclave_core::StateMachine::apply`] with encoded bytes); reads are served directly by
/// [`KvStore::range`] once the protocol allows a read.
#[derive(Default)]
pub struct KvStore {
    pub(crate) state: State,
    pub(crate) listener: Option<EventListener>,
    /// [`Record::cost`] summed over `state.records`: derived, not replicated.
    pub(crate) held_bytes: u64,
}

/// What one held revision counts for in [`KvStore::held_bytes`] beyond its key and value: its
/// revision, metadata and map entries, roughly.
pub const RECORD_OVERHEAD_BYTES: u64 = 64;

/// What a revision of `key` holding `value` counts for in [`KvStore::held_bytes`]; the space
/// quota prices a write with it before proposing it.
pub fn held_cost(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + RECORD_OVERHEAD_BYTES
}

impl Record {
    /// What this record counts for in [`KvStore::held_bytes`].
    pub(crate) fn cost(&self) -> u64 {
        held_cost(&self.kv.key, &self.kv.value)
    }
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("applied_index", &self.state.applied_index)
            .field("revision", &self.state.revision)
            .field("compact_revision", &self.state.compact_revision)
            .field("keys", &self.state.index.len())
            .field("records", &self.state.records.len())
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last write (1 in an empty store).
    pub fn current_revision(&self) -> i64 {
        self.state.revision
    }

    /// The bytes the history holds: the key and value of every revision since the last
    /// compaction, plus [`RECORD_OVERHEAD_BYTES`] each. What the space quota counts; the same on
    /// every replica of a protocol that orders writes.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Inserts a record and counts it.
    pub(crate) fn hold(&mut self, revision: Revision, record: Record) {
        self.held_bytes += record.cost();
        if let Some(replaced) = self.state.records.insert(revision, record) {
            self.held_bytes -= replaced.cost();
        }
    }

    /// Removes a record and stops counting it.
    pub(crate) fn drop_record(&mut self, revision: &Revision) {
        if let Some(dropped) = self.state.records.remove(revision) {
            self.held_bytes -= dropped.cost();
        }
    }

    /// Recomputes what the store derives from the replicated state, for a restored one: the
    /// held bytes and each key's current value.
    pub(crate) fn recount_derived(&mut self) {
        self.held_bytes = self.state.records.values().map(Record::cost).sum();
        let records = &self.state.records;
        let index = std::mem::take(&mut self.state.index);
        self.state.index = index
            .into_iter()
            .map(|(key, mut history)| {
                let current = history.live().and_then(|r| records.get(&r)).map(|r| r.kv.clone());
                history.restore_current(current);
                (key, history)
            })
            .collect();
    }

    /// The revision of the last compaction; 0 if there was none.
    pub fn compact_revision(&self) -> i64 {
        self.state.compact_revision
    }

    /// Sets the function told about every write's events (see [`EventListener`]). It is not
    /// part of the replicated state: restoring a snapshot keeps it.
    pub fn set_event_listener(&mut self, listener: EventListener) {
        self.listener = Some(listener);
    }

    /// Removes the event listener, if one was set.
    pub fn clear_event_listener(&mut self) {
        self.listener = None;
    }

    /// Reads keys at the requested revision (etcd's `Range`). This is the read path: it does
    /// not go through the log, so the caller decides how fresh the store must be first.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let view = self.read_revision(req.revision, self.state.revision)?;
        Ok(self.range_view(req, view, self.state.revision))
    }

    /// Every change at revision `start_revision` or later to a key in the range, in revision
    /// order, with `prev_kv` where still held: what a watch created at `start_revision` must
    /// replay before it follows live events. A `start_revision` <= 0 or past the current
    /// revision replays nothing.
    pub fn events_since(
        &self,
        start_revision: i64,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<Vec<Event>, KvError> {
        if start_revision > 0 && start_revision < self.state.compact_revision {
            return Err(KvError::Compacted);
        }
        if start_revision <= 0 {
            return Ok(Vec::new());
        }
        let range = KeyRange::new(&Bytes::copy_from_slice(key), &Bytes::copy_from_slice(range_end));
        let events = self
            .state
            .records
            .range(Revision::new(start_revision, 0)..)
            .filter(|(_, record)| range.contains(&record.kv.key))
            .map(|(_, record)| self.event_of(record))
            .collect();
        Ok(events)
    }

    /// Every lease, by id.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.state.leases.all()
    }

    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.state.leases.info(id)
    }

    /// How many leases exist (without copying them, unlike [`Self::leases`]).
    pub fn lease_count(&self) -> usize {
        self.state.leases.count()
    }

    /// Users, roles and permissions, for authenticating and authorizing requests.
    pub fn auth(&self) -> &AuthState {
        &self.state.auth
    }

    /// Checks a requested read revision against the store (<= 0 means `current`) and returns
    /// the revision to read at. `current` is the revision the reader sees as current (inside a
    /// txn, possibly one past the store's).
    pub(crate) fn read_revision(&self, requested: i64, current: i64) -> Result<i64, KvError> {
        if requested > current {
            return Err(KvError::FutureRevision);
        }
        let revision = if requested <= 0 { current } else { requested };
        if revision < self.state.compact_revision {
            return Err(KvError::Compacted);
        }
        Ok(revision)
    }

    /// The key's value as of `main`, if it existed then.
    pub(crate) fn kv_at<'a>(&'a self, history: &'a KeyHistory, main: i64) -> Option<&'a KeyValue> {
        if let Some(kv) = history.current_at(main) {
            return Some(kv);
        }
        let revision = history.at(main)?;
        self.state.records.get(&revision).map(|record| &record.kv)
    }

    /// The key's current value, if it exists.
    pub(crate) fn live_kv(&self, key: &[u8]) -> Option<&KeyValue> {
        self.state.index.get(key)?.current()
    }

    pub(crate) fn event_of(&self, record: &Record) -> Event {
        let prev_kv = record
            .prev
            .and_then(|prev| self.state.records.get(&prev))
            .filter(|prev| !prev.deleted)
            .map(|prev| prev.kv.clone());
        let kind = if record.deleted { EventKind::Delete } else { EventKind::Put };
        Event { kind, kv: record.kv.clone(), prev_kv }
    }
}
