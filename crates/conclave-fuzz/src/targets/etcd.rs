//! etcd v3 request decoding and handling: protobuf bytes as a client would send them.
//!
//! An input is one byte naming the request type ([`RequestKind`]) and the protobuf body.
//! `prost::Message::decode` must return `Ok` or `Err`; a decoded request must survive an
//! encode/decode round trip; and, for the unary calls, the real service handler (over a
//! [`crate::fake::FakeConsensus`] and a store with some history) must answer with a response
//! or an etcd-style status — never panic, never an `INTERNAL` or `UNKNOWN` code, which would
//! mean the server blamed itself for a client's request. Streaming calls (watch, keep-alive)
//! are checked at the decoder only.

use crate::corpus;
use crate::fake;
use crate::mutate::Mutator;
use crate::runner::{self, CheckResult, Failure, Report, Verdict};
use crate::settings::FuzzSettings;
use conclave_etcd::cluster::ClusterService;
use conclave_etcd::kv::KvService;
use conclave_etcd::lease::LeaseService;
use conclave_etcd::maintenance::MaintenanceService;
use conclave_etcd::pb::etcdserverpb as rpc;
use conclave_etcd::pb::etcdserverpb::cluster_server::Cluster;
use conclave_etcd::pb::etcdserverpb::kv_server::Kv;
use conclave_etcd::pb::etcdserverpb::lease_server::Lease;
use conclave_etcd::pb::etcdserverpb::maintenance_server::Maintenance;
use conclave_etcd::{EtcdContext, Limits};
use prost::Message;
use std::time::Duration;
use tonic::{Code, Request, Response, Status};

pub const TARGET: &str = "etcd_request";

/// Mutants are cut to this length.
pub const MAX_INPUT_BYTES: usize = 8 * 1024;

/// The world is rebuilt this often, so the store stays small.
const RESET_EVERY: u64 = 512;

/// Which request an input's first byte names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RequestKind {
    Range = 0,
    Put = 1,
    DeleteRange = 2,
    Txn = 3,
    Compaction = 4,
    Watch = 5,
    LeaseGrant = 6,
    LeaseRevoke = 7,
    LeaseKeepAlive = 8,
    LeaseTimeToLive = 9,
    LeaseLeases = 10,
    MemberList = 11,
    Status = 12,
    Alarm = 13,
}

impl RequestKind {
    const ALL: [RequestKind; 14] = [
        Self::Range,
        Self::Put,
        Self::DeleteRange,
        Self::Txn,
        Self::Compaction,
        Self::Watch,
        Self::LeaseGrant,
        Self::LeaseRevoke,
        Self::LeaseKeepAlive,
        Self::LeaseTimeToLive,
        Self::LeaseLeases,
        Self::MemberList,
        Self::Status,
        Self::Alarm,
    ];

    /// The kind a first byte names (every byte names one).
    pub fn from_byte(byte: u8) -> Self {
        Self::ALL[byte as usize % Self::ALL.len()]
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::Put => "put",
            Self::DeleteRange => "delete-range",
            Self::Txn => "txn",
            Self::Compaction => "compaction",
            Self::Watch => "watch",
            Self::LeaseGrant => "lease-grant",
            Self::LeaseRevoke => "lease-revoke",
            Self::LeaseKeepAlive => "lease-keep-alive",
            Self::LeaseTimeToLive => "lease-time-to-live",
            Self::LeaseLeases => "lease-leases",
            Self::MemberList => "member-list",
            Self::Status => "status",
            Self::Alarm => "alarm",
        }
    }
}

/// The services, a runtime to call them on, and a store with some history.
pub struct EtcdWorld {
    runtime: tokio::runtime::Runtime,
    ctx: EtcdContext,
    kv: KvService,
    lease: LeaseService,
    cluster: ClusterService,
    maintenance: MaintenanceService,
}

impl std::fmt::Debug for EtcdWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWorld").field("ctx", &self.ctx).finish_non_exhaustive()
    }
}

