//! The etcd v3 gRPC API — services `KV`, `Watch`, `Lease`, `Cluster` and `Maintenance` of
//! `package etcdserverpb` — on top of any [`conclave_core::Consensus`] and the
//! [`conclave_kv::KvStore`] it applies to, so that `etcdctl` and etcd client libraries work
//! unchanged against every Conclave protocol.
//!
//! Writes become [`conclave_kv::Command`]s proposed through the consensus; reads wait for the
//! protocol's read barrier and are served from the local store. What a protocol cannot promise
//! (a linearizable read or an atomic compare-and-swap under gossip) is refused with
//! FAILED_PRECONDITION naming the protocol, unless [`Options::downgrade_unsupported`] is on.
//! Errors carry etcd's codes and texts ([`error`]); requests are counted per method and code
//! ([`metrics`]).
//!
//! Start with [`EtcdContext::new`], then [`serve`] (or [`services`] for your own server).

pub mod auth;
pub mod auth_check;
mod auth_password;
mod auth_token;
pub mod cluster;
pub mod coalesce;
mod compactor;
pub mod config;
pub mod connections;
pub mod context;
mod convert;
pub mod error;
pub mod kv;
pub mod lease;
mod lease_forward;
mod lease_keeper;
pub mod maintenance;
pub mod metrics;
pub mod pb;
mod quota;
pub mod server;
pub mod snapshot_file;
pub mod watch;
mod watch_hub;
mod watcher;

pub use compactor::{AutoCompaction, AutoCompactor, DEFAULT_AUTO_COMPACTION};
pub use config::{ConfigError, Limits, Options};
pub use context::{ClusterInfo, EtcdContext, MemberInfo};
pub use lease_forward::FORWARDED;
pub use lease_keeper::LeaseExpiry;
pub use server::{serve, serve_with_tls, services};
