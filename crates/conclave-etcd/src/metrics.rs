//! The API's metrics: gRPC request counts and latencies per method and code (the series
//! go-grpc-prometheus gives etcd, which dashboards already know), and the counters of requests
//! served with weaker guarantees than asked.
//!
//! [`Metered`] wraps each generated service. It reads the gRPC status from the response headers
//! (a "trailers-only" answer, which is how every failed unary call ends) or from the trailers at
//! the end of the body, so streams are recorded when they end, with their final code; a stream
//! the client dropped is recorded as `Canceled`. Every series carries the label `protocol`.
//! Histogram buckets are the exporter's to set; use `conclave_core::metrics::LATENCY_BUCKETS`.

use http_body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// `grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code, protocol}`.
pub const GRPC_SERVER_HANDLED_TOTAL: &str = "grpc_server_handled_total";
/// `grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type, protocol}`: from the
/// request's arrival to its final status (a whole stream, for streams).
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// `grpc_server_started_total{grpc_service, grpc_method, grpc_type, protocol}`.
pub const GRPC_SERVER_STARTED_TOTAL: &str = "grpc_server_started_total";
/// `conclave_reads_downgraded_total{protocol}`: linearizable reads served locally because the
/// protocol has none and `downgrade_unsupported` is on.
pub const READS_DOWNGRADED_TOTAL: &str = "conclave_reads_downgraded_total";
/// `conclave_txn_local_total{protocol}`: txns with compares applied without cluster-wide
/// atomicity because the protocol has none and `downgrade_unsupported` is on.
pub const TXN_LOCAL_TOTAL: &str = "conclave_txn_local_total";
/// `conclave_lease_expired_total{protocol}`: leases this member revoked because they ran out.
pub const LEASE_EXPIRED_TOTAL: &str = "conclave_lease_expired_total";
/// `conclave_kv_held_bytes{protocol}`: the history the store holds, as the space quota counts
/// it (keys and values of every revision since the last compaction, plus 64 bytes each).
pub const KV_HELD_BYTES: &str = "conclave_kv_held_bytes";
/// `conclave_quota_bytes{protocol}`: the space quota, `limits.quota_bytes`.
pub const QUOTA_BYTES: &str = "conclave_quota_bytes";
/// `conclave_auto_compactions_total{protocol}`: compactions of the key-value history this member
/// proposed under its `auto_compaction_*` settings.
pub const AUTO_COMPACTIONS_TOTAL: &str = "conclave_auto_compactions_total";

/// `conclave_limit_refused_total{protocol, limit}`: requests and connections refused by a
/// configured limit (`connections`, `leases`, `watchers`, `watchers_per_stream`, `quota`).
pub const LIMIT_REFUSED_TOTAL: &str = "conclave_limit_refused_total";
/// `conclave_client_connections{protocol}`: client connections open now.
pub const CLIENT_CONNECTIONS: &str = "conclave_client_connections";

/// Counts one refusal by `limit`.
pub(crate) fn limit_refused(protocol: &'static str, limit: &'static str) {
    metrics::counter!(LIMIT_REFUSED_TOTAL, "protocol" => protocol, "limit" => limit).increment(1);
}

/// Describes every series above to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        LIMIT_REFUSED_TOTAL,
        "Requests and connections refused because a configured limit was reached."
    );
    metrics::describe_gauge!(CLIENT_CONNECTIONS, "Client API connections open now.");
    metrics::describe_counter!(
        GRPC_SERVER_HANDLED_TOTAL,
        "Total number of RPCs completed on the server, regardless of success or failure."
    );
    metrics::describe_histogram!(
        GRPC_SERVER_HANDLING_SECONDS,
        metrics::Unit::Seconds,
        "Response latency of gRPC that had been application-level handled by the server."
    );
    metrics::describe_counter!(
        GRPC_SERVER_STARTED_TOTAL,
        "Total number of RPCs started on the server."
    );
    metrics::describe_counter!(
        READS_DOWNGRADED_TOTAL,
        "Linearizable reads served from the local replica because the protocol offers none."
    );
    metrics::describe_counter!(
        TXN_LOCAL_TOTAL,
        "Transactions with compares applied without cluster-wide atomic compare-and-swap."
    );
    metrics::describe_counter!(
        LEASE_EXPIRED_TOTAL,
        "Leases revoked by this member because their time to live ran out."
    );
    metrics::describe_gauge!(
        KV_HELD_BYTES,
        metrics::Unit::Bytes,
        "History the key-value store holds, as the space quota counts it."
    );
    metrics::describe_gauge!(
        QUOTA_BYTES,
        metrics::Unit::Bytes,
        "The space quota: writes that would take the held history past it are refused."
    );
    metrics::describe_counter!(
        AUTO_COMPACTIONS_TOTAL,
        "Compactions of the key-value history proposed by this member's automatic compactor."
    );
}

/// A generated gRPC service with request metrics around it.
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    protocol: &'static str,
    series: SeriesByMethod,
}

impl<S> Metered<S> {
    pub fn new(inner: S, protocol: &'static str) -> Self {
        Self { inner, protocol, series: SeriesByMethod::default() }
    }
}

/// Methods whose series a service keeps at hand; calls to further (unknown) method names are
/// still recorded, through the registry.
const CACHED_METHODS: usize = 64;

