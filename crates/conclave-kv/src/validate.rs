//! Checking a decoded snapshot before the store takes it.
//!
//! A snapshot arrives from a file (checksummed, but written by whatever wrote it) or from a
//! peer's InstallSnapshot, and the store's code assumes invariants that its own writes keep:
//! counters that can still advance, a key index and a record store that describe the same
//! revisions, leases and keys that point at each other. A state that breaks one of them would
//! not fail at once but later — an overflowing revision, a lookup that finds nothing where
//! there must be something — so [`State::validate`] refuses it up front, naming what is wrong.

use std::collections::BTreeMap;

use crate::MAX_LEASE_TTL;
use crate::store::State;

/// The highest revision (and lease-id draw count) a restored state may hold. Writes add one
/// at a time, so a state below it has 2^62 writes left — 146,000 years at a million writes a
/// second — and the counters can never overflow after a restore.
pub(crate) const MAX_RESTORED_COUNTER: i64 = 1 << 62;

impl State {
    /// Whether this state is one the store's own writes could have produced, as far as the
    /// store relies on it. The message names the first problem found.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.revision < 1 || self.revision > MAX_RESTORED_COUNTER {
            return Err(format!(
                "revision {} is outside 1..={MAX_RESTORED_COUNTER}, where it can still advance",
                self.revision
            ));
        }
        if self.compact_revision < 0 || self.compact_revision > self.revision {
            return Err(format!(
                "compaction revision {} is outside 0..={}",
                self.compact_revision, self.revision
            ));
        }
        let mut live_leases = BTreeMap::new();
        let mut held = 0usize;
        for (key, history) in &self.index {
            let revisions = history.checked_revisions().map_err(|e| format!("key {key:?}: {e}"))?;
            held += revisions.len();
            for &(revision, deleted) in &revisions {
                let at = format!("key {key:?} at revision {}.{}", revision.main, revision.sub);
                if revision.main < 1 || revision.main > self.revision || revision.sub < 0 {
                    return Err(format!("{at}: outside 1..={}", self.revision));
                }
                let record =
                    self.records.get(&revision).ok_or_else(|| format!("{at}: no record"))?;
                let kv = &record.kv;
                if kv.key != *key || record.deleted != deleted || kv.mod_revision != revision.main {
                    return Err(format!("{at}: the record belongs elsewhere"));
                }
                if !deleted
                    && (kv.version < 1
                        || kv.create_revision < 1
                        || kv.create_revision > kv.mod_revision)
                {
                    return Err(format!("{at}: version or create revision out of range"));
                }
            }
            if let Some(&(revision, false)) = revisions.last() {
                let lease = self.records[&revision].kv.lease;
                if lease != 0 {
                    live_leases.insert(key.clone(), lease);
                }
            }
        }
        if held != self.records.len() {
            return Err(format!(
                "{} records, but the key index holds {held} revisions",
                self.records.len()
            ));
        }
        if !self.leases.can_draw(MAX_RESTORED_COUNTER as u64) {
            return Err(format!(
                "the lease id draw counter is past {MAX_RESTORED_COUNTER}, where it can still advance"
            ));
        }
        let mut attached = 0usize;
        for (id, ttl, keys) in self.leases.attachments() {
            if id == 0 || ttl > MAX_LEASE_TTL {
                return Err(format!("lease {id} with TTL {ttl}"));
            }
            for key in keys {
                if live_leases.get(key) != Some(&id) {
                    return Err(format!("lease {id} holds key {key:?}, which is not on it"));
                }
                attached += 1;
            }
        }
        if attached != live_leases.len() {
            return Err(format!(
                "{} live keys are on leases, but the leases hold {attached}",
                live_leases.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Revision;
    use crate::{Command, DeleteRangeRequest, KvStore, PutRequest};
    use bytes::Bytes;
    use conclave_core::{SnapshotMeta, StateMachine};

    /// A store after puts, a delete, a leased key and a compaction.
    fn state() -> State {
        let mut store = KvStore::new();
        let commands = [
            Command::LeaseGrant { id: 7, ttl: 10 },
            Command::Put(PutRequest::new("a", "1")),
            Command::Put(PutRequest::new("a", "2")),
            Command::Put(PutRequest::new("b", "1").with_lease(7)),
            Command::DeleteRange(DeleteRangeRequest::key("a")),
            Command::Put(PutRequest::new("a", "3")),
            Command::Compact { revision: 3 },
        ];
        for (i, command) in commands.iter().enumerate() {
            store.apply(i as u64 + 1, Some(&command.encode()));
        }
        store.state.clone()
    }

    fn refused(state: &State) -> String {
        let format = KvStore::new().snapshot()[0];
        let bytes = postcard::to_extend(state, vec![format]).unwrap();
        let mut store = KvStore::new();
        let err = store.restore(&SnapshotMeta::default(), &bytes).unwrap_err();
        assert_eq!(store.current_revision(), 1, "a refused snapshot changes nothing");
        err
    }

    #[test]
    fn a_state_the_store_wrote_is_valid() {
        state().validate().unwrap();
        KvStore::new().state.validate().unwrap();
    }

    #[test]
    fn counters_that_cannot_advance_are_refused() {
        let mut s = state();
        s.revision = i64::MAX;
        assert_eq!(
            refused(&s),
            format!(
                "inconsistent kv snapshot: revision {} is outside 1..={MAX_RESTORED_COUNTER}, \
                 where it can still advance",
                i64::MAX
            )
        );
        s.revision = MAX_RESTORED_COUNTER;
        s.validate().unwrap();
        s.revision = MAX_RESTORED_COUNTER + 1;
        assert!(refused(&s).contains("is outside"));
        s.revision = 0;
        assert!(refused(&s).contains("revision 0 is outside"));
        let mut s = state();
        s.compact_revision = s.revision + 1;
        assert!(refused(&s).contains("compaction revision"));
        let mut s = state();
        s.leases.exhaust_draws();
        assert!(refused(&s).contains("lease id draw counter"));
    }

    #[test]
    fn index_and_records_must_agree() {
        let mut s = state();
        s.records.insert(Revision::new(2, 5), s.records.values().next().unwrap().clone());
        assert!(refused(&s).contains("but the key index holds"), "an orphan record");

        let mut s = state();
        let first = *s.records.keys().next().unwrap();
        s.records.remove(&first);
        assert!(refused(&s).contains("no record"), "a missing record");

        let mut s = state();
        let (&revision, record) = s.records.iter().next().unwrap();
        let mut moved = record.clone();
        moved.kv.key = Bytes::from_static(b"elsewhere");
        s.records.insert(revision, moved);
        assert!(refused(&s).contains("belongs elsewhere"));

        let mut s = state();
        s.revision = 4;
        assert!(refused(&s).contains("outside 1..=4"), "a record from the future");
    }

    #[test]
    fn leases_and_their_keys_must_agree() {
        let mut s = state();
        s.leases.attach(7, &Bytes::from_static(b"a"));
        assert!(refused(&s).contains("lease 7 holds key"));
        let mut s = state();
        s.leases.detach(7, b"b");
        assert!(refused(&s).contains("live keys are on leases"));
    }
}
