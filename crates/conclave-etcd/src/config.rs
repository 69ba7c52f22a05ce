//! What an operator may tune about the etcd API: request limits ([`Limits`]) and behaviour
//! ([`Options`]), each with etcd's defaults and a `validate()` that names the bad key.

use std::time::Duration;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// What etcd lets a gRPC message carry beyond `max_request_bytes` before gRPC itself refuses
/// it (etcd's `grpcOverheadBytes`), so that a request slightly too large still reaches the
/// server and gets etcd's own "request is too large" error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The longest `auth_token_ttl_secs` accepted: a year.
pub const MAX_AUTH_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} = {value}: {expected}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Bounds on what one request may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest write, as proposed to the consensus, in bytes (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// The most compares, or operations in one branch, a txn may have (etcd's `--max-txn-ops`).
    pub max_txn_ops: usize,
    /// The most watchers one watch stream may hold at once.
    pub max_watchers_per_stream: usize,
    /// Responses buffered per watch or keep-alive stream before the sender waits for the client.
    pub stream_buffer_len: usize,
    /// The most watchers this member holds at once, over all streams.
    pub max_watchers: usize,
    /// The most leases that may exist at once (checked by the member a grant arrives at).
    pub max_leases: usize,
    /// The most keys one range response carries (a range op inside a txn too); a range without
    /// a limit, or with a higher one, gets this many with `more` set, and `count` still counts
    /// every key. 0 turns the cap off, which is the default: etcd has none, and clients that
    /// do not page (etcdctl 3.4's `get --prefix`) would silently miss keys.
    pub max_range_keys: usize,
    /// The most client connections served at once; past it, a new connection is closed as soon
    /// as it is accepted.
    pub max_connections: usize,
    /// The most concurrent gRPC streams (calls, watch and keep-alive streams) per client
    /// connection: HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS. A client waits for a free slot; one
    /// that opens a stream anyway has it reset with REFUSED_STREAM.
    pub max_concurrent_streams: u32,
    /// The history the store may hold, in its own count of bytes (`KvStore::held_bytes`), before
    /// writes that add to it are refused with "database space exceeded" (etcd's
    /// `--quota-backend-bytes`; see `quota.rs`).
    pub quota_bytes: u64,
}

/// The default of [`Limits::max_watchers`].
pub const DEFAULT_MAX_WATCHERS: usize = 100_000;
/// The default of [`Limits::max_leases`].
pub const DEFAULT_MAX_LEASES: usize = 100_000;
/// The default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default of [`Limits::max_concurrent_streams`].
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 10_000;
/// The default of [`Limits::quota_bytes`]: 2 GiB, etcd's default backend quota.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// The deepest txn the API accepts: the outermost is level 1. Protobuf decoders stop at 100
/// nested messages and a txn level is two (`TxnRequest`, `RequestOp`), so a server built on
/// prost decodes 50 levels; but the answer to a 50-level txn is one message deeper than the
/// request (each response op carries a header), past what a prost client decodes. 49 is the
/// deepest txn whose answer every client can read.
pub const MAX_TXN_NESTING: usize = 49;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: 128,
            max_watchers_per_stream: 10_000,
            stream_buffer_len: 128,
            max_watchers: DEFAULT_MAX_WATCHERS,
            max_leases: DEFAULT_MAX_LEASES,
            max_range_keys: 0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            quota_bytes: DEFAULT_QUOTA_BYTES,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_request_bytes == 0 || self.max_request_bytes > 1 << 30 {
            return Err(ConfigError {
                key: "max_request_bytes",
                value: self.max_request_bytes.to_string(),
                expected: "between 1 and 1073741824",
            });
        }
        positive("max_txn_ops", self.max_txn_ops)?;
        positive("max_watchers_per_stream", self.max_watchers_per_stream)?;
        positive("stream_buffer_len", self.stream_buffer_len)?;
        positive("max_watchers", self.max_watchers)?;
        positive("max_leases", self.max_leases)?;
        positive("max_connections", self.max_connections)?;
        positive("max_concurrent_streams", self.max_concurrent_streams as usize)?;
        if self.quota_bytes == 0 {
            return Err(ConfigError {
                key: "quota_bytes",
                value: "0".into(),
                expected: "a positive number of bytes",
            });
        }
        Ok(())
    }

    /// The limit a range gets: its own, lowered to [`Self::max_range_keys`] when that is set
    /// and the range asks for more (or for everything).
    pub fn capped_range_limit(&self, limit: i64) -> i64 {
        let cap = i64::try_from(self.max_range_keys).unwrap_or(i64::MAX);
        if cap == 0 || (limit > 0 && limit <= cap) { limit } else { cap }
    }

    /// The gRPC decoding limit: larger messages are refused before any handler sees them.
    pub fn max_decoding_message_bytes(&self) -> usize {
        self.max_request_bytes + GRPC_OVERHEAD_BYTES
    }
}

