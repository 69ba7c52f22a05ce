//! What a gossip replica makes durable, and how it is encoded.
//!
//! Three things survive a restart:
//!
//! - the **log**: every write this replica applied, in apply order, as the key-value command
//!   its store applied, with the write's HLC packed into the entry's `term` and its writer in
//!   the proposal header's `origin`; replaying it rebuilds the map;
//! - a **map image** after each snapshot: the driver compacts the log up to the snapshot, and
//!   the store's snapshot has values but not stamps, so the whole LWW map (stamps and
//!   tombstones included) and the version vector are written as one `Noop` entry placed after
//!   the snapshot point. Recovery starts from the newest image and replays what follows it;
//! - the **hard state**: the generation (bumped at every start, so peers tell a restarted
//!   replica's heartbeats from stale ones), the HLC high-water mark and the collected-through
//!   watermarks. The clock reserves [`HLC_RESERVE_MS`] ahead and rewrites the hard state only
//!   when it passes the reservation, so the clock never goes backwards across a restart and
//!   the hard state is written about once a second, not per event.

use crate::error::GossipError;
use crate::hlc::Stamp;
use crate::message::Update;
use crate::versions::VersionVector;
use bytes::{BufMut, Bytes, BytesMut};
use conclave_core::{Entry, EntryKind};
use serde::{Deserialize, Serialize};

/// How far ahead of the clock the persisted high-water mark is set.
pub const HLC_RESERVE_MS: u64 = 1_000;

/// Marks a `Noop` entry that carries a map image.
const IMAGE_MAGIC: &[u8] = b"conclave-gossip-image-v1";

/// The hard state, postcard-encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub generation: u64,
    /// No clock reading at or above this physical time was issued before it was persisted.
    pub hlc_reserved_ms: u64,
    /// Collected-through watermark per Merkle leaf.
    pub watermarks: Vec<(u16, Stamp)>,
}

impl HardState {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("postcard encoding into a Vec is infallible"))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, GossipError> {
        postcard::from_bytes(bytes).map_err(|e| GossipError::CorruptHardState(e.to_string()))
    }
}

/// The whole map and version vector as of the log position of the entry carrying it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub have: VersionVector,
    pub entries: Vec<Update>,
}

impl Image {
    /// The log entry carrying this image.
    pub fn to_entry(&self, index: u64, term: u64) -> Entry {
        let body = postcard::to_stdvec(self).expect("postcard encoding into a Vec is infallible");
        let mut data = BytesMut::with_capacity(IMAGE_MAGIC.len() + body.len());
        data.put_slice(IMAGE_MAGIC);
        data.put_slice(&body);
        Entry { index, term, kind: EntryKind::Noop, data: data.freeze() }
    }

    /// The image an entry carries: `None` if it carries none.
    pub fn from_entry(entry: &Entry) -> Option<Result<Self, GossipError>> {
        if entry.kind != EntryKind::Noop || !entry.data.starts_with(IMAGE_MAGIC) {
            return None;
        }
        let body = &entry.data[IMAGE_MAGIC.len()..];
        Some(
            postcard::from_bytes(body).map_err(|e| GossipError::CorruptImage {
                index: entry.index,
                reason: e.to_string(),
            }),
        )
    }
}
