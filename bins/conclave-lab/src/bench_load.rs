//! The bench's load generator: closed-loop clients issuing one kind of request through the
//! etcd v3 API, as fast as the target answers.
//!
//! Clients share gRPC channels, one channel per [`CLIENTS_PER_CHANNEL`] clients (HTTP/2
//! multiplexes their requests), spread over the members with the leader first, so that one
//! client talks to the leader and many clients load every member, the same way for every
//! target. Requests carry prebuilt `Bytes` keys and values, so the client allocates little per
//! request: it runs on the same cores as the cluster it measures.

use bytes::Bytes;
use conclave_etcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use conclave_etcd::pb::etcdserverpb::request_op::Request as OpRequest;
use conclave_etcd::pb::etcdserverpb::response_op::Response as OpResponse;
use conclave_etcd::pb::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::bench_conn::Connection;

/// A client of the etcd KV service: one of the bench's connections.
pub type Kv = Connection;

/// How long [`connect`] retries a member that does not accept connections yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(15);

/// How many clients share one gRPC channel.
pub const CLIENTS_PER_CHANNEL: usize = 16;

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    Put,
    GetLinearizable,
    GetSerializable,
    Cas,
}

impl Workload {
    pub const ALL: [Self; 4] = [Self::Put, Self::GetLinearizable, Self::GetSerializable, Self::Cas];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::GetLinearizable => "get-linearizable",
            Self::GetSerializable => "get-serializable",
            Self::Cas => "cas",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|w| w.as_str() == text.trim()).ok_or_else(|| {
            format!("unknown workload `{text}`; use {}", Self::ALL.map(Self::as_str).join(", "))
        })
    }

    /// Whether a target must offer linearizable operations to run it.
    pub fn needs_linearizable(self) -> bool {
        matches!(self, Self::GetLinearizable | Self::Cas)
    }
}

/// The key space and values of a bench, shared by every client.
#[derive(Debug)]
pub struct Dataset {
    pub keys: Vec<Bytes>,
    pub value: Bytes,
}

impl Dataset {
    pub fn new(keys: usize, value_bytes: usize) -> Self {
        Self {
            keys: (0..keys).map(|k| Bytes::from(format!("bench/{k:08}"))).collect(),
            value: Bytes::from(fill(value_bytes, 0)),
        }
    }
}

/// `len` bytes of printable filler that start with `stamp` in hex, so values differ.
fn fill(len: usize, stamp: u64) -> Vec<u8> {
    let mut value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    let head = format!("{stamp:016x}");
    let n = head.len().min(len);
    value[..n].copy_from_slice(&head.as_bytes()[..n]);
    value
}

/// A small, fast generator for key choice (SplitMix64).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

/// Opens `count` channels spread over `endpoints` in order (the leader should come first),
/// connected before any request is timed.
pub async fn connect(
    endpoints: &[String],
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Kv>> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let endpoint = &endpoints[i % endpoints.len()];
        // A cluster is ready once one member takes a write; the others may still be starting
        // (many processes on few cores), so each gets a few seconds to listen.
        let deadline = Instant::now() + CONNECT_PATIENCE;
        let connection = loop {
            match Connection::open(endpoint, Duration::from_secs(2), timeout).await {
                Ok(opened) => break opened,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => anyhow::bail!("cannot connect to {endpoint}: {e}"),
            }
        };
        clients.push(connection);
    }
    Ok(clients)
}

/// How many channels `clients` clients use against `members` members.
pub fn channel_count(clients: usize, members: usize) -> usize {
    clients.div_ceil(CLIENTS_PER_CHANNEL).max(members.min(clients)).max(1)
}

/// What one cell's clients saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Requests answered within the measured window.
    pub ops: u64,
    pub errors: u64,
    /// Compare-and-swaps whose comparison failed (answered, nothing written).
    pub cas_misses: u64,
    /// Latency of each answered request in the window, in microseconds.
    pub latencies_us: Vec<u32>,
    pub first_error: Option<String>,
    /// Counted errors by kind: the gRPC code and message (cut to 80 characters).
    pub error_kinds: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.cas_misses += other.cas_misses;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (kind, n) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += n;
        }
    }
}

/// One cell's load.
#[derive(Clone, Debug)]
pub struct Load {
    pub workload: Workload,
    pub clients: usize,
    /// Requests before `warmup` has passed are not counted.
    pub warmup: Duration,
    pub duration: Duration,
    /// Seeds key choice; the same for every target in a round.
    pub seed: u64,
}

