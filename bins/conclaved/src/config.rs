//! The server's configuration: built-in defaults < `conclave.toml` < `CONCLAVE_*` environment <
//! command-line flags, merged with figment, then validated before anything is bound.

use crate::address::HostPort;
use conclave_core::NodeId;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which protocol replicates the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    Raft,
    Paxos,
    Totem,
    Gossip,
}

impl ProtocolName {
    pub const ACCEPTED: &'static str = "raft, paxos, totem or gossip";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raft => "raft",
            Self::Paxos => "paxos",
            Self::Totem => "totem",
            Self::Gossip => "gossip",
        }
    }
}

impl fmt::Display for ProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the cluster: `ID=PEER_HOST:PORT,CLIENT_HOST:PORT` in a string, or a table
/// `{ id = 1, peer = "10.0.0.1:2380", client = "10.0.0.1:2379" }`. Hosts are IP addresses or DNS
/// names (resolved when dialled, see [`HostPort`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: u64,
    pub peer: HostPort,
    pub client: HostPort,
}

impl Member {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected ID=PEER_HOST:PORT,CLIENT_HOST:PORT, e.g. \
             1=10.0.0.1:2380,10.0.0.1:2379 or 1=conclave-0.conclave-peer:2380,conclave-0.conclave-peer:2379";
        let (id, addresses) =
            text.split_once('=').ok_or_else(|| format!("`{text}`: {expected}"))?;
        let (peer, client) =
            addresses.split_once(',').ok_or_else(|| format!("`{text}`: {expected}"))?;
        let id = id
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`{text}`: member id `{id}` is not a number"))?;
        let peer = member_address(peer, "peer").map_err(|e| format!("`{text}`: {e}"))?;
        let client = member_address(client, "client").map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Self { id, peer, client })
    }
}

/// A member's `peer` or `client` address, with an error naming which one and the value.
fn member_address(text: &str, which: &str) -> Result<HostPort, String> {
    HostPort::parse(text).map_err(|e| {
        format!(
            "{which} address `{}`: {e} (expected HOST:PORT with an IP address or a DNS name)",
            text.trim()
        )
    })
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            id: u64,
            peer: String,
            client: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Table(Table),
        }
        match Form::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("a member is `ID=PEER_HOST:PORT,CLIENT_HOST:PORT` or a table with id, peer and client"))?
        {
            Form::Text(text) => Member::parse(&text).map_err(serde::de::Error::custom),
            Form::Table(t) => {
                let in_member = |e| serde::de::Error::custom(format!("member {}: {e}", t.id));
                Ok(Member {
                    id: t.id,
                    peer: member_address(&t.peer, "peer").map_err(in_member)?,
                    client: member_address(&t.client, "client").map_err(in_member)?,
                })
            }
        }
    }
}

/// Driver and API settings that are the same for every protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// A request not answered in this time fails with "request timed out".
    pub request_timeout_ms: u64,
    /// The largest client request, in bytes (etcd: 1.5 MiB).
    pub max_request_bytes: usize,
    /// Take a state-machine snapshot and compact the log after at least this many entries, and
    /// once the entries since the last snapshot add up to its size.
    pub snapshot_interval_entries: u64,
    /// Client requests queued per node before "too many requests".
    pub max_pending_requests: usize,
    /// Gossip only: serve linearizable reads and txns locally (counted) instead of refusing them.
    pub downgrade_unsupported: bool,
    /// How long an auth token lives without being used, in seconds (etcd's `--auth-token-ttl`).
    pub auth_token_ttl_secs: u64,
    /// `revision` or `periodic` (etcd's `--auto-compaction-mode`).
    pub auto_compaction_mode: String,
    /// Revisions to keep, or a period (`1h`, `30m`, or hours as a number); `0` turns automatic
    /// compaction off (etcd's `--auto-compaction-retention`).
    #[serde(deserialize_with = "string_or_number")]
    pub auto_compaction_retention: String,
}

impl ServerSettings {
    /// The compaction policy these settings name.
    pub fn auto_compaction(&self) -> Result<conclave_etcd::AutoCompaction, String> {
        conclave_etcd::AutoCompaction::parse(
            &self.auto_compaction_mode,
            &self.auto_compaction_retention,
        )
        .map_err(|e| format!("`server.{}` = {:?}: expected {}", e.key, e.value, e.expected))
    }
}

