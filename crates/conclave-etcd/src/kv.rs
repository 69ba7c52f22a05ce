//! The `KV` service: writes proposed through the consensus, reads served from the local store
//! behind the protocol's read barrier.
//!
//! A read-only txn is a read (served by `KvStore::txn_read` without the log, as etcd does);
//! a txn that writes is one proposal. Under a protocol without atomic compare-and-swap
//! (gossip) a writing txn with compares is refused unless `downgrade_unsupported` is on.

use conclave_kv::{Command, Output};
use tonic::{Request, Response, Status};

use crate::auth_check::{Caller, delete_needs, needs_rule, put_needs, range_needs, txn_needs};
use crate::config::{Limits, MAX_TXN_NESTING};
use crate::context::EtcdContext;
use crate::convert;
use crate::error::{EMPTY_KEY, TOO_MANY_OPS, TXN_TOO_DEEP, kv_status, no_atomic_txn};
use crate::metrics::TXN_LOCAL_TOTAL;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// The `etcdserverpb.KV` service.
#[derive(Clone, Debug)]
pub struct KvService {
    ctx: EtcdContext,
}

impl KvService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }
}

fn unexpected(output: &Output) -> Status {
    Status::internal(format!("etcdserver: unexpected store output {output:?}"))
}

fn require_key(key: &[u8]) -> Result<(), Status> {
    if key.is_empty() { Err(Status::invalid_argument(EMPTY_KEY)) } else { Ok(()) }
}

/// etcd's `checkTxnRequest`, refused before anything is proposed: the configured op limit
/// and a key on every compare and operation, at every depth; and nesting no deeper than
/// [`MAX_TXN_NESTING`] (`depth` is this txn's level, 1 for the outermost).
fn check_txn(txn: &TxnRequest, max_ops: usize, depth: usize) -> Result<(), Status> {
    if depth > MAX_TXN_NESTING {
        return Err(Status::invalid_argument(TXN_TOO_DEEP));
    }
    if txn.compare.len() > max_ops || txn.success.len() > max_ops || txn.failure.len() > max_ops {
        return Err(Status::invalid_argument(TOO_MANY_OPS));
    }
    for compare in &txn.compare {
        require_key(&compare.key)?;
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => require_key(&r.key)?,
            Some(Op::RequestPut(r)) => require_key(&r.key)?,
            Some(Op::RequestDeleteRange(r)) => require_key(&r.key)?,
            Some(Op::RequestTxn(nested)) => check_txn(nested, max_ops, depth + 1)?,
            None => {}
        }
    }
    Ok(())
}

/// Applies the server's range cap ([`Limits::max_range_keys`]) to every range in the txn.
fn cap_txn_ranges(txn: &mut TxnRequest, limits: &Limits) {
    for op in txn.success.iter_mut().chain(txn.failure.iter_mut()) {
        match &mut op.request {
            Some(Op::RequestRange(range)) => range.limit = limits.capped_range_limit(range.limit),
            Some(Op::RequestTxn(nested)) => cap_txn_ranges(nested, limits),
            _ => {}
        }
    }
}

/// Whether the txn, or a txn nested in it, has compares.
fn has_compares(txn: &TxnRequest) -> bool {
    !txn.compare.is_empty()
        || txn.success.iter().chain(&txn.failure).any(|op| match &op.request {
            Some(Op::RequestTxn(nested)) => has_compares(nested),
            _ => false,
        })
}

/// etcd's `isTxnSerializable`: every range in the txn asked for a serializable read.
fn all_ranges_serializable(txn: &TxnRequest) -> bool {
    txn.success.iter().chain(&txn.failure).all(|op| match &op.request {
        Some(Op::RequestRange(r)) => r.serializable,
        Some(Op::RequestTxn(nested)) => all_ranges_serializable(nested),
        _ => true,
    })
}

