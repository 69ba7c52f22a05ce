//! Reading snapshots of format 1, written before the auth state joined the replicated state.
//!
//! Format 1 is format 2 without the trailing auth state, so such a snapshot restores with auth
//! off and no users or roles — exactly the state it was taken in.

use bytes::Bytes;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::auth::AuthState;
use crate::key_index::KeyHistory;
use crate::kv::Revision;
use crate::lease::Leases;
use crate::store::{Record, State};

/// [`State`] as format 1 encoded it.
#[derive(Deserialize)]
pub(crate) struct StateV1 {
    applied_index: u64,
    revision: i64,
    compact_revision: i64,
    index: BTreeMap<Bytes, KeyHistory>,
    records: BTreeMap<Revision, Record>,
    leases: Leases,
}

impl From<StateV1> for State {
    fn from(old: StateV1) -> Self {
        Self {
            applied_index: old.applied_index,
            revision: old.revision,
            compact_revision: old.compact_revision,
            index: old.index.into_iter().collect(),
            records: old.records.into_iter().collect(),
            leases: old.leases,
            auth: AuthState::default(),
        }
    }
}
