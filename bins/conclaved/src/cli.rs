//! Command-line flags: the top layer of the configuration, and the `snapshot` commands.

use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

/// Conclave server: one node of a replicated key-value store speaking the etcd v3 API.
///
/// Settings come from built-in defaults, then the config file, then CONCLAVE_* environment
/// variables (CONCLAVE_NODE_ID, CONCLAVE_RAFT__HEARTBEAT_INTERVAL_MS, ...), then these flags.
/// See docs/configuration.md for every key.
///
/// Without a command, runs the node. `conclaved snapshot restore FILE` initialises this node's
/// empty data directory from a snapshot saved with `etcdctl snapshot save`; `conclaved snapshot
/// status FILE` checks one. See docs/operations.md, "Backup and restore".
#[derive(Debug, Parser)]
#[command(name = "conclaved", version, about, long_about)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Config file (TOML). Default: ./conclave.toml if it exists.
    #[arg(long, short = 'c', value_name = "FILE", env = "CONCLAVE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// This node's id; must be one of the members.
    #[arg(long, value_name = "ID", global = true)]
    pub node_id: Option<u64>,
    /// Replication protocol: raft, paxos, totem or gossip.
    #[arg(long, value_name = "NAME", global = true)]
    pub protocol: Option<String>,
    /// Directory for the WAL and snapshots.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address for etcd v3 gRPC clients.
    #[arg(long, value_name = "IP:PORT", global = true)]
    pub client_listen: Option<String>,
    /// Address for peer traffic.
    #[arg(long, value_name = "IP:PORT", global = true)]
    pub peer_listen: Option<String>,
    /// Address for /metrics and /health.
    #[arg(long, value_name = "IP:PORT", global = true)]
    pub metrics_listen: Option<String>,
    /// A member, repeated for each: ID=PEER_HOST:PORT,CLIENT_HOST:PORT. Replaces `members`.
    #[arg(long = "member", value_name = "ID=PEER,CLIENT", global = true)]
    pub members: Vec<String>,
    /// Log filter, e.g. info or conclave_raft=debug,info. RUST_LOG overrides it.
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,
    /// Validate the configuration, print it as TOML and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// What to do instead of running the node.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot files saved with `etcdctl snapshot save` from any member.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Initialise this node's data directory (which must be empty or absent) from a snapshot.
    ///
    /// Restore every member of the new cluster from the same file, each with its own
    /// configuration (node id, members, protocol, data_dir), then start them all. The members
    /// and the protocol come from the configuration, not from the file: a snapshot can seed a
    /// cluster of other members or of another protocol. Exit codes: 0 restored; 2 a bad
    /// configuration, an unusable file or a data directory that is not empty; 1 an I/O error.
    Restore {
        /// The snapshot file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Verify a snapshot file (magic, version, lengths, checksum, contents) and print what it
    /// holds. Exit code 0 if it can be restored, 2 if not. Needs no configuration.
    Status {
        /// The snapshot file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// The flags that were given, shaped like the config so they merge over it.
#[derive(Debug, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,
}

impl Flags {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            node_id: self.node_id,
            protocol: self.protocol.clone(),
            data_dir: self.data_dir.clone(),
            client_listen: self.client_listen.clone(),
            peer_listen: self.peer_listen.clone(),
            metrics_listen: self.metrics_listen.clone(),
            members: self.members.clone(),
            log_level: self.log_level.clone(),
        }
    }
}
