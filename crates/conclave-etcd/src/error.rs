//! How Conclave's errors reach etcd clients: gRPC codes and etcd's own message texts.
//!
//! etcd clients recognise errors by code and by exact message (clientv3's `rpctypes` maps the
//! text back to a typed error), so the texts here are etcd's wherever etcd has one.

use conclave_core::ConsensusError;
use conclave_kv::KvError;
use tonic::{Code, Status};

/// etcd's text for a request whose encoding exceeds `--max-request-bytes`.
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
/// etcd's text for an empty key.
pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
/// etcd's text for a txn with more compares or operations than `--max-txn-ops`.
pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
/// etcd's text when no leader is known.
pub const NO_LEADER: &str = "etcdserver: no leader";
/// etcd's text when the leader changed under a request.
pub const LEADER_CHANGED: &str = "etcdserver: leader changed";
/// etcd's text for a request that did not finish in time (it may still take effect).
pub const REQUEST_TIMED_OUT: &str = "etcdserver: request timed out";
/// `MoveLeader` sent to a member that does not lead (etcdctl sends it to the leader it finds).
pub const NOT_LEADER: &str = "etcdserver: not leader";
/// `MoveLeader` naming a member that is not in the cluster.
pub const BAD_LEADER_TRANSFEREE: &str = "etcdserver: bad leader transferee";
/// `MoveLeader` whose transferee did not take over in time.
pub const LEADER_TRANSFER_TIMED_OUT: &str =
    "etcdserver: request timed out, leader transfer took too long";
/// etcd's text for a server that is stopping.
pub const SERVER_STOPPED: &str = "etcdserver: server stopped";
/// etcd's text for a revision older than the compaction point.
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// etcd's text for a revision that has not happened yet.
pub const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";
/// etcd's text for a lease id that does not exist.
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// A txn nested deeper than [`crate::config::MAX_TXN_NESTING`] levels (etcd has no such limit;
/// its clients' decoders have, so the text is in etcd's style).
pub const TXN_TOO_DEEP: &str = "etcdserver: too many nested txns in txn request";
/// etcd's text for a write refused by the space quota ([`crate::Limits::quota_bytes`]).
pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// A lease grant while [`crate::Limits::max_leases`] leases exist.
pub const TOO_MANY_LEASES: &str = "etcdserver: too many leases";
/// The cancel reason of a watch create refused by [`crate::Limits::max_watchers_per_stream`].
pub const TOO_MANY_WATCHERS_ON_STREAM: &str = "etcdserver: too many watchers on this stream";
/// The cancel reason of a watch create refused by [`crate::Limits::max_watchers`].
pub const TOO_MANY_WATCHERS: &str = "etcdserver: too many watchers on this member";

/// The gRPC status etcd answers for a consensus failure.
pub fn consensus_status(error: &ConsensusError) -> Status {
    match error {
        ConsensusError::NotLeader { leader: None } => Status::unavailable(NO_LEADER),
        // The driver forwards proposals to a known leader; a NotLeader that still names one
        // means leadership moved while the request was in flight, which etcd reports so.
        ConsensusError::NotLeader { leader: Some(_) } => Status::unavailable(LEADER_CHANGED),
        ConsensusError::Unavailable(reason) => {
            Status::unavailable(format!("etcdserver: unavailable: {reason}"))
        }
        ConsensusError::Timeout(_) => Status::unavailable(REQUEST_TIMED_OUT),
        ConsensusError::Unsupported { protocol, what } => {
            Status::failed_precondition(format!("etcdserver: {protocol} does not support {what}"))
        }
        ConsensusError::TooLarge { .. } => Status::invalid_argument(REQUEST_TOO_LARGE),
        ConsensusError::ShuttingDown => Status::unavailable(SERVER_STOPPED),
        ConsensusError::Fatal(reason) => Status::internal(format!("etcdserver: {reason}")),
    }
}

/// The gRPC status etcd answers for a refused key-value request.
pub fn kv_status(error: &KvError) -> Status {
    let (code, message) = match error {
        KvError::Compacted => (Code::OutOfRange, COMPACTED),
        KvError::FutureRevision => (Code::OutOfRange, FUTURE_REVISION),
        KvError::LeaseNotFound => (Code::NotFound, LEASE_NOT_FOUND),
        KvError::LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
        KvError::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        KvError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
        KvError::EmptyKey => (Code::InvalidArgument, EMPTY_KEY),
        KvError::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        KvError::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        KvError::TooManyOps => (Code::InvalidArgument, TOO_MANY_OPS),
        KvError::DuplicateKey => {
            (Code::InvalidArgument, "etcdserver: duplicate key given in txn request")
        }
        // The API layer sends only read-only txns to the read path; this is a bug here.
        KvError::NotReadOnly => {
            return Status::internal(format!("etcdserver: {error}"));
        }
        KvError::Auth(error) => return crate::auth_check::auth_status(error),
        // The API layer encoded the command itself, so a decode failure is a bug or a version
        // mismatch between replicas, not the client's fault.
        KvError::Decode(reason) => {
            return Status::internal(format!("etcdserver: malformed command: {reason}"));
        }
    };
    Status::new(code, message)
}

/// The answer to a linearizable request on a protocol that cannot serve one.
pub fn no_linearizable_reads(protocol: &str) -> Status {
    Status::failed_precondition(format!(
        "etcdserver: {protocol} offers no linearizable reads; use serializable"
    ))
}

/// The answer to a txn with compares on a protocol without atomic compare-and-swap.
pub fn no_atomic_txn(protocol: &str) -> Status {
    Status::failed_precondition(format!(
        "etcdserver: {protocol} offers no atomic compare-and-swap; a txn with compares is refused"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::NodeId;

    #[test]
    fn consensus_errors_map_to_etcd_codes() {
        let s = consensus_status(&ConsensusError::NotLeader { leader: None });
        assert_eq!((s.code(), s.message()), (Code::Unavailable, NO_LEADER));
        let s = consensus_status(&ConsensusError::NotLeader { leader: Some(NodeId(2)) });
        assert_eq!((s.code(), s.message()), (Code::Unavailable, LEADER_CHANGED));
        let s = consensus_status(&ConsensusError::Timeout(5000));
        assert_eq!((s.code(), s.message()), (Code::Unavailable, REQUEST_TIMED_OUT));
        let s = consensus_status(&ConsensusError::TooLarge { size: 10, limit: 5 });
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, REQUEST_TOO_LARGE));
        let s =
            consensus_status(&ConsensusError::Unsupported { protocol: "gossip", what: "x".into() });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(consensus_status(&ConsensusError::Fatal("disk".into())).code(), Code::Internal);
        assert_eq!(consensus_status(&ConsensusError::ShuttingDown).code(), Code::Unavailable);
    }

    #[test]
    fn kv_errors_keep_etcd_texts() {
        let s = kv_status(&KvError::Compacted);
        assert_eq!((s.code(), s.message()), (Code::OutOfRange, COMPACTED));
        let s = kv_status(&KvError::LeaseNotFound);
        assert_eq!((s.code(), s.message()), (Code::NotFound, LEASE_NOT_FOUND));
        let s = kv_status(&KvError::EmptyKey);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, EMPTY_KEY));
        assert_eq!(kv_status(&KvError::FutureRevision).code(), Code::OutOfRange);
    }
}