/// One service's methods' series, registered once and shared by their calls: a call then does
/// no registry lookup (which hashes every label and allocates the key) on the request path.
#[derive(Clone, Debug, Default)]
struct SeriesByMethod(Arc<Mutex<HashMap<String, Arc<MethodSeries>>>>);

impl SeriesByMethod {
    fn get(
        &self,
        service: &'static str,
        method: &str,
        protocol: &'static str,
    ) -> Arc<MethodSeries> {
        let mut cached = self.0.lock().expect("metrics lock poisoned");
        if let Some(series) = cached.get(method) {
            return series.clone();
        }
        let series = Arc::new(MethodSeries::new(service, method, protocol));
        if cached.len() < CACHED_METHODS {
            cached.insert(method.to_string(), series.clone());
        }
        series
    }
}

/// The series of one method.
#[derive(Debug)]
struct MethodSeries {
    service: &'static str,
    method: String,
    kind: &'static str,
    protocol: &'static str,
    started: metrics::Counter,
    handling: metrics::Histogram,
    /// `grpc_server_handled_total` by code, registered when a code first occurs.
    handled: Mutex<[Option<metrics::Counter>; 17]>,
}

impl MethodSeries {
    fn new(service: &'static str, method: &str, protocol: &'static str) -> Self {
        let kind = match method {
            "Watch" | "LeaseKeepAlive" => "bidi_stream",
            "Snapshot" => "server_stream",
            _ => "unary",
        };
        let started = metrics::counter!(GRPC_SERVER_STARTED_TOTAL,
            "grpc_service" => service, "grpc_method" => method.to_string(), "grpc_type" => kind,
            "protocol" => protocol);
        let handling = metrics::histogram!(GRPC_SERVER_HANDLING_SECONDS,
            "grpc_service" => service, "grpc_method" => method.to_string(), "grpc_type" => kind,
            "protocol" => protocol);
        let handled = Mutex::new(Default::default());
        Self { service, method: method.to_string(), kind, protocol, started, handling, handled }
    }

    fn handled(&self, code: Code) -> metrics::Counter {
        let mut handled = self.handled.lock().expect("metrics lock poisoned");
        let slot = (i32::from(code) as usize).min(handled.len() - 1);
        handled[slot]
            .get_or_insert_with(|| {
                metrics::counter!(GRPC_SERVER_HANDLED_TOTAL,
                    "grpc_service" => self.service, "grpc_method" => self.method.clone(),
                    "grpc_type" => self.kind, "grpc_code" => code_name(code),
                    "protocol" => self.protocol)
            })
            .clone()
    }
}

impl<S: NamedService> NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Metered<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default();
        let call = Call::start(self.series.get(S::NAME, method, self.protocol));
        let response = self.inner.call(req);
        Box::pin(async move {
            let (mut parts, body) = response.await?.into_parts();
            if let Some(status) = Status::from_header_map(&parts.headers) {
                let status = resource_exhausted_if_too_large(status);
                if status.code() == Code::ResourceExhausted {
                    parts.headers.remove(Status::GRPC_STATUS);
                    parts.headers.remove("grpc-message");
                    // Headers built from a status always encode; if not, the original stays.
                    let _ = status.add_header(&mut parts.headers);
                }
                call.finish(status.code());
                return Ok(http::Response::from_parts(parts, body));
            }
            let body = MeteredBody { inner: body, call: Some(call) };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE; grpc-go, and so etcd,
/// answer RESOURCE_EXHAUSTED, which is what etcd clients expect.
fn resource_exhausted_if_too_large(status: Status) -> Status {
    if status.code() == Code::OutOfRange
        && status.message().starts_with("Error, decoded message length too large")
    {
        return Status::resource_exhausted(format!(
            "grpc: received message larger than max ({})",
            status.message().trim_start_matches("Error, decoded message length too large: ")
        ));
    }
    status
}

/// One RPC in flight: recorded exactly once, when its status is known or when it is dropped.
struct Call {
    series: Arc<MethodSeries>,
    started: Instant,
    finished: bool,
}

impl Call {
    fn start(series: Arc<MethodSeries>) -> Self {
        series.started.increment(1);
        Self { series, started: Instant::now(), finished: false }
    }

    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.series.handled(code).increment(1);
        self.series.handling.record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // The body went away before its trailers: the client cancelled or the connection broke.
        self.record(Code::Cancelled);
    }
}

/// A response body that records its call when the trailers carrying the status go by.
struct MeteredBody {
    inner: Body,
    call: Option<Call>,
}

impl HttpBody for MeteredBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(Status::from_header_map)
                    && let Some(call) = self.call.take()
                {
                    call.finish(status.code());
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(call) = self.call.take() {
                    call.finish(status.code());
                }
            }
            Poll::Ready(None) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The code names go-grpc-prometheus (and so etcd's dashboards) use.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_becomes_resource_exhausted() {
        let tonic_says = Status::out_of_range(
            "Error, decoded message length too large: found 3000000 bytes, the limit is: 2097152 bytes",
        );
        let s = resource_exhausted_if_too_large(tonic_says);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().starts_with("grpc: received message larger than max (found 3000000"));
        let other = resource_exhausted_if_too_large(Status::out_of_range("etcdserver: mvcc"));
        assert_eq!(other.code(), Code::OutOfRange);
    }
}
