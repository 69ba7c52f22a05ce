//! Integration tests of conclave-paxos: exact effects of single events, then a synchronous
//! in-test network of 3–5 replicas.

mod cluster;
mod effects;
mod election;
mod faults;
mod persistence;
mod reads;
mod reconfig;
mod recovery;
mod replication;
mod snapshot;
