//! gRPC request metrics per method and code, and the counters of downgraded requests, read
//! through a small in-test recorder.

use conclave_etcd::Options;
use conclave_etcd::pb::etcdserverpb::PutRequest;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::gossip::cas_txn;
use crate::kv::{b, get, put};
use crate::support::{Builder, gossip_like};

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// Keeps every counter and histogram by `name{label=value,...}` (labels sorted).
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> =
        key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(render(key)).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(render(key)).or_default().clone())
    }
}

fn recorder() -> &'static Arc<TestRecorder> {
    static RECORDER: OnceLock<Arc<TestRecorder>> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Arc::new(TestRecorder::default());
        metrics::set_global_recorder(recorder.clone()).expect("no other recorder in this binary");
        recorder
    })
}

fn counter(series: &str) -> u64 {
    recorder().counters.lock().unwrap().get(series).map_or(0, |c| c.load(Ordering::Relaxed))
}

fn samples(series: &str) -> usize {
    recorder().histograms.lock().unwrap().get(series).map_or(0, |h| h.0.lock().unwrap().len())
}

/// Metrics are recorded as the response leaves; give the server a moment.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{what} never held; recorded: {:?}",
        recorder().counters.lock().unwrap().keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn requests_are_counted_per_method_and_code() {
    recorder();
    let server = Builder { protocol: "metered", ..Builder::default() }.start().await;
    let mut kv = server.kv().await;
    kv.put(put("k", "v")).await.unwrap();
    kv.put(put("k", "v")).await.unwrap();
    kv.put(PutRequest { key: b(""), ..Default::default() }).await.unwrap_err();
    kv.range(get("k")).await.unwrap();

    let series = |method: &str, code: &str| {
        format!(
            "grpc_server_handled_total{{grpc_code={code},grpc_method={method},grpc_service=etcdserverpb.KV,grpc_type=unary,protocol=metered}}"
        )
    };
    eventually("two OK puts", || counter(&series("Put", "OK")) == 2).await;
    eventually("one refused put", || counter(&series("Put", "InvalidArgument")) == 1).await;
    eventually("one range", || counter(&series("Range", "OK")) == 1).await;
    let latency = "grpc_server_handling_seconds{grpc_method=Put,grpc_service=etcdserverpb.KV,grpc_type=unary,protocol=metered}";
    eventually("put latencies", || samples(latency) == 3).await;
}

#[tokio::test]
async fn downgraded_requests_are_counted() {
    recorder();
    let server = Builder {
        protocol: "gossip-metered",
        guarantees: gossip_like(),
        options: Options { downgrade_unsupported: true, ..Options::default() },
        ..Builder::default()
    }
    .start()
    .await;
    let mut kv = server.kv().await;
    kv.put(put("k", "v")).await.unwrap();
    kv.range(get("k")).await.unwrap();
    kv.txn(cas_txn()).await.unwrap();
    assert_eq!(counter("conclave_reads_downgraded_total{protocol=gossip-metered}"), 1);
    assert_eq!(counter("conclave_txn_local_total{protocol=gossip-metered}"), 1);
}
