//! Seeds for the etcd request decoders: each request type the server accepts, encoded with
//! prost and prefixed by one byte naming the type (see [`crate::targets::etcd`]).

use crate::runner::Seed;
use crate::targets::etcd::RequestKind;
use bytes::Bytes;
use conclave_etcd::pb::etcdserverpb as rpc;
use prost::Message;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn seed(kind: RequestKind, name: &str, message: &impl Message) -> Seed {
    let mut bytes = vec![kind as u8];
    message.encode(&mut bytes).expect("a Vec grows as needed");
    Seed { name: format!("{}-{name}", kind.name()), bytes }
}

pub fn seeds() -> Vec<Seed> {
    use rpc::compare::{CompareResult, CompareTarget, TargetUnion};
    use rpc::request_op::Request as Op;
    use rpc::watch_request::RequestUnion;
    let put = rpc::PutRequest { key: b("a"), value: b("1"), prev_kv: true, ..Default::default() };
    let range = rpc::RangeRequest {
        key: b("a"),
        range_end: b("b"),
        limit: 10,
        sort_order: 2,
        sort_target: 3,
        min_mod_revision: 1,
        ..Default::default()
    };
    let nested = rpc::TxnRequest {
        success: vec![rpc::RequestOp { request: Some(Op::RequestRange(range.clone())) }],
        ..Default::default()
    };
    let txn = rpc::TxnRequest {
        compare: vec![rpc::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: b("a"),
            target_union: Some(TargetUnion::Value(b("1"))),
            range_end: Bytes::new(),
        }],
        success: vec![
            rpc::RequestOp { request: Some(Op::RequestPut(put.clone())) },
            rpc::RequestOp { request: Some(Op::RequestTxn(nested)) },
        ],
        failure: vec![rpc::RequestOp {
            request: Some(Op::RequestDeleteRange(rpc::DeleteRangeRequest {
                key: b("a"),
                range_end: b("\0"),
                prev_kv: true,
            })),
        }],
    };
    let watch = rpc::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(rpc::WatchCreateRequest {
            key: b("a"),
            range_end: b("b"),
            start_revision: 2,
            progress_notify: true,
            filters: vec![1],
            prev_kv: true,
            watch_id: 5,
            fragment: false,
        })),
    };
    vec![
        seed(RequestKind::Range, "prefix-sorted", &range),
        seed(RequestKind::Put, "prev-kv", &put),
        seed(
            RequestKind::DeleteRange,
            "all",
            &rpc::DeleteRangeRequest { key: b("\0"), range_end: b("\0"), prev_kv: false },
        ),
        seed(RequestKind::Txn, "cas-nested", &txn),
        seed(
            RequestKind::Compaction,
            "rev",
            &rpc::CompactionRequest { revision: 2, physical: true },
        ),
        seed(RequestKind::Watch, "create", &watch),
        seed(
            RequestKind::Watch,
            "cancel",
            &rpc::WatchRequest {
                request_union: Some(RequestUnion::CancelRequest(rpc::WatchCancelRequest {
                    watch_id: 5,
                })),
            },
        ),
        seed(RequestKind::LeaseGrant, "ttl", &rpc::LeaseGrantRequest { ttl: 30, id: 9 }),
        seed(RequestKind::LeaseRevoke, "id", &rpc::LeaseRevokeRequest { id: 9 }),
        seed(RequestKind::LeaseKeepAlive, "id", &rpc::LeaseKeepAliveRequest { id: 9 }),
        seed(
            RequestKind::LeaseTimeToLive,
            "keys",
            &rpc::LeaseTimeToLiveRequest { id: 9, keys: true },
        ),
        seed(RequestKind::LeaseLeases, "all", &rpc::LeaseLeasesRequest {}),
        seed(
            RequestKind::MemberList,
            "linearizable",
            &rpc::MemberListRequest { linearizable: true },
        ),
        seed(RequestKind::Status, "empty", &rpc::StatusRequest {}),
        seed(RequestKind::Alarm, "get", &rpc::AlarmRequest { action: 0, member_id: 0, alarm: 0 }),
    ]
}
