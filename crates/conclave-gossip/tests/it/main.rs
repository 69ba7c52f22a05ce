//! Integration tests of the gossip protocol, driven through `conclave_core::Protocol` on a
//! small deterministic network with real key-value stores.

mod cluster;
mod durability;
mod hlc;
mod lww;
mod membership;
mod merkle;
mod protocol;
mod scuttlebutt;
mod tombstones;
