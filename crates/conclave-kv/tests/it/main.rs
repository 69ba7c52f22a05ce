//! Integration tests for conclave-kv: etcd v3's key-value semantics, applied as a replicated
//! state machine. References cite etcd's API documentation ("etcd3 API", by section) and
//! `rpc.proto`, which define the behaviour this crate reproduces.

mod auth;
mod compaction;
mod events;
mod leases;
mod model;
mod nesting;
mod range;
mod revisions;
mod snapshot;
mod support;
mod txn;
