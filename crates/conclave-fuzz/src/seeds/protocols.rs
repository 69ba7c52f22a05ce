//! Seeds for the peer message decoders: each protocol's messages, recorded from a running
//! in-memory cluster (see [`super::cluster`]).

use super::cluster::record;
use crate::runner::Seed;
use conclave_core::{Membership, NodeId, Recovered};

/// A fixed seed per replica, so the recorded corpus is the same on every run.
fn rng_seed(id: NodeId) -> u64 {
    0xC0FF_EE00 + id.0
}

pub fn raft() -> Vec<Seed> {
    record(&|id: NodeId, membership: Membership, recovered: Recovered| {
        conclave_raft::Raft::new(
            id,
            membership,
            conclave_raft::RaftConfig::default(),
            recovered,
            rng_seed(id),
        )
        .expect("the default raft configuration is valid")
    })
}

pub fn paxos() -> Vec<Seed> {
    record(&|id: NodeId, membership: Membership, recovered: Recovered| {
        conclave_paxos::Paxos::new(
            id,
            membership,
            conclave_paxos::PaxosConfig::default(),
            recovered,
            rng_seed(id),
        )
        .expect("the default paxos configuration is valid")
    })
}

pub fn totem() -> Vec<Seed> {
    record(&|id: NodeId, membership: Membership, recovered: Recovered| {
        conclave_totem::Totem::new(
            id,
            membership,
            conclave_totem::TotemConfig::default(),
            recovered,
            rng_seed(id),
        )
        .expect("the default totem configuration is valid")
    })
}

pub fn gossip() -> Vec<Seed> {
    record(&|id: NodeId, membership: Membership, recovered: Recovered| {
        conclave_gossip::Gossip::new(
            id,
            membership,
            conclave_gossip::GossipConfig::default(),
            recovered,
            rng_seed(id),
        )
        .expect("the default gossip configuration is valid")
    })
}
