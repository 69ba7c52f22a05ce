//! The history of one key: which revisions wrote it, grouped into generations.
//!
//! A generation is one life of a key, from the put that created it to the delete that ended it
//! (etcd's `keyIndex`). The values themselves live in the revision-ordered record store; this
//! index only says which revision to look up for "key K as of revision R".

use serde::{Deserialize, Serialize};

use crate::KeyValue;
use crate::kv::Revision;

/// One life of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Generation {
    /// The puts of this life, ascending. Never empty: compaction keeps the newest put below the
    /// compaction point while the generation is still needed.
    puts: Vec<Revision>,
    /// The delete that ended this life; `None` for the live generation.
    tombstone: Option<Revision>,
}

/// Every generation of one key still held, oldest first, and the key's current value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyHistory {
    generations: Vec<Generation>,
    /// The record of the live put (`live`), kept here as well as in the record store: a put
    /// needs the key's previous value and a read at the current revision wants it, and this
    /// spares both a search of the record store. Boxed, so that the index's nodes, which
    /// hold their entries inline, do not grow by a whole record per key (100,000 keys: about
    /// 6 MiB less per node), and replaced in place by each put. Derived, not replicated: a
    /// restored state fills it in (`KvStore::recount_derived`).
    #[serde(skip)]
    current: Option<Box<KeyValue>>,
}

impl KeyHistory {
    /// The key's current put, if it exists now.
    pub fn live(&self) -> Option<Revision> {
        let last = self.generations.last()?;
        match last.tombstone {
            Some(_) => None,
            None => last.puts.last().copied(),
        }
    }

    /// The key's current value: the live put's record. `None` if the key does not exist now.
    pub fn current(&self) -> Option<&KeyValue> {
        self.current.as_deref()
    }

    /// The key's value as of `main` when that is its current value; `None` when the key does
    /// not exist now or `main` is older than its live put (the record store has the answer).
    pub fn current_at(&self, main: i64) -> Option<&KeyValue> {
        self.current.as_deref().filter(|kv| kv.mod_revision <= main)
    }

    /// Sets the live put's record, for a restored history (see `current`).
    pub fn restore_current(&mut self, kv: Option<KeyValue>) {
        self.current = kv.map(Box::new);
    }

    /// The put that gave the key its value as of `main` (inclusive), if it existed then.
    pub fn at(&self, main: i64) -> Option<Revision> {
        for generation in self.generations.iter().rev() {
            let first = generation.puts.first()?;
            if first.main > main {
                continue;
            }
            if generation.tombstone.is_some_and(|t| t.main <= main) {
                return None;
            }
            let n = generation.puts.partition_point(|r| r.main <= main);
            return Some(generation.puts[n - 1]);
        }
        None
    }

    /// Records a put of `kv` (its record at `revision`); it starts a new generation if the key
    /// does not exist now. Returns the value it replaces as the current one.
    pub fn put(&mut self, revision: Revision, kv: KeyValue) -> Option<KeyValue> {
        match self.generations.last_mut() {
            Some(generation) if generation.tombstone.is_none() => generation.puts.push(revision),
            _ => self.generations.push(Generation { puts: vec![revision], tombstone: None }),
        }
        match self.current.as_deref_mut() {
            Some(current) => Some(std::mem::replace(current, kv)),
            None => {
                self.current = Some(Box::new(kv));
                None
            }
        }
    }

    /// Records a delete of the live key; returns its value until now.
    pub fn delete(&mut self, revision: Revision) -> Option<KeyValue> {
        let generation = self
            .generations
            .last_mut()
            .filter(|g| g.tombstone.is_none())
            .expect("invariant: only a live key is deleted");
        generation.tombstone = Some(revision);
        self.current.take().map(|kv| *kv)
    }

    /// Forgets every revision below `main` that no read at or above `main` needs: all but the
    /// newest record below `main`, and that one too if it is a delete. Returns the revisions
    /// forgotten, so their records can be dropped.
    pub fn compact(&mut self, main: i64) -> Vec<Revision> {
        // Find the newest record below `main`: (generation, Some(put index)) or (generation, None)
        // for its tombstone.
        let mut newest: Option<(usize, Option<usize>)> = None;
        for (g, generation) in self.generations.iter().enumerate() {
            let n = generation.puts.partition_point(|r| r.main < main);
            if n == 0 {
                break;
            }
            newest = Some((g, Some(n - 1)));
            match generation.tombstone {
                Some(t) if t.main < main => newest = Some((g, None)),
                _ => break,
            }
        }
        let mut dropped = Vec::new();
        match newest {
            None => {}
            Some((g, None)) => {
                for generation in self.generations.drain(..=g) {
                    dropped.extend(generation.puts);
                    dropped.extend(generation.tombstone);
                }
            }
            Some((g, Some(i))) => {
                for generation in self.generations.drain(..g) {
                    dropped.extend(generation.puts);
                    dropped.extend(generation.tombstone);
                }
                dropped.extend(self.generations[0].puts.drain(..i));
            }
        }
        dropped
    }

