//! End-to-end tests on real processes: `conclaved` nodes (run through the lab's executable,
//! whose `node` command is `conclaved`'s main) on loopback, driven by the real `etcdctl` and
//! checked with the real `promtool`. Every test bounds its own duration and the clusters stop
//! themselves when dropped.
//!
//! Tests take a global lock and run one at a time: they measure availability, and parallel
//! clusters on two cores would measure each other.

mod ab;
mod auth;
mod backup;
mod bench;
mod compaction;
mod config;
mod etcdctl;
mod failover;
mod limits;
mod members;
mod metrics;
mod prometheus;
mod support;
mod tls;
