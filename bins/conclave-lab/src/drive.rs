//! Running the workload's clients against a target until a deadline, recording every request.
//!
//! Closed loop: each client sends its next request when the previous one is answered (or
//! abandoned). Open loop: each client sends at a fixed pace (the total rate split evenly),
//! with at most a bounded number of requests in flight; a request that would pass the bound
//! is skipped and counted, so that a stalled target cannot make the lab pile up requests.

use crate::history::{Recorder, call_of};
use crate::kv::{Answer, KvSession, ReadMode};
use crate::workload::{LoopMode, OpKind, OpStream, WorkloadConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Runs every client until `until`, then waits for requests in flight.
/// Returns how many planned requests open loop had to skip.
pub async fn run_clients(
    config: &WorkloadConfig,
    endpoints: Vec<String>,
    reads: ReadMode,
    recorder: Arc<Recorder>,
    until: Instant,
) -> u64 {
    let skipped = Arc::new(AtomicU64::new(0));
    let timeout = Duration::from_millis(config.op_timeout_ms);
    let mut tasks = Vec::new();
    for c in 0..config.clients {
        let client = c as u64 + 1;
        let stream = OpStream::new(config, client);
        let session = KvSession::new(endpoints.clone(), c, timeout, config.value_bytes);
        let recorder = Arc::clone(&recorder);
        let task = match config.mode {
            LoopMode::Closed => {
                tokio::spawn(closed_loop(client, stream, session, reads, recorder, until))
            }
            LoopMode::Open { rate_per_s } => {
                let interval = Duration::from_secs_f64(config.clients as f64 / rate_per_s);
                let skipped = Arc::clone(&skipped);
                let bound = config.max_in_flight_per_client;
                tokio::spawn(open_loop(
                    client, stream, session, reads, recorder, until, interval, bound, skipped,
                ))
            }
        };
        tasks.push(task);
    }
    for task in tasks {
        let _ = task.await;
    }
    skipped.load(Ordering::Relaxed)
}

async fn closed_loop(
    client: u64,
    mut stream: OpStream,
    mut session: KvSession,
    reads: ReadMode,
    recorder: Arc<Recorder>,
    until: Instant,
) {
    while Instant::now() < until {
        let op = stream.next_op();
        let expected = (op.kind == OpKind::Cas).then(|| session.expected(&op.key)).flatten();
        let call = call_of(&op, expected.as_deref());
        let invoked = recorder.now_ns();
        let (endpoint, answer) = session.execute(&op, expected.as_deref(), reads).await;
        let completed = recorder.now_ns();
        let failed = matches!(answer, Answer::Failed { .. });
        recorder.record(client, &op, call, endpoint, invoked, completed, answer);
        if failed {
            // Do not spin on a dead endpoint: the session has moved on; breathe first.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Open loop shares one session per client; a request holds the session only to pick its
/// endpoint and to learn from the answer, not while it waits.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    client: u64,
    mut stream: OpStream,
    session: KvSession,
    reads: ReadMode,
    recorder: Arc<Recorder>,
    until: Instant,
    interval: Duration,
    bound: usize,
    skipped: Arc<AtomicU64>,
) {
    let session = Arc::new(tokio::sync::Mutex::new(session));
    let in_flight = Arc::new(Semaphore::new(bound));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut requests = Vec::new();
    while Instant::now() < until {
        ticker.tick().await;
        let op = stream.next_op();
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let session = Arc::clone(&session);
        let recorder = Arc::clone(&recorder);
        requests.push(tokio::spawn(async move {
            // Each request gets its own clone of the session's routing; the shared session
            // learns the answer afterwards.
            let (mut own, expected) = {
                let shared = session.lock().await;
                let expected = (op.kind == OpKind::Cas).then(|| shared.expected(&op.key)).flatten();
                (shared.fork(), expected)
            };
            let call = call_of(&op, expected.as_deref());
            let invoked = recorder.now_ns();
            let (endpoint, answer) = own.execute(&op, expected.as_deref(), reads).await;
            let completed = recorder.now_ns();
            session.lock().await.absorb(&own, &op, &answer);
            recorder.record(client, &op, call, endpoint, invoked, completed, answer);
            drop(permit);
        }));
        requests.retain(|r| !r.is_finished());
    }
    for request in requests {
        let _ = request.await;
    }
}