    /// Whether nothing of the key is held any more.
    pub fn is_empty(&self) -> bool {
        self.generations.is_empty()
    }

    /// Every revision held, oldest first, each with whether it is a delete — after checking
    /// the shape a history built by puts, deletes and compactions always has: at least one
    /// generation, none without a put, revisions strictly ascending, and only the last
    /// generation without a tombstone. For validating a restored snapshot.
    pub fn checked_revisions(&self) -> Result<Vec<(Revision, bool)>, String> {
        if self.generations.is_empty() {
            return Err("a key with no history".into());
        }
        let mut revisions = Vec::new();
        let last = self.generations.len() - 1;
        for (g, generation) in self.generations.iter().enumerate() {
            if generation.puts.is_empty() {
                return Err("a generation without a put".into());
            }
            if g != last && generation.tombstone.is_none() {
                return Err("a generation before the last one without a delete".into());
            }
            revisions.extend(generation.puts.iter().map(|&r| (r, false)));
            revisions.extend(generation.tombstone.map(|r| (r, true)));
        }
        if revisions.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err("revisions out of order".into());
        }
        Ok(revisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn kv(main: i64) -> KeyValue {
        KeyValue { mod_revision: main, ..KeyValue::default() }
    }

    fn history() -> KeyHistory {
        // Life 1: put 2, put 4, deleted 5. Life 2: put 7, put 9.
        let mut h = KeyHistory::default();
        h.put(rev(2), kv(2));
        h.put(rev(4), kv(4));
        h.delete(rev(5));
        h.put(rev(7), kv(7));
        h.put(rev(9), kv(9));
        h
    }

    #[test]
    fn at_finds_the_put_in_force() {
        let h = history();
        assert_eq!(h.at(1), None);
        assert_eq!(h.at(2), Some(rev(2)));
        assert_eq!(h.at(3), Some(rev(2)));
        assert_eq!(h.at(4), Some(rev(4)));
        assert_eq!(h.at(5), None);
        assert_eq!(h.at(6), None);
        assert_eq!(h.at(8), Some(rev(7)));
        assert_eq!(h.at(100), Some(rev(9)));
        assert_eq!(h.live(), Some(rev(9)));
        // The current value answers from the live put on, and only then.
        assert_eq!(h.current_at(100).map(|kv| kv.mod_revision), Some(9));
        assert_eq!(h.current_at(9).map(|kv| kv.mod_revision), Some(9));
        assert_eq!(h.current_at(8), None);
        let mut deleted = h.clone();
        assert_eq!(deleted.delete(rev(10)).map(|kv| kv.mod_revision), Some(9));
        assert_eq!(deleted.current(), None);
        assert_eq!(deleted.current_at(100), None);
    }

    #[test]
    fn compact_keeps_what_reads_at_or_above_the_point_need() {
        let mut h = history();
        // Below 4 the newest record is the put at 2: it is the value at 4, so it stays.
        assert_eq!(h.compact(4), Vec::<Revision>::new());
        assert_eq!(h.compact(5), vec![rev(2)]);
        assert_eq!(h.at(5), None);
        assert_eq!(h.at(4), Some(rev(4)));
        // Below 6 the newest record is the tombstone at 5: the whole first life goes.
        assert_eq!(h.compact(6), vec![rev(4), rev(5)]);
        assert_eq!(h.at(6), None);
        assert_eq!(h.at(8), Some(rev(7)));
        assert_eq!(h.compact(9), Vec::<Revision>::new());
        assert_eq!(h.compact(10), vec![rev(7)]);
        assert_eq!(h.live(), Some(rev(9)));
    }

    #[test]
    fn compact_past_a_final_delete_empties_the_history() {
        let mut h = KeyHistory::default();
        h.put(rev(2), kv(2));
        h.delete(rev(3));
        assert_eq!(h.compact(3), Vec::<Revision>::new());
        assert_eq!(h.compact(4), vec![rev(2), rev(3)]);
        assert!(h.is_empty());
    }
}
