//! Conversions between the wire messages (`pb`) and conclave-kv's requests, responses and records.
//!
//! The two sides name the same things (kv's types are shaped after etcd's messages), so these
//! are one-to-one field copies; the only judgment calls are protobuf enum values the client sent
//! that etcd does not define, which are refused with INVALID_ARGUMENT rather than guessed at.

use conclave_kv as kv;
use tonic::Status;

use crate::pb::etcdserverpb as rpc;
use crate::pb::mvccpb;
use rpc::compare::{CompareResult, CompareTarget, TargetUnion};
use rpc::range_request::{SortOrder, SortTarget};
use rpc::{request_op, response_op};

fn unknown(what: &str, value: i32) -> Status {
    Status::invalid_argument(format!("etcdserver: unknown {what} {value}"))
}

pub fn range_request(req: rpc::RangeRequest) -> Result<kv::RangeRequest, Status> {
    let sort_order = match SortOrder::try_from(req.sort_order) {
        Ok(SortOrder::None) => kv::SortOrder::None,
        Ok(SortOrder::Ascend) => kv::SortOrder::Ascend,
        Ok(SortOrder::Descend) => kv::SortOrder::Descend,
        Err(_) => return Err(unknown("sort order", req.sort_order)),
    };
    let sort_target = match SortTarget::try_from(req.sort_target) {
        Ok(SortTarget::Key) => kv::SortTarget::Key,
        Ok(SortTarget::Version) => kv::SortTarget::Version,
        Ok(SortTarget::Create) => kv::SortTarget::Create,
        Ok(SortTarget::Mod) => kv::SortTarget::Mod,
        Ok(SortTarget::Value) => kv::SortTarget::Value,
        Err(_) => return Err(unknown("sort target", req.sort_target)),
    };
    Ok(kv::RangeRequest {
        key: req.key,
        range_end: req.range_end,
        limit: req.limit,
        revision: req.revision,
        sort_order,
        sort_target,
        keys_only: req.keys_only,
        count_only: req.count_only,
        min_mod_revision: req.min_mod_revision,
        max_mod_revision: req.max_mod_revision,
        min_create_revision: req.min_create_revision,
        max_create_revision: req.max_create_revision,
    })
}

pub fn put_request(req: rpc::PutRequest) -> kv::PutRequest {
    kv::PutRequest {
        key: req.key,
        value: req.value,
        lease: req.lease,
        prev_kv: req.prev_kv,
        ignore_value: req.ignore_value,
        ignore_lease: req.ignore_lease,
    }
}

pub fn delete_request(req: rpc::DeleteRangeRequest) -> kv::DeleteRangeRequest {
    kv::DeleteRangeRequest { key: req.key, range_end: req.range_end, prev_kv: req.prev_kv }
}

pub fn compare(cmp: rpc::Compare) -> Result<kv::Compare, Status> {
    let result = match CompareResult::try_from(cmp.result) {
        Ok(CompareResult::Equal) => kv::CompareResult::Equal,
        Ok(CompareResult::Greater) => kv::CompareResult::Greater,
        Ok(CompareResult::Less) => kv::CompareResult::Less,
        Ok(CompareResult::NotEqual) => kv::CompareResult::NotEqual,
        Err(_) => return Err(unknown("compare result", cmp.result)),
    };
    // The operand is read from the oneof member that matches the target; a client that set a
    // different member compares against zero (or the empty value), as etcd's getters give.
    let union = cmp.target_union;
    let target = match CompareTarget::try_from(cmp.target) {
        Ok(CompareTarget::Version) => kv::CompareTarget::Version(match union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Create) => kv::CompareTarget::Create(match union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => kv::CompareTarget::Mod(match union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Value) => kv::CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => bytes::Bytes::new(),
        }),
        Ok(CompareTarget::Lease) => kv::CompareTarget::Lease(match union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        Err(_) => return Err(unknown("compare target", cmp.target)),
    };
    Ok(kv::Compare { key: cmp.key, range_end: cmp.range_end, result, target })
}

pub fn txn_request(req: rpc::TxnRequest) -> Result<kv::TxnRequest, Status> {
    Ok(kv::TxnRequest {
        compare: req.compare.into_iter().map(compare).collect::<Result<_, _>>()?,
        success: req.success.into_iter().map(request_op).collect::<Result<_, _>>()?,
        failure: req.failure.into_iter().map(request_op).collect::<Result<_, _>>()?,
    })
}

