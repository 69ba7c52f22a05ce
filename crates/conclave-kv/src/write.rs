//! The write path: applying a [`Command`], and the put and delete primitives txns share.
//!
//! A write request is checked completely before it touches anything, then applied in place as
//! one [`Batch`]: every change gets revision `(current + 1, sub)` with `sub` counting up, and
//! the store's revision moves to `current + 1` only if something changed (a delete that matched
//! nothing, or a read-only txn, creates no revision). Because nothing can fail after the checks,
//! a refused request leaves no trace and no rollback is needed.

use bytes::Bytes;

use crate::key_index::KeyHistory;
use crate::key_range::KeyRange;
use crate::kv::Revision;
use crate::store::Record;
use crate::{AuthError, KvError, KvStore, Output, PutRequest, PutResponse};
use crate::{Command, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyValue};

/// The changes of one write request, all at revision `main`.
#[derive(Debug)]
pub(crate) struct Batch {
    main: i64,
    events: Vec<Event>,
}

impl KvStore {
    /// Applies one command and returns its output; a refused command changes nothing and
    /// returns [`Output::Error`].
    pub fn apply_command(&mut self, command: &Command) -> Output {
        self.try_apply(command).unwrap_or_else(Output::Error)
    }

    fn try_apply(&mut self, command: &Command) -> Result<Output, KvError> {
        match command {
            Command::Put(req) => {
                check_put_request(req)?;
                self.check_put_state(req)?;
                let mut batch = self.begin();
                let mut resp = self.put_in(&mut batch, req);
                resp.revision = self.commit(batch);
                Ok(Output::Put(resp))
            }
            Command::DeleteRange(req) => {
                if req.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                let mut batch = self.begin();
                let mut resp = self.delete_range_in(&mut batch, req);
                resp.revision = self.commit(batch);
                Ok(Output::DeleteRange(resp))
            }
            Command::Txn(req) => self.apply_txn(req).map(Output::Txn),
            Command::Compact { revision } => {
                self.compact(*revision)?;
                Ok(Output::Compact { revision: self.state.revision })
            }
            Command::LeaseGrant { id, ttl } => {
                let id = self.state.leases.grant(*id, *ttl)?;
                Ok(Output::LeaseGrant { id, ttl: *ttl, revision: self.state.revision })
            }
            Command::LeaseRevoke { id } => {
                let keys = self.state.leases.revoke(*id)?;
                let mut batch = self.begin();
                for key in &keys {
                    self.delete_in(&mut batch, key);
                }
                Ok(Output::LeaseRevoke { revision: self.commit(batch) })
            }
            Command::LeaseCheckpoint { id, remaining_ttl } => {
                self.state.leases.checkpoint(*id, *remaining_ttl)?;
                Ok(Output::LeaseCheckpoint { revision: self.state.revision })
            }
            Command::Auth(auth) => {
                let auth_revision = self.state.auth.apply(auth)?;
                Ok(Output::Auth { revision: self.state.revision, auth_revision })
            }
            Command::Guarded { auth_revision, command } => {
                let inner = Command::decode(command)?;
                if matches!(inner, Command::Guarded { .. }) {
                    return Err(KvError::Decode("a guarded command inside another".into()));
                }
                if *auth_revision != self.state.auth.revision() {
                    return Err(AuthError::OldRevision.into());
                }
                self.try_apply(&inner)
            }
        }
    }

    pub(crate) fn begin(&self) -> Batch {
        Batch { main: self.state.revision + 1, events: Vec::new() }
    }

    /// The revision a reader inside the batch sees as current: the batch's own once it has
    /// changed something (etcd's txns read their own writes).
    pub(crate) fn batch_view(&self, batch: &Batch) -> i64 {
        if batch.events.is_empty() { self.state.revision } else { batch.main }
    }

    /// Ends a batch: moves the revision if anything changed, tells the listener, and returns
    /// the store's revision.
    pub(crate) fn commit(&mut self, batch: Batch) -> i64 {
        if !batch.events.is_empty() {
            self.state.revision = batch.main;
            if let Some(listener) = self.listener.as_mut() {
                listener(batch.main, &batch.events);
            }
        }
        self.state.revision
    }