/// How the API behaves where protocols differ, and its timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Serve what the protocol cannot guarantee (a linearizable read or a txn with compares under
    /// gossip) from the local replica instead of refusing it with FAILED_PRECONDITION. Each such
    /// answer is counted in `conclave_reads_downgraded_total` or `conclave_txn_local_total`.
    pub downgrade_unsupported: bool,
    /// How often the lease expiry task looks for leases that ran out.
    pub lease_check_interval_ms: u64,
    /// The shortest lease a grant gets; shorter requests are raised to it, as etcd raises them
    /// to its minimum TTL (1.5 election timeouts, 2 s with its defaults).
    pub min_lease_ttl_secs: i64,
    /// How often a watcher created with `progress_notify` hears of progress while idle (etcd's
    /// default is ten minutes).
    pub watch_progress_notify_interval_ms: u64,
    /// The version `Maintenance/Status` reports; etcdctl prints it as the server version.
    pub version: String,
    /// How long an auth token lives without being used (etcd's `--auth-token-ttl`, 300 s).
    pub auth_token_ttl_secs: u64,
    /// Which history the server compacts away by itself (see `compactor.rs`).
    pub auto_compaction: crate::AutoCompaction,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            downgrade_unsupported: false,
            lease_check_interval_ms: 500,
            min_lease_ttl_secs: 2,
            watch_progress_notify_interval_ms: 600_000,
            version: format!("3.4.0-conclave-{}", env!("CARGO_PKG_VERSION")),
            auth_token_ttl_secs: 300,
            auto_compaction: crate::compactor::DEFAULT_AUTO_COMPACTION,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("lease_check_interval_ms", self.lease_check_interval_ms as usize)?;
        positive(
            "watch_progress_notify_interval_ms",
            self.watch_progress_notify_interval_ms as usize,
        )?;
        if self.auth_token_ttl_secs == 0 || self.auth_token_ttl_secs > MAX_AUTH_TOKEN_TTL_SECS {
            return Err(ConfigError {
                key: "auth_token_ttl_secs",
                value: self.auth_token_ttl_secs.to_string(),
                expected: "between 1 and 31536000 (a year)",
            });
        }
        if self.min_lease_ttl_secs < 1 {
            return Err(ConfigError {
                key: "min_lease_ttl_secs",
                value: self.min_lease_ttl_secs.to_string(),
                expected: "at least 1",
            });
        }
        if self.version.is_empty() {
            return Err(ConfigError {
                key: "version",
                value: String::new(),
                expected: "a non-empty version string",
            });
        }
        Ok(())
    }

    pub fn lease_check_interval(&self) -> Duration {
        Duration::from_millis(self.lease_check_interval_ms)
    }

    pub fn watch_progress_notify_interval(&self) -> Duration {
        Duration::from_millis(self.watch_progress_notify_interval_ms)
    }

    pub fn auth_token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_token_ttl_secs)
    }
}

fn positive(key: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError { key, value: "0".into(), expected: "a positive number" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_etcd() {
        Limits::default().validate().unwrap();
        Options::default().validate().unwrap();
        assert_eq!(Limits::default().max_request_bytes, 1_572_864);
        assert_eq!(Limits::default().max_txn_ops, 128);
        assert_eq!(Limits::default().max_range_keys, 0, "no range cap unless configured");
    }

    #[test]
    fn the_range_cap_lowers_missing_and_larger_limits_only() {
        let off = Limits::default();
        for limit in [-1, 0, 1, 5, i64::MAX] {
            assert_eq!(off.capped_range_limit(limit), limit);
        }
        let capped = Limits { max_range_keys: 10, ..Limits::default() };
        let cases = [(-1, 10), (0, 10), (1, 1), (9, 9), (10, 10), (11, 10), (i64::MAX, 10)];
        for (limit, capped_to) in cases {
            assert_eq!(capped.capped_range_limit(limit), capped_to, "limit {limit}");
        }
    }

    #[test]
    fn validate_names_the_bad_key() {
        let limits = Limits { max_txn_ops: 0, ..Limits::default() };
        let err = limits.validate().unwrap_err();
        assert_eq!(err.key, "max_txn_ops");
        assert_eq!(err.to_string(), "invalid max_txn_ops = 0: a positive number");
        let options = Options { min_lease_ttl_secs: 0, ..Options::default() };
        assert_eq!(options.validate().unwrap_err().key, "min_lease_ttl_secs");
    }
}