fn request_op(op: rpc::RequestOp) -> Result<kv::RequestOp, Status> {
    match op.request {
        Some(request_op::Request::RequestRange(r)) => Ok(kv::RequestOp::Range(range_request(r)?)),
        Some(request_op::Request::RequestPut(r)) => Ok(kv::RequestOp::Put(put_request(r))),
        Some(request_op::Request::RequestDeleteRange(r)) => {
            Ok(kv::RequestOp::DeleteRange(delete_request(r)))
        }
        Some(request_op::Request::RequestTxn(r)) => Ok(kv::RequestOp::Txn(txn_request(r)?)),
        None => Err(Status::invalid_argument("etcdserver: txn operation has no request")),
    }
}

pub fn key_value(kv: kv::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An event for a watcher; `prev_kv` only when the watcher asked for it.
pub fn event(event: kv::Event, with_prev_kv: bool) -> mvccpb::Event {
    let kind = match event.kind {
        kv::EventKind::Put => mvccpb::event::EventType::Put,
        kv::EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(event.kv)),
        prev_kv: if with_prev_kv { event.prev_kv.map(key_value) } else { None },
    }
}

/// Nested responses inside a txn carry only their revision in the header, as etcd's do; the
/// caller fills the outer header.
fn nested_header(revision: i64) -> Option<rpc::ResponseHeader> {
    Some(rpc::ResponseHeader { revision, ..Default::default() })
}

pub fn range_response(
    resp: kv::RangeResponse,
    header: Option<rpc::ResponseHeader>,
) -> rpc::RangeResponse {
    rpc::RangeResponse {
        header,
        kvs: resp.kvs.into_iter().map(key_value).collect(),
        more: resp.more,
        count: resp.count,
    }
}

pub fn put_response(
    resp: kv::PutResponse,
    header: Option<rpc::ResponseHeader>,
) -> rpc::PutResponse {
    rpc::PutResponse { header, prev_kv: resp.prev_kv.map(key_value) }
}

pub fn delete_response(
    resp: kv::DeleteRangeResponse,
    header: Option<rpc::ResponseHeader>,
) -> rpc::DeleteRangeResponse {
    rpc::DeleteRangeResponse {
        header,
        deleted: resp.deleted,
        prev_kvs: resp.prev_kvs.into_iter().map(key_value).collect(),
    }
}

pub fn txn_response(
    resp: kv::TxnResponse,
    header: Option<rpc::ResponseHeader>,
) -> rpc::TxnResponse {
    rpc::TxnResponse {
        header,
        succeeded: resp.succeeded,
        responses: resp.responses.into_iter().map(response_op).collect(),
    }
}

fn response_op(op: kv::ResponseOp) -> rpc::ResponseOp {
    let response = match op {
        kv::ResponseOp::Range(r) => {
            let h = nested_header(r.revision);
            response_op::Response::ResponseRange(range_response(r, h))
        }
        kv::ResponseOp::Put(r) => {
            let h = nested_header(r.revision);
            response_op::Response::ResponsePut(put_response(r, h))
        }
        kv::ResponseOp::DeleteRange(r) => {
            let h = nested_header(r.revision);
            response_op::Response::ResponseDeleteRange(delete_response(r, h))
        }
        kv::ResponseOp::Txn(r) => {
            let h = nested_header(r.revision);
            response_op::Response::ResponseTxn(txn_response(r, h))
        }
    };
    rpc::ResponseOp { response: Some(response) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn compare_reads_the_operand_matching_its_target() {
        let cmp = rpc::Compare {
            result: CompareResult::Greater as i32,
            target: CompareTarget::Mod as i32,
            key: Bytes::from_static(b"k"),
            target_union: Some(TargetUnion::ModRevision(7)),
            range_end: Bytes::new(),
        };
        let got = compare(cmp).unwrap();
        assert_eq!(got.result, kv::CompareResult::Greater);
        assert_eq!(got.target, kv::CompareTarget::Mod(7));
    }

    #[test]
    fn unknown_enum_values_are_refused() {
        let req = rpc::RangeRequest { sort_order: 9, ..Default::default() };
        assert_eq!(range_request(req).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn events_drop_prev_kv_unless_asked() {
        let ev = kv::Event {
            kind: kv::EventKind::Delete,
            kv: kv::KeyValue {
                key: Bytes::from_static(b"k"),
                mod_revision: 5,
                ..Default::default()
            },
            prev_kv: Some(kv::KeyValue { key: Bytes::from_static(b"k"), ..Default::default() }),
        };
        let plain = event(ev.clone(), false);
        assert_eq!(plain.r#type, mvccpb::event::EventType::Delete as i32);
        assert!(plain.prev_kv.is_none());
        assert!(event(ev, true).prev_kv.is_some());
    }
}