/// Runs `load` on `channels` and returns what the clients saw, with the measured window's
/// length.
pub async fn run(load: &Load, channels: &[Kv], data: &Arc<Dataset>) -> (Tally, Duration) {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let until = measure_from + load.duration;
    let mut tasks = Vec::with_capacity(load.clients);
    for c in 0..load.clients {
        let kv = channels[c % channels.len()].clone();
        let client = Client {
            kv,
            data: Arc::clone(data),
            workload: load.workload,
            index: c,
            clients: load.clients,
            rng: Rng(load.seed ^ (c as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            stamp: (load.seed << 20) ^ ((c as u64) << 40),
        };
        tasks.push(tokio::spawn(client.run(measure_from, until)));
    }
    let mut tally = Tally::default();
    for task in tasks {
        if let Ok(t) = task.await {
            tally.merge(t);
        }
    }
    (tally, until - measure_from)
}

struct Client {
    kv: Kv,
    data: Arc<Dataset>,
    workload: Workload,
    index: usize,
    clients: usize,
    rng: Rng,
    stamp: u64,
}

impl Client {
    /// A key: any key, or for compare-and-swap one of this client's own keys (key k belongs to
    /// client k mod clients), so clients do not race each other's comparisons.
    fn key(&mut self) -> usize {
        let n = self.data.keys.len();
        if self.workload == Workload::Cas && self.clients <= n {
            let per = (n - self.index).div_ceil(self.clients);
            self.index + self.clients * self.rng.below(per)
        } else {
            self.rng.below(n)
        }
    }

    async fn run(mut self, measure_from: Instant, until: Instant) -> Tally {
        let mut tally = Tally::default();
        // What this client last saw per key, which its compare-and-swaps expect.
        let mut known: std::collections::HashMap<usize, Bytes> = Default::default();
        loop {
            let invoked = Instant::now();
            if invoked >= until {
                break;
            }
            let k = self.key();
            let key = self.data.keys[k].clone();
            let outcome = match self.workload {
                Workload::Put => self
                    .kv
                    .put(&PutRequest { key, value: self.data.value.clone(), ..Default::default() })
                    .await
                    .map(|_| true),
                Workload::GetLinearizable | Workload::GetSerializable => self
                    .kv
                    .range(&RangeRequest {
                        key,
                        serializable: self.workload == Workload::GetSerializable,
                        ..Default::default()
                    })
                    .await
                    .map(|_| true),
                Workload::Cas => {
                    let expected =
                        known.get(&k).cloned().unwrap_or_else(|| self.data.value.clone());
                    self.stamp += 1;
                    let new = Bytes::from(fill(self.data.value.len(), self.stamp));
                    match self.kv.txn(&cas_request(key, expected, new.clone())).await {
                        Ok(response) => {
                            if response.succeeded {
                                known.insert(k, new);
                            } else if let Some(current) = current_value(&response.responses) {
                                known.insert(k, current);
                            }
                            Ok(response.succeeded)
                        }
                        Err(status) => Err(status),
                    }
                }
            };
            let completed = Instant::now();
            let counted = invoked >= measure_from && completed <= until;
            match outcome {
                Ok(hit) => {
                    if counted {
                        tally.ops += 1;
                        if !hit {
                            tally.cas_misses += 1;
                        }
                        let us = completed.duration_since(invoked).as_micros();
                        tally.latencies_us.push(us.min(u32::MAX as u128) as u32);
                    }
                }
                Err(status) => {
                    let kind = error_kind(&status);
                    if counted {
                        tally.errors += 1;
                        *tally.error_kinds.entry(kind.clone()).or_default() += 1;
                    }
                    if tally.first_error.is_none() {
                        tally.first_error = Some(kind);
                    }
                    // Do not spin on a failing target.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        tally
    }
}

/// What kind of error `status` is, for counting: its code and the start of its message.
fn error_kind(status: &tonic::Status) -> String {
    let message: String = status.message().chars().take(80).collect();
    format!("{:?}: {message}", status.code())
}

/// If `key`'s value is `expected`, put `new`; otherwise read the key's current value.
fn cas_request(key: Bytes, expected: Bytes, new: Bytes) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::Value(expected)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(OpRequest::RequestPut(PutRequest {
                key: key.clone(),
                value: new,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(OpRequest::RequestRange(RangeRequest { key, ..Default::default() })),
        }],
    }
}

fn current_value(responses: &[conclave_etcd::pb::etcdserverpb::ResponseOp]) -> Option<Bytes> {
    responses.iter().find_map(|r| match &r.response {
        Some(OpResponse::ResponseRange(range)) => range.kvs.first().map(|kv| kv.value.clone()),
        _ => None,
    })
}

/// Writes every key of `data` (with the common value) through `channels`, `concurrency`
/// requests at a time. Fails on the first error that persists after retries.
pub async fn preload(
    channels: &[Kv],
    data: &Arc<Dataset>,
    keys: std::ops::Range<usize>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(keys.start));
    let end = keys.end;
    let mut tasks = Vec::new();
    for c in 0..concurrency.max(1) {
        let kv = channels[c % channels.len()].clone();
        let data = Arc::clone(data);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= end {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = data.keys[k % data.keys.len()].clone();
                let mut attempts = 0;
                loop {
                    let request = PutRequest {
                        key: key.clone(),
                        value: data.value.clone(),
                        ..Default::default()
                    };
                    match kv.put(&request).await {
                        Ok(_) => break,
                        Err(status) if attempts < 20 => {
                            attempts += 1;
                            tracing::debug!(%status, "preload put failed; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => anyhow::bail!(
                            "cannot preload key {k}: {:?}: {}",
                            status.code(),
                            status.message()
                        ),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_name() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.as_str()), Ok(w));
        }
        assert!(Workload::parse("scan").unwrap_err().contains("get-linearizable"));
    }

    #[test]
    fn values_have_the_asked_size_and_differ_by_stamp() {
        assert_eq!(fill(256, 1).len(), 256);
        assert_ne!(fill(256, 1), fill(256, 2));
        assert_eq!(fill(4, 7).len(), 4);
    }

    #[test]
    fn channels_cover_every_member_and_every_sixteen_clients() {
        assert_eq!(channel_count(1, 3), 1);
        assert_eq!(channel_count(16, 3), 3);
        assert_eq!(channel_count(64, 3), 4);
        assert_eq!(channel_count(256, 3), 16);
    }
}
