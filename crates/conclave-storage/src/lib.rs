//! Durable log and hard state: a segmented write-ahead log with group commit, snapshots and a
//! conformance suite.
//!
//! Every protocol persists the same three things through one seam, [`LogStore`]: its hard
//! state (opaque bytes in its own encoding), its log entries, and the latest snapshot. The tokio
//! driver uses [`FileStore`]; the simulator uses [`MemStore`], which can lose unsynced writes on
//! demand. Both pass the reusable suite in [`conformance`].
//!
//! The rules a [`WriteBatch`] follows and the durability contract — what is safe to do after
//! [`LogStore::write`] and what only after [`LogStore::sync`] — are on the [`store`] module.

pub mod conformance;
pub mod error;
pub mod file_store;
pub mod mem_store;
pub mod options;
pub mod store;

mod fsutil;
mod janitor;
mod plan;
mod record;
mod replay;
mod segment;
mod snapshot_file;

pub use error::StorageError;
pub use file_store::{FileStore, SnapshotWriter};
pub use mem_store::MemStore;
pub use options::FileStoreOptions;
pub use store::{LogStore, WriteBatch};
