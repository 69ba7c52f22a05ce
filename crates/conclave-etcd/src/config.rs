//! What an operator may tune about the etcd API: request limits ([`Limits`]) and behaviour
//! ([`Options`]), each with etcd's defaults and a `validate()` that names the bad key.

use std::time::Duration;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// What etcd lets a gRPC message carry beyond `max_request_bytes` before gRPC itself refuses
/// it (etcd's `grpcOverheadBytes`), so that a request slightly too large still reaches the
/// server and gets etcd's own "request is too large" error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: 128,
            max_watchers_per_stream: 10_000,
            stream_buffer_len: 128,
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
        positive("stream_buffer_len", self.stream_buffer_len)
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            downgrade_unsupported: false,
            lease_check_interval_ms: 500,
            min_lease_ttl_secs: 2,
            watch_progress_notify_interval_ms: 600_000,
            version: format!("3.4.0-conclave-{}", env!("CARGO_PKG_VERSION")),
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
