//! [`HeldSnapshot`]: the latest snapshot as a protocol keeps it for peers that fall behind.
//!
//! A snapshot's data is the whole state machine, encoded: as large as the state itself. The
//! driver has it in its store already, and a peer needs it only when it lags past the log, so a
//! protocol keeps the snapshot's metadata and lets go of its data. When a peer needs it, the
//! protocol asks the driver for it ([`Ready::snapshot_wanted`](crate::Ready)), the driver reads
//! it back from its store and hands it over ([`Protocol::snapshot_loaded`](crate::Protocol)),
//! and the protocol sends it at its next attempt; it holds the data a little while for other
//! peers that may need it too, then lets go again.

use crate::{Snapshot, SnapshotMeta};
use bytes::Bytes;

/// How many ticks loaded data stays held after it was last sent.
pub const HELD_SNAPSHOT_RELEASE_TICKS: u32 = 100;

/// The latest snapshot's metadata, and its data only while peers are being sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldSnapshot {
    meta: Option<SnapshotMeta>,
    data: Option<Bytes>,
    wanted: bool,
    idle_ticks: u32,
}

impl HeldSnapshot {
    /// Holds `snapshot`'s metadata as the latest, and lets go of its data (the store has it).
    pub fn new(snapshot: Option<Snapshot>) -> Self {
        let mut held = Self::default();
        if let Some(snapshot) = snapshot {
            held.replace(snapshot);
        }
        held
    }

    pub fn meta(&self) -> Option<&SnapshotMeta> {
        self.meta.as_ref()
    }

    /// The latest snapshot's index, or 0 with none.
    pub fn index(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.index)
    }

    /// A newer snapshot replaces the held one; its data is let go.
    pub fn replace(&mut self, snapshot: Snapshot) {
        self.meta = Some(snapshot.meta);
        self.data = None;
        self.wanted = false;
        self.idle_ticks = 0;
    }

    /// The whole snapshot to send, if its data is held; otherwise `None`, and the data is
    /// asked for (see [`HeldSnapshot::take_wanted`]). `None` too when there is no snapshot.
    pub fn for_sending(&mut self) -> Option<Snapshot> {
        let meta = self.meta.clone()?;
        match &self.data {
            Some(data) => {
                self.idle_ticks = 0;
                Some(Snapshot { meta, data: data.clone() })
            }
            None => {
                self.wanted = true;
                None
            }
        }
    }

    /// Whether the data was asked for and not yet handed over.
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// Whether to ask the driver for the data now; asks once per [`HeldSnapshot::for_sending`]
    /// that found it missing.
    pub fn take_wanted(&mut self) -> bool {
        std::mem::take(&mut self.wanted)
    }

    /// The driver read the data back. Taken only if it is the held snapshot's (a newer one may
    /// have replaced it meanwhile); the metadata stays the protocol's own.
    pub fn loaded(&mut self, snapshot: Snapshot) {
        if self.meta.as_ref().is_some_and(|m| m.index == snapshot.meta.index) {
            self.data = Some(snapshot.data);
            self.idle_ticks = 0;
        }
    }

    /// Lets go of loaded data [`HELD_SNAPSHOT_RELEASE_TICKS`] ticks after it was last sent.
    pub fn tick(&mut self) {
        if self.data.is_some() {
            self.idle_ticks += 1;
            if self.idle_ticks >= HELD_SNAPSHOT_RELEASE_TICKS {
                self.data = None;
            }
        }
    }

    /// Whether the data is held now.
    pub fn has_data(&self) -> bool {
        self.data.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(index: u64, data: &'static [u8]) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta { index, term: 1, ..Default::default() },
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn keeps_the_metadata_and_asks_for_the_data_when_a_peer_needs_it() {
        let mut held = HeldSnapshot::new(Some(snapshot(10, b"state")));
        assert_eq!(held.index(), 10);
        assert!(!held.has_data(), "the store has the data; the protocol lets it go");
        assert!(!held.take_wanted());
        assert_eq!(held.for_sending(), None);
        assert!(held.is_wanted());
        assert!(held.take_wanted());
        assert!(!held.take_wanted(), "asked once");
        held.loaded(snapshot(10, b"state"));
        assert_eq!(held.for_sending(), Some(snapshot(10, b"state")));
    }

    #[test]
    fn refuses_data_of_another_snapshot_and_lets_loaded_data_go_after_a_while() {
        let mut held = HeldSnapshot::new(Some(snapshot(10, b"old")));
        held.for_sending();
        held.replace(snapshot(20, b"new"));
        held.loaded(snapshot(10, b"old"));
        assert!(!held.has_data(), "data of a replaced snapshot is not taken");
        held.loaded(snapshot(20, b"new"));
        for _ in 1..HELD_SNAPSHOT_RELEASE_TICKS {
            held.tick();
        }
        assert!(held.has_data());
        held.tick();
        assert!(!held.has_data());
        assert_eq!(held.index(), 20);
    }

    #[test]
    fn with_no_snapshot_nothing_is_asked_for() {
        let mut held = HeldSnapshot::new(None);
        assert_eq!(held.for_sending(), None);
        assert!(!held.take_wanted());
        assert_eq!(held.index(), 0);
    }
}
