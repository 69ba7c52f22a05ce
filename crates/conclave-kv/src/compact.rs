//! Compaction: forgetting history that no read may ask for any more.
//!
//! After `compact(C)`, reads at revisions below C fail with [`KvError::Compacted`], and reads at C
//! or above still answer exactly as before. Each key keeps every record at C or above, plus its
//! newest record below C if that is a put (it is the key's value at C, and the `prev_kv` of its
//! next change); a key whose newest record below C is a delete is forgotten up to there. So a
//! watch may still start at C itself and replay every event from C on.

use bytes::Bytes;

use crate::kv::Revision;
use crate::{KvError, KvStore};

impl KvStore {
    /// Compacts the history below `revision` (etcd's `Compact`): refused when `revision` is at
    /// or below the last compaction, or past the current revision.
    pub(crate) fn compact(&mut self, revision: i64) -> Result<(), KvError> {
        if revision <= self.state.compact_revision {
            return Err(KvError::Compacted);
        }
        if revision > self.state.revision {
            return Err(KvError::FutureRevision);
        }
        // Only keys with records between the last compaction point and the new one can lose
        // anything: below the last point each key kept at most its newest put, which stays its
        // newest below the new point unless the key changed since.
        let since = Revision::new(self.state.compact_revision, 0);
        let mut keys: Vec<Bytes> = self
            .state
            .records
            .range(since..Revision::new(revision, 0))
            .map(|(_, record)| record.kv.key.clone())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let Some(history) = self.state.index.get_mut(&key) else { continue };
            let dropped = history.compact(revision);
            if history.is_empty() {
                self.state.index.remove(&key);
            }
            for gone in &dropped {
                self.drop_record(gone);
            }
        }
        self.state.compact_revision = revision;
        Ok(())
    }
}