/// A TOML string, integer or float, as text: `auto_compaction_retention = 1000` and `= "1h"`
/// both read.
fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    match Form::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a string or a number"))?
    {
        Form::Text(text) => Ok(text),
        Form::Integer(n) => Ok(n.to_string()),
        Form::Float(x) => Ok(x.to_string()),
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 5_000,
            max_request_bytes: 1536 * 1024,
            snapshot_interval_entries: 10_000,
            max_pending_requests: 10_000,
            downgrade_unsupported: false,
            auth_token_ttl_secs: 300,
            auto_compaction_mode: "revision".into(),
            auto_compaction_retention: "100000".into(),
        }
    }
}

/// The whole configuration of one node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id: one of `members`.
    pub node_id: u64,
    /// The replication protocol.
    pub protocol: ProtocolName,
    /// Where the WAL and snapshots live.
    pub data_dir: PathBuf,
    /// etcd v3 gRPC for clients.
    #[serde(deserialize_with = "address")]
    pub client_listen: SocketAddr,
    /// Peer traffic.
    #[serde(deserialize_with = "address")]
    pub peer_listen: SocketAddr,
    /// `/metrics` and `/health`.
    #[serde(deserialize_with = "address")]
    pub metrics_listen: SocketAddr,
    /// Every member of the cluster, this node included.
    pub members: Vec<Member>,
    /// Cluster id reported in response headers; derived from the members when 0.
    pub cluster_id: u64,
    /// Log filter (`info`, `debug`, `conclave_raft=debug,info`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Allow plaintext client or peer listeners on non-loopback addresses (logged as a warning).
    pub insecure: bool,
    /// Certificates for the client and peer listeners; see docs/security.md.
    pub tls: crate::tls::TlsSettings,
    pub server: ServerSettings,
    /// What one client, connection or request may make the node hold.
    pub limits: crate::limits::LimitSettings,
    pub raft: conclave_raft::RaftConfig,
    pub paxos: conclave_paxos::PaxosConfig,
    pub gossip: conclave_gossip::GossipConfig,
    pub totem: conclave_totem::TotemConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            protocol: ProtocolName::Raft,
            data_dir: PathBuf::from("conclave-data"),
            client_listen: ([127, 0, 0, 1], 2379).into(),
            peer_listen: ([127, 0, 0, 1], 2380).into(),
            metrics_listen: ([127, 0, 0, 1], 9379).into(),
            members: Vec::new(),
            cluster_id: 0,
            log_level: "info".into(),
            insecure: false,
            tls: crate::tls::TlsSettings::default(),
            server: ServerSettings::default(),
            limits: crate::limits::LimitSettings::default(),
            raft: conclave_raft::RaftConfig::default(),
            paxos: conclave_paxos::PaxosConfig::default(),
            gossip: conclave_gossip::GossipConfig::default(),
            totem: conclave_totem::TotemConfig::default(),
        }
    }
}

