//! [`KvStore`] as a [`StateMachine`]: applying encoded commands from the log, and snapshots.
//!
//! A snapshot is a format byte followed by the postcard encoding of the whole replicated state:
//! keys with all their held history, leases, revision counters and the applied index. Every map
//! in it is ordered, so two replicas that applied the same commands produce identical bytes.

use bytes::Bytes;
use conclave_core::{Frozen, SnapshotMeta, StateMachine};

use crate::snapshot_v1::StateV1;
use crate::store::State;
use crate::{Command, KvStore, Output};

/// Bumped whenever [`State`]'s encoding changes, so an old snapshot is refused, not misread.
/// Format 2 added the auth state; format 1 is still read (`snapshot_v1.rs`).
const SNAPSHOT_FORMAT: u8 = 2;

impl StateMachine for KvStore {
    /// Applies the command bytes at `index` (the driver has already removed the proposal
    /// header). Bytes that are not a [`Command`] produce an encoded [`Output::Error`], never a
    /// panic; `None` (an entry with no command) only advances the applied index and returns no
    /// bytes.
    fn apply(&mut self, index: u64, command: Option<&[u8]>) -> Bytes {
        self.state.applied_index = index;
        let Some(bytes) = command else { return Bytes::new() };
        let output = match Command::decode(bytes) {
            Ok(command) => self.apply_command(&command),
            Err(error) => Output::Error(error),
        };
        output.encode()
    }

    fn applied_index(&self) -> u64 {
        self.state.applied_index
    }

    fn snapshot(&self) -> Bytes {
        encode(&self.state, self.held_bytes)
    }

    /// The state's maps share their nodes with the copy (copied on write), so this costs a few
    /// reference counts plus a copy of the leases and the auth state.
    fn frozen(&self) -> Option<Frozen> {
        let state = self.state.clone();
        let held_bytes = self.held_bytes;
        Some(Box::new(move || encode(&state, held_bytes)))
    }

    /// Replaces the whole replicated state with the snapshot's and takes `meta.index` as the
    /// applied index. The event listener stays. A snapshot that does not decode, or whose state
    /// breaks the store's invariants (see `validate.rs`), is refused and the store is unchanged.
    fn restore(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), String> {
        let (&format, body) = data.split_first().ok_or("empty kv snapshot")?;
        let decoded = match format {
            SNAPSHOT_FORMAT => postcard::take_from_bytes::<State>(body),
            1 => postcard::take_from_bytes::<StateV1>(body)
                .map(|(old, rest)| (State::from(old), rest)),
            _ => {
                return Err(format!(
                    "kv snapshot format {format} is not one of the supported 1 and {SNAPSHOT_FORMAT}"
                ));
            }
        };
        let (mut state, rest) = decoded.map_err(|e| format!("malformed kv snapshot: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("malformed kv snapshot: {} trailing bytes", rest.len()));
        }
        state.validate().map_err(|e| format!("inconsistent kv snapshot: {e}"))?;
        state.applied_index = meta.index;
        self.state = state;
        self.recount_derived();
        Ok(())
    }
}

fn encode(state: &State, held_bytes: u64) -> Bytes {
    // Room for about the whole encoding at once, so that a large state is not copied (and its
    // fresh pages faulted in) again at every doubling: the held history's keys and values
    // dominate it, and the key index adds a few dozen bytes a key.
    let estimate = held_bytes as usize + state.index.len() * 48 + 4096;
    let mut out = Vec::with_capacity(estimate);
    out.push(SNAPSHOT_FORMAT);
    // Encoding plain data into a Vec cannot fail.
    let out = postcard::to_extend(state, out).expect("postcard encoding into a Vec is infallible");
    Bytes::from(out)
}