/// `etcdctl endpoint health` (3.4) probes with a linearizable get of the key `health`.
fn is_health_probe(req: &RangeRequest) -> bool {
    &req.key[..] == b"health" && req.range_end.is_empty()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let (metadata, _, mut request) = request.into_parts();
        require_key(&request.key)?;
        request.limit = self.ctx.limits.capped_range_limit(request.limit);
        // A protocol without linearizable reads still answers the health probe, locally: the
        // key is never written, and refusing it would report every such member unhealthy.
        let local_probe =
            is_health_probe(&request) && !self.ctx.consensus.guarantees().linearizable_reads;
        self.ctx.read_barrier(request.serializable || local_probe).await?;
        self.ctx.authorize_needs(&metadata, &range_needs(&request))?;
        let range = convert::range_request(request)?;
        let answer = self.ctx.read_store().range(&range).map_err(|e| kv_status(&e))?;
        let header = self.ctx.header(answer.revision);
        Ok(Response::new(convert::range_response(answer, header)))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        require_key(&request.key)?;
        let needs = put_needs(&request);
        let command = Command::Put(convert::put_request(request));
        let output = self.ctx.propose_authorized(&metadata, needs_rule(&needs), &command).await?;
        let Output::Put(answer) = output else { return Err(unexpected(&output)) };
        let header = self.ctx.header(answer.revision);
        Ok(Response::new(convert::put_response(answer, header)))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        require_key(&request.key)?;
        let needs = delete_needs(&request);
        let command = Command::DeleteRange(convert::delete_request(request));
        let output = self.ctx.propose_authorized(&metadata, needs_rule(&needs), &command).await?;
        let Output::DeleteRange(answer) = output else { return Err(unexpected(&output)) };
        let header = self.ctx.header(answer.revision);
        Ok(Response::new(convert::delete_response(answer, header)))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let (metadata, _, mut request) = request.into_parts();
        check_txn(&request, self.ctx.limits.max_txn_ops, 1)?;
        cap_txn_ranges(&mut request, &self.ctx.limits);
        let serializable = all_ranges_serializable(&request);
        let compares = has_compares(&request);
        let mut needs = Vec::new();
        txn_needs(&request, &mut needs);
        let txn = convert::txn_request(request)?;
        if txn.is_read_only() {
            self.ctx.read_barrier(serializable).await?;
            self.ctx.authorize_needs(&metadata, &needs)?;
            let answer = self.ctx.read_store().txn_read(&txn).map_err(|e| kv_status(&e))?;
            let header = self.ctx.header(answer.revision);
            return Ok(Response::new(convert::txn_response(answer, header)));
        }
        if compares && !self.ctx.consensus.guarantees().atomic_compare_and_swap {
            if !self.ctx.options.downgrade_unsupported {
                return Err(no_atomic_txn(self.ctx.protocol));
            }
            self.ctx.authorize_needs(&metadata, &needs)?;
            metrics::counter!(TXN_LOCAL_TOTAL, "protocol" => self.ctx.protocol).increment(1);
            return self.local_txn(txn).await;
        }
        let command = Command::Txn(txn);
        let output = self.ctx.propose_authorized(&metadata, needs_rule(&needs), &command).await?;
        let Output::Txn(answer) = output else { return Err(unexpected(&output)) };
        let header = self.ctx.header(answer.revision);
        Ok(Response::new(convert::txn_response(answer, header)))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Compaction is applied with the entry, so `physical` is always already true.
        let (metadata, _, request) = request.into_parts();
        // Compaction drops everyone's history: etcd lets only root (an admin) do it.
        let command = Command::Compact { revision: request.revision };
        let root_only = |_: &conclave_kv::KvStore, caller: &Caller| caller.require_root();
        let output = self.ctx.propose_authorized(&metadata, root_only, &command).await?;
        let Output::Compact { revision } = output else { return Err(unexpected(&output)) };
        Ok(Response::new(CompactionResponse { header: self.ctx.header(revision) }))
    }
}

impl KvService {
    /// A txn with compares under a protocol without atomic compare-and-swap, downgraded: the
    /// compares are evaluated on this replica, and only the chosen branch is proposed, as a txn
    /// without compares (which such a protocol applies like any write). Another replica may
    /// have decided differently at the same moment: that is the anomaly the downgrade accepts.
    async fn local_txn(
        &self,
        txn: conclave_kv::TxnRequest,
    ) -> Result<Response<TxnResponse>, Status> {
        self.ctx.read_barrier(true).await?;
        let probe = conclave_kv::TxnRequest {
            compare: txn.compare.clone(),
            success: Vec::new(),
            failure: Vec::new(),
        };
        let succeeded =
            self.ctx.read_store().txn_read(&probe).map_err(|e| kv_status(&e))?.succeeded;
        let branch = if succeeded { txn.success } else { txn.failure };
        let chosen =
            conclave_kv::TxnRequest { compare: Vec::new(), success: branch, failure: Vec::new() };
        let output = self.ctx.propose(&Command::Txn(chosen)).await?;
        let Output::Txn(mut answer) = output else { return Err(unexpected(&output)) };
        answer.succeeded = succeeded;
        let header = self.ctx.header(answer.revision);
        Ok(Response::new(convert::txn_response(answer, header)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::{Compare, RequestOp};
    use bytes::Bytes;

    fn put_op(key: &'static [u8]) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: Bytes::from_static(key),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn txn_checks_follow_etcd() {
        let txn = TxnRequest { success: vec![put_op(b"k"); 3], ..Default::default() };
        assert!(check_txn(&txn, 3, 1).is_ok());
        assert_eq!(check_txn(&txn, 2, 1).unwrap_err().message(), TOO_MANY_OPS);
        let txn = TxnRequest { failure: vec![put_op(b"")], ..Default::default() };
        assert_eq!(check_txn(&txn, 128, 1).unwrap_err().message(), EMPTY_KEY);
        assert!(check_txn(&TxnRequest::default(), 128, MAX_TXN_NESTING).is_ok());
        let err = check_txn(&TxnRequest::default(), 128, MAX_TXN_NESTING + 1).unwrap_err();
        assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, TXN_TOO_DEEP));
    }

    #[test]
    fn nested_compares_are_found() {
        let inner = TxnRequest {
            compare: vec![Compare { key: Bytes::from_static(b"k"), ..Default::default() }],
            ..Default::default()
        };
        let outer = TxnRequest {
            success: vec![RequestOp { request: Some(Op::RequestTxn(inner)) }],
            ..Default::default()
        };
        assert!(has_compares(&outer));
        assert!(!has_compares(&TxnRequest::default()));
    }
}
