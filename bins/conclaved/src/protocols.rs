//! From a protocol name to a running node: the one place that knows every protocol crate.

use crate::config::{Config, ProtocolName};
use anyhow::Context;
use conclave_core::{Membership, NodeId, Recovered};
use conclave_kv::KvStore;
use conclave_node::{Inbound, NodeConfig, NodeHandle, NodeRuntime, Transport};
use conclave_storage::FileStore;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// The protocols this build can run.
pub const BUILT: &[&str] = &["raft", "paxos", "totem", "gossip"];

/// Everything a node needs besides its protocol.
pub struct Parts {
    pub store: FileStore,
    pub recovered: Recovered,
    pub state_machine: Arc<RwLock<KvStore>>,
    pub transport: Arc<dyn Transport>,
    pub inbox: mpsc::Receiver<Inbound>,
    /// The node thread's runtime, on which the peer links were spawned.
    pub runtime: NodeRuntime,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("recovered_entries", &self.recovered.entries.len())
            .finish_non_exhaustive()
    }
}

/// Builds the configured protocol from the recovered state and starts its node thread.
pub fn start(config: &Config, parts: Parts) -> anyhow::Result<NodeHandle> {
    let id = config.node_id();
    let membership = Membership::new(config.members.iter().map(|m| NodeId(m.id)));
    // Protocols take their randomness from a seed; in production any seed will do, as long as
    // nodes differ.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut node_config = NodeConfig::new(id);
    node_config.request_timeout_ms = config.server.request_timeout_ms;
    // The etcd API limits each command; an auth guard around it adds a few bytes of its own.
    node_config.max_proposal_bytes =
        config.server.max_request_bytes + conclave_kv::GUARD_OVERHEAD_BYTES;
    node_config.max_pending_requests = config.server.max_pending_requests;
    node_config.snapshot_interval_entries = config.server.snapshot_interval_entries;
    let Parts { store, recovered, state_machine, transport, inbox, runtime } = parts;
    let handle = match config.protocol {
        ProtocolName::Raft => {
            node_config.tick_interval_ms = config.raft.tick_interval_ms;
            let raft =
                conclave_raft::Raft::new(id, membership, config.raft.clone(), recovered, seed)
                    .context("cannot start raft from the recovered state")?;
            conclave_node::spawn(
                runtime,
                node_config,
                raft,
                store,
                state_machine,
                transport,
                inbox,
            )?
        }
        ProtocolName::Paxos => {
            node_config.tick_interval_ms = config.paxos.tick_interval_ms;
            let paxos =
                conclave_paxos::Paxos::new(id, membership, config.paxos.clone(), recovered, seed)
                    .context("cannot start paxos from the recovered state")?;
            conclave_node::spawn(
                runtime,
                node_config,
                paxos,
                store,
                state_machine,
                transport,
                inbox,
            )?
        }
        ProtocolName::Totem => {
            node_config.tick_interval_ms = config.totem.tick_interval_ms;
            let totem =
                conclave_totem::Totem::new(id, membership, config.totem.clone(), recovered, seed)
                    .context("cannot start totem from the recovered state")?;
            conclave_node::spawn(
                runtime,
                node_config,
                totem,
                store,
                state_machine,
                transport,
                inbox,
            )?
        }
        ProtocolName::Gossip => {
            node_config.tick_interval_ms = config.gossip.tick_interval_ms;
            let mut gossip_config = config.gossip.clone();
            // Gossip's hybrid logical clock reads physical time as ticks since start plus this
            // offset: start it at the wall clock, so stamps agree across nodes.
            gossip_config.clock_offset_ms = gossip_config.clock_offset_ms.saturating_add(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default(),
            );
            let gossip =
                conclave_gossip::Gossip::new(id, membership, gossip_config, recovered, seed)
                    .context("cannot start gossip from the recovered state")?;
            conclave_node::spawn(
                runtime,
                node_config,
                gossip,
                store,
                state_machine,
                transport,
                inbox,
            )?
        }
    };
    Ok(handle)
}