/// A configuration that cannot be used; the message names the key, the value and what is
/// accepted.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Merges defaults, the file (if given or `conclave.toml` exists), the environment and the
    /// flags, then validates.
    pub fn load(
        file: Option<&std::path::Path>,
        flags: &crate::cli::Flags,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("conclave.toml")),
        }
        figment = figment.merge(Env::prefixed("CONCLAVE_").split("__").ignore(&["config"]));
        figment = figment.merge(Serialized::defaults(flags.overrides()));
        let config: Config = figment.extract().map_err(|error| ConfigError(describe(error)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        if self.members.is_empty() {
            return fail("`members` is empty: list every member as ID=PEER_HOST:PORT,CLIENT_HOST:PORT (this node included)".into());
        }
        let mut ids = BTreeSet::new();
        for member in &self.members {
            if member.id == 0 {
                return fail("`members`: member id 0 is reserved; ids start at 1".into());
            }
            if !ids.insert(member.id) {
                return fail(format!("`members`: member id {} appears twice", member.id));
            }
        }
        if !ids.contains(&self.node_id) {
            return fail(format!(
                "`node_id` = {} is not among `members` (ids {})",
                self.node_id,
                ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        let listens = [
            ("client_listen", self.client_listen),
            ("peer_listen", self.peer_listen),
            ("metrics_listen", self.metrics_listen),
        ];
        for (i, (a, addr_a)) in listens.iter().enumerate() {
            for (b, addr_b) in &listens[i + 1..] {
                if addr_a == addr_b && addr_a.port() != 0 {
                    return fail(format!(
                        "`{a}` and `{b}` are both {addr_a}; each needs its own port"
                    ));
                }
            }
        }
        let plaintext = [
            ("client_listen", self.client_listen, self.tls.client_tls(), "`tls.client_cert`"),
            ("peer_listen", self.peer_listen, self.tls.peer_tls(), "`tls.peer_cert`"),
        ];
        for (key, address, tls, tls_keys) in plaintext {
            crate::tls::check_plaintext(key, address, tls, tls_keys, self.insecure)
                .or_else(fail)?;
        }
        if let Err(error) = self.tls.load(self.node_id()) {
            return fail(error);
        }
        if self.data_dir.as_os_str().is_empty() {
            return fail("`data_dir` is empty: give a directory for the WAL and snapshots".into());
        }
        let s = &self.server;
        if s.request_timeout_ms == 0 {
            return fail(
                "`server.request_timeout_ms` = 0: expected a positive number of milliseconds"
                    .into(),
            );
        }
        if s.max_request_bytes < 1024 {
            return fail(format!(
                "`server.max_request_bytes` = {}: expected at least 1024",
                s.max_request_bytes
            ));
        }
        if s.max_pending_requests == 0 {
            return fail("`server.max_pending_requests` = 0: expected a positive number".into());
        }
        if s.auth_token_ttl_secs == 0
            || s.auth_token_ttl_secs > conclave_etcd::config::MAX_AUTH_TOKEN_TTL_SECS
        {
            return fail(format!(
                "`server.auth_token_ttl_secs` = {}: expected 1 to {} seconds",
                s.auth_token_ttl_secs,
                conclave_etcd::config::MAX_AUTH_TOKEN_TTL_SECS
            ));
        }
        if let Err(error) = s.auto_compaction() {
            return fail(error);
        }
        self.limits.validate().or_else(fail)?;
        let checked = match self.protocol {
            ProtocolName::Raft => self.raft.validate().map_err(|e| e.to_string()),
            ProtocolName::Paxos => self.paxos.validate().map_err(|e| e.to_string()),
            ProtocolName::Totem => self.totem.validate().map_err(|e| e.to_string()),
            ProtocolName::Gossip => self.gossip.validate().map_err(|e| e.to_string()),
        };
        if let Err(error) = checked {
            return fail(format!("`{}`: {error}", self.protocol));
        }
        Ok(())
    }

    /// This node's member entry.
    pub fn me(&self) -> &Member {
        self.members.iter().find(|m| m.id == self.node_id).expect("validated: node_id is a member")
    }

    pub fn node_id(&self) -> NodeId {
        NodeId(self.node_id)
    }

    /// The cluster id: configured, or a hash of the member list so every node agrees.
    pub fn cluster_id(&self) -> u64 {
        if self.cluster_id != 0 {
            return self.cluster_id;
        }
        // FNV-1a over the sorted member ids and peer addresses.
        let mut members: Vec<_> =
            self.members.iter().map(|m| format!("{}={}", m.id, m.peer)).collect();
        members.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in members.join(",").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

/// Reads a listen address, naming the bad value and the accepted form when it is not one.
fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an address; expected IP:PORT, e.g. 127.0.0.1:2379 or [::1]:2379"
        ))
    })
}

/// Turns figment's error into one line per problem, naming the key.
fn describe(error: figment::Error) -> String {
    let mut lines = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let kind = match &e.kind {
            figment::error::Kind::UnknownVariant(value, accepted) if key == "protocol" => {
                format!("unknown protocol \"{value}\"; accepted: {}", accepted.join(", "))
            }
            kind => kind.to_string(),
        };
        let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
        if key.is_empty() {
            lines.push(format!("{kind}{source}"));
        } else {
            lines.push(format!("`{key}`: {kind}{source}"));
        }
    }
    lines.join("; ")
}
