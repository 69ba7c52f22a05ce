//! Seed inputs for every target, produced by the real encoders.
//!
//! `conclave-fuzz-corpus` writes these into `corpus/`; the fuzz targets read them back from
//! there. Keeping the generators beside the targets means a format change only needs the
//! generator run again, and the corpus tests say so.

pub mod cluster;
pub mod config;
pub mod etcd;
pub mod kv;
pub mod protocols;
pub mod wal;

use crate::runner::Seed;
use crate::targets;

/// Every byte-input target's name and its generated seeds. The WAL target's seeds are whole
/// store directories; see [`wal::seeds`].
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        (targets::peer::RAFT, protocols::raft()),
        (targets::peer::PAXOS, protocols::paxos()),
        (targets::peer::TOTEM, protocols::totem()),
        (targets::peer::GOSSIP, protocols::gossip()),
        (targets::kv::COMMAND, kv::command_seeds()),
        (targets::kv::OUTPUT, kv::output_seeds()),
        (targets::kv::SNAPSHOT, kv::snapshot_seeds()),
        (targets::config::TARGET, config::seeds()),
        (targets::etcd::TARGET, etcd::seeds()),
    ]
}
