//! Which membership is in effect, and which one was in effect at any index still in the log.
//!
//! With single-server changes a configuration takes effect as soon as its entry is appended,
//! committed or not (thesis §4.1), and is undone if that entry is truncated away. So the replica
//! keeps every membership entry of its log, keyed by index, above a base that came from the
//! initial configuration or a snapshot.

use bytes::Bytes;
use conclave_core::{Entry, EntryKind, Membership};
use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct MembershipLog {
    /// Index → membership in effect from that index on. Never empty: the first key is the base.
    configs: BTreeMap<u64, Membership>,
}

impl MembershipLog {
    pub fn new(base_index: u64, base: Membership) -> Self {
        Self { configs: BTreeMap::from([(base_index, base)]) }
    }

    /// The membership in effect now (the latest one in the log).
    pub fn current(&self) -> &Membership {
        self.configs.values().next_back().expect("membership log is never empty")
    }

    /// The index of the entry that set the current membership (or the base's index).
    pub fn current_index(&self) -> u64 {
        *self.configs.keys().next_back().expect("membership log is never empty")
    }

    /// The membership in effect at `index`.
    pub fn at(&self, index: u64) -> &Membership {
        self.configs
            .range(..=index)
            .next_back()
            .or_else(|| self.configs.iter().next())
            .map(|(_, m)| m)
            .expect("membership log is never empty")
    }

    /// Takes note of the membership entries among `entries`, just appended.
    pub fn appended(&mut self, entries: &[Entry]) {
        for entry in entries.iter().filter(|e| e.kind == EntryKind::Membership) {
            // An entry that does not decode was never produced by this crate; every replica
            // decodes the same bytes the same way, so skipping it keeps them in agreement.
            if let Some(membership) = decode(&entry.data) {
                self.configs.insert(entry.index, membership);
            }
        }
    }

    /// The log lost every entry from `index` on.
    pub fn truncated(&mut self, index: u64) {
        let base_key = *self.configs.keys().next().expect("membership log is never empty");
        if index > base_key {
            self.configs.split_off(&index);
        }
    }

    /// The log was compacted through `index`: the membership then in effect becomes the base.
    pub fn compacted(&mut self, index: u64) {
        let at = self.at(index).clone();
        self.configs = self.configs.split_off(&(index + 1));
        self.configs.insert(index, at);
    }

    /// The log was replaced by a snapshot at `index` carrying `membership`.
    pub fn restored(&mut self, index: u64, membership: Membership) {
        self.configs = BTreeMap::from([(index, membership)]);
    }
}

pub(crate) fn encode(membership: &Membership) -> Bytes {
    Bytes::from(postcard::to_allocvec(membership).expect("a membership always encodes"))
}

pub(crate) fn decode(data: &[u8]) -> Option<Membership> {
    postcard::from_bytes(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::NodeId;

    fn entry(index: u64, voters: &[u64]) -> Entry {
        let m = Membership::new(voters.iter().map(|&v| NodeId(v)));
        Entry { index, term: 1, kind: EntryKind::Membership, data: encode(&m) }
    }

    #[test]
    fn takes_effect_when_appended_and_reverts_when_truncated() {
        let mut log = MembershipLog::new(0, Membership::new([NodeId(1)]));
        log.appended(&[entry(3, &[1, 2]), entry(5, &[1, 2, 3])]);
        assert_eq!(log.current().voters.len(), 3);
        assert_eq!(log.at(4).voters.len(), 2);
        log.truncated(5);
        assert_eq!(log.current_index(), 3);
        log.compacted(4);
        assert_eq!(log.current_index(), 4);
        assert_eq!(log.current().voters.len(), 2);
        log.truncated(2);
        assert_eq!(log.current().voters.len(), 2);
    }
}
