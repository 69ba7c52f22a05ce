//! Integration tests of conclave-raft: exact effects of single replicas fed events, and small
//! synchronous clusters (see `network`) for elections, replication, snapshots, reads,
//! transfers, membership changes and the Figure 8 scenario. Section numbers refer to the Raft
//! paper (extended version) unless they say "thesis" (Ongaro's dissertation).

mod commitment;
mod config;
mod election;
mod membership;
mod network;
mod persistence;
mod randomized;
mod reads;
mod replication;
mod snapshot;
mod transfer;