    /// What a put needs from the current state: its lease exists, and the key exists if the
    /// put keeps its value or lease.
    pub(crate) fn check_put_state(&self, req: &PutRequest) -> Result<(), KvError> {
        if req.lease != 0 && !self.state.leases.contains(req.lease) {
            return Err(KvError::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease) && self.live_kv(&req.key).is_none() {
            return Err(KvError::KeyNotFound);
        }
        Ok(())
    }

    /// Applies a checked put; `revision` in the response is the batch's.
    pub(crate) fn put_in(&mut self, batch: &mut Batch, req: &PutRequest) -> PutResponse {
        let revision = Revision::new(batch.main, batch.events.len() as i64);
        let main = batch.main;
        // One search of the key index finds the key's current value and records this put
        // (imbl's `entry` would search twice). The record takes the index's copy of the key:
        // every revision of a key then shares one allocation, and a record held for a long
        // time pins nothing of the request it came from.
        let (kv, prev, prev_revision) = match self.state.index.get_key_value_mut(&req.key) {
            Some((key, history)) => {
                let prev_revision = history.live();
                let kv = put_value(key.clone(), history.current(), req, main);
                let prev = history.put(revision, kv.clone());
                (kv, prev, prev_revision)
            }
            None => {
                let kv = put_value(req.key.clone(), None, req, main);
                let mut history = KeyHistory::default();
                history.put(revision, kv.clone());
                self.state.index.insert(req.key.clone(), history);
                (kv, None, None)
            }
        };
        if let Some(old) = prev.as_ref().filter(|p| p.lease != 0) {
            self.state.leases.detach(old.lease, &req.key);
        }
        if kv.lease != 0 {
            self.state.leases.attach(kv.lease, &req.key);
        }
        let record = Record { kv: kv.clone(), deleted: false, prev: prev_revision };
        self.hold(revision, record);
        let prev_kv = if req.prev_kv { prev.clone() } else { None };
        batch.events.push(Event { kind: EventKind::Put, kv, prev_kv: prev });
        PutResponse { revision: main, prev_kv }
    }

    /// Deletes every key in the range that exists now; `revision` in the response is the
    /// batch's view afterwards.
    pub(crate) fn delete_range_in(
        &mut self,
        batch: &mut Batch,
        req: &DeleteRangeRequest,
    ) -> DeleteRangeResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let keys: Vec<Bytes> = match range.bounds() {
            Some(bounds) => self
                .state
                .index
                .range::<_, [u8]>(bounds)
                .filter(|(_, history)| history.live().is_some())
                .map(|(key, _)| key.clone())
                .collect(),
            None => Vec::new(),
        };
        let mut prev_kvs = Vec::new();
        for key in &keys {
            let prev = self.delete_in(batch, key);
            if req.prev_kv {
                prev_kvs.extend(prev);
            }
        }
        DeleteRangeResponse {
            revision: self.batch_view(batch),
            deleted: keys.len() as i64,
            prev_kvs,
        }
    }

    /// Deletes one key if it exists now, returning its last value.
    pub(crate) fn delete_in(&mut self, batch: &mut Batch, key: &Bytes) -> Option<KeyValue> {
        let history = self.state.index.get_mut(&key[..])?;
        let prev_revision = history.live()?;
        let revision = Revision::new(batch.main, batch.events.len() as i64);
        let prev = history.delete(revision).expect("invariant: a live key has a current value");
        if prev.lease != 0 {
            self.state.leases.detach(prev.lease, key);
        }
        let kv = KeyValue { key: key.clone(), mod_revision: batch.main, ..KeyValue::default() };
        let record = Record { kv: kv.clone(), deleted: true, prev: Some(prev_revision) };
        self.hold(revision, record);
        batch.events.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(prev.clone()) });
        Some(prev)
    }
}

/// The record a put writes at revision `main`, given the key's current value `prev`.
fn put_value(key: Bytes, prev: Option<&KeyValue>, req: &PutRequest, main: i64) -> KeyValue {
    KeyValue {
        key,
        create_revision: prev.map_or(main, |p| p.create_revision),
        mod_revision: main,
        version: prev.map_or(1, |p| p.version + 1),
        value: match (prev, req.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => req.value.clone(),
        },
        lease: match (prev, req.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => req.lease,
        },
    }
}

/// The checks on a put that need no state (etcd's `checkPutRequest`).
pub(crate) fn check_put_request(req: &PutRequest) -> Result<(), KvError> {
    if req.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Command {
        Command::Put(PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            ..Default::default()
        })
    }

    #[test]
    fn every_revision_of_a_key_shares_the_index_copy_of_the_key() {
        let mut store = KvStore::new();
        for value in ["a", "b", "c"] {
            store.apply_command(&put("shared", value));
        }
        let (key, _) = store.state.index.get_key_value(&b"shared"[..]).unwrap();
        let records: Vec<_> = store.state.records.values().collect();
        assert_eq!(records.len(), 3);
        for record in records {
            assert_eq!(record.kv.key.as_ptr(), key.as_ptr(), "a record with its own key copy");
        }
    }
}
