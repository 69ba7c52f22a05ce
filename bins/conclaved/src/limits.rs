//! The `[limits]` table: what one client, connection or request may make a node hold.
//!
//! Each key has a default that leaves normal use alone (etcd has no limit on most of these);
//! docs/configuration.md and docs/security.md say what happens past each one. The request size
//! stays `server.max_request_bytes`, where it was first.

use serde::{Deserialize, Serialize};

use conclave_etcd::config as etcd;

/// Client-facing limits; see docs/security.md for the error each one answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Client connections served at once; a connection past it is closed when accepted.
    pub max_connections: usize,
    /// Concurrent gRPC streams per client connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Watchers on this node, over all watch streams.
    pub max_watchers: usize,
    /// Watchers on one watch stream.
    pub max_watchers_per_stream: usize,
    /// Leases that may exist at once.
    pub max_leases: usize,
    /// Keys in one range response (clients page with `limit` and `more`); 0: no cap.
    pub max_range_keys: usize,
    /// Compares, and operations per branch, of one txn (etcd's `--max-txn-ops`), at most 128.
    pub max_txn_ops: usize,
    /// The history the store may hold before writes that add to it are refused (etcd's
    /// `--quota-backend-bytes`), in bytes of keys and values plus 64 per revision.
    pub quota_bytes: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let limits = conclave_etcd::Limits::default();
        Self {
            max_connections: limits.max_connections,
            max_concurrent_streams: limits.max_concurrent_streams,
            max_watchers: limits.max_watchers,
            max_watchers_per_stream: limits.max_watchers_per_stream,
            max_leases: limits.max_leases,
            max_range_keys: limits.max_range_keys,
            max_txn_ops: limits.max_txn_ops,
            quota_bytes: limits.quota_bytes,
        }
    }
}

impl LimitSettings {
    /// Checks every key; the message names the key, the value and what is accepted.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_concurrent_streams", self.max_concurrent_streams as usize),
            ("max_watchers", self.max_watchers),
            ("max_watchers_per_stream", self.max_watchers_per_stream),
            ("max_leases", self.max_leases),
            ("max_txn_ops", self.max_txn_ops),
            ("quota_bytes", usize::try_from(self.quota_bytes).unwrap_or(usize::MAX)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("`limits.{key}` = 0: expected a positive number"));
            }
        }
        if self.max_txn_ops > conclave_kv::MAX_TXN_OPS {
            return Err(format!(
                "`limits.max_txn_ops` = {}: expected at most {} (the store's own limit)",
                self.max_txn_ops,
                conclave_kv::MAX_TXN_OPS
            ));
        }
        if self.max_range_keys > i64::MAX as usize {
            return Err(format!(
                "`limits.max_range_keys` = {}: expected at most {}",
                self.max_range_keys,
                i64::MAX
            ));
        }
        Ok(())
    }

    /// The etcd API's limits: these, and the request size from `[server]`.
    pub fn to_etcd(&self, max_request_bytes: usize) -> etcd::Limits {
        etcd::Limits {
            max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            max_watchers_per_stream: self.max_watchers_per_stream,
            max_watchers: self.max_watchers,
            max_leases: self.max_leases,
            max_range_keys: self.max_range_keys,
            max_connections: self.max_connections,
            max_concurrent_streams: self.max_concurrent_streams,
            quota_bytes: self.quota_bytes,
            ..etcd::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_apis_and_valid() {
        let settings = LimitSettings::default();
        settings.validate().unwrap();
        let limits = settings.to_etcd(etcd::DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(limits, conclave_etcd::Limits::default());
        limits.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let zero = LimitSettings { max_leases: 0, ..LimitSettings::default() };
        assert_eq!(
            zero.validate().unwrap_err(),
            "`limits.max_leases` = 0: expected a positive number"
        );
        let high = LimitSettings { max_txn_ops: 129, ..LimitSettings::default() };
        assert_eq!(
            high.validate().unwrap_err(),
            "`limits.max_txn_ops` = 129: expected at most 128 (the store's own limit)"
        );
        let off = LimitSettings { max_range_keys: 0, ..LimitSettings::default() };
        off.validate().unwrap();
    }
}