impl EtcdWorld {
    pub fn new() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        // The URL is never dialled: this member holds the leases itself.
        let ctx =
            fake::etcd_context(Limits::default(), "127.0.0.1:1").map_err(|e| e.to_string())?;
        let world = Self {
            runtime,
            kv: KvService::new(ctx.clone()),
            lease: LeaseService::new(ctx.clone()),
            cluster: ClusterService::new(ctx.clone()),
            maintenance: MaintenanceService::new(ctx.clone()),
            ctx,
        };
        for seed in crate::seeds::etcd::seeds() {
            // History for requests to find: the seeds' own writes (their answers do not matter).
            let _ = world.check(&seed.bytes);
        }
        Ok(world)
    }

    /// Decodes and, for unary calls, serves one input.
    pub fn check(&self, bytes: &[u8]) -> CheckResult {
        let Some((&first, body)) = bytes.split_first() else { return Ok(Verdict::Rejected) };
        match RequestKind::from_byte(first) {
            RequestKind::Range => {
                self.serve(body, |r: rpc::RangeRequest| self.kv.range(Request::new(r)))
            }
            RequestKind::Put => self.serve(body, |r: rpc::PutRequest| self.kv.put(Request::new(r))),
            RequestKind::DeleteRange => {
                self.serve(body, |r: rpc::DeleteRangeRequest| self.kv.delete_range(Request::new(r)))
            }
            RequestKind::Txn => self.serve(body, |r: rpc::TxnRequest| self.kv.txn(Request::new(r))),
            RequestKind::Compaction => {
                self.serve(body, |r: rpc::CompactionRequest| self.kv.compact(Request::new(r)))
            }
            RequestKind::Watch => decode_only::<rpc::WatchRequest>(body),
            RequestKind::LeaseGrant => self
                .serve(body, |r: rpc::LeaseGrantRequest| self.lease.lease_grant(Request::new(r))),
            RequestKind::LeaseRevoke => self
                .serve(body, |r: rpc::LeaseRevokeRequest| self.lease.lease_revoke(Request::new(r))),
            RequestKind::LeaseKeepAlive => decode_only::<rpc::LeaseKeepAliveRequest>(body),
            RequestKind::LeaseTimeToLive => self.serve(body, |r: rpc::LeaseTimeToLiveRequest| {
                self.lease.lease_time_to_live(Request::new(r))
            }),
            RequestKind::LeaseLeases => self
                .serve(body, |r: rpc::LeaseLeasesRequest| self.lease.lease_leases(Request::new(r))),
            RequestKind::MemberList => self
                .serve(body, |r: rpc::MemberListRequest| self.cluster.member_list(Request::new(r))),
            RequestKind::Status => {
                self.serve(body, |r: rpc::StatusRequest| self.maintenance.status(Request::new(r)))
            }
            RequestKind::Alarm => {
                self.serve(body, |r: rpc::AlarmRequest| self.maintenance.alarm(Request::new(r)))
            }
        }
    }

    fn serve<M, R, Fut>(&self, body: &[u8], call: impl FnOnce(M) -> Fut) -> CheckResult
    where
        M: Message + Default + PartialEq + Clone,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        let Some(request) = decode::<M>(body)? else { return Ok(Verdict::Rejected) };
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), call(request)).await })
            .map_err(|_| "the handler did not answer within 10 s".to_string())?;
        match answer {
            Ok(_) => Ok(Verdict::Accepted),
            Err(status) if matches!(status.code(), Code::Internal | Code::Unknown) => Err(format!(
                "a client request got {:?} {:?}: the server blames itself",
                status.code(),
                status.message()
            )),
            Err(_) => Ok(Verdict::Accepted),
        }
    }
}

/// Decodes `body` as an `M`; a decoded message must survive encode and decode.
fn decode<M: Message + Default + PartialEq>(body: &[u8]) -> Result<Option<M>, String> {
    let Ok(message) = M::decode(body) else { return Ok(None) };
    let again = M::decode(message.encode_to_vec().as_slice())
        .map_err(|e| format!("a decoded request does not decode after encoding: {e}"))?;
    if again != message {
        return Err("a decoded request changed through encode and decode".into());
    }
    Ok(Some(message))
}

fn decode_only<M: Message + Default + PartialEq>(body: &[u8]) -> CheckResult {
    Ok(match decode::<M>(body)? {
        Some(_) => Verdict::Accepted,
        None => Verdict::Rejected,
    })
}

pub fn fuzz(settings: &FuzzSettings) -> Result<Report, Failure> {
    let mut world = EtcdWorld::new().expect("the etcd world builds");
    let mut served = 0u64;
    runner::run(
        TARGET,
        &corpus::load(TARGET),
        &Mutator::new(MAX_INPUT_BYTES),
        settings,
        move |input| {
            served += 1;
            if served % RESET_EVERY == 0 {
                world = EtcdWorld::new()?;
            }
            world.check(&input.bytes)
        },
    )
}
