//! Assembling the six services into one gRPC server.
//!
//! [`services`] gives them as one service, each wrapped in request metrics and with the gRPC
//! decoding limit etcd uses (`max_request_bytes` plus 512 KiB), for a caller that runs its own
//! tonic server; such a caller also runs [`LeaseExpiry`] and [`AutoCompactor`] and calls
//! [`EtcdContext::shutdown_streams`] when it stops. [`serve`] does all of that on a listener, and
//! [`serve_with_tls`] the same over TLS.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::transport::{Server, ServerTlsConfig};

use crate::auth::AuthService;
use crate::cluster::ClusterService;
use crate::compactor::AutoCompactor;
use crate::connections::LimitedIncoming;
use crate::context::EtcdContext;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::lease_keeper::LeaseExpiry;
use crate::maintenance::MaintenanceService;
use crate::metrics::Metered;
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::watch::WatchService;

/// The KV, Watch, Lease, Cluster, Auth and Maintenance services over one context, each in
/// request metrics and with the gRPC decoding limit etcd uses: one `tower` service that
/// hands each call to the service its path names.
///
/// It takes the place of tonic's `Routes`, which route through an `axum` router: a path
/// pattern match, the request's body boxed into axum's type and back, the response converted
/// twice, per call. Here a call costs a comparison of the service name and one boxed future
/// (the metrics' own).
#[derive(Clone, Debug)]
pub struct Services {
    kv: Metered<KvServer<KvService>>,
    watch: Metered<WatchServer<WatchService>>,
    lease: Metered<LeaseServer<LeaseService>>,
    cluster: Metered<ClusterServer<ClusterService>>,
    auth: Metered<AuthServer<AuthService>>,
    maintenance: Metered<MaintenanceServer<MaintenanceService>>,
}

/// The services over `ctx`, for [`serve_with_tls`] or a caller that runs its own tonic server
/// (`Server::serve_with_incoming_shutdown`; see the module documentation for what it also runs).
pub fn services(ctx: EtcdContext) -> Services {
    let limit = ctx.limits.max_decoding_message_bytes();
    let protocol = ctx.protocol;
    Services {
        kv: Metered::new(
            KvServer::new(KvService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ),
        watch: Metered::new(
            WatchServer::new(WatchService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ),
        lease: Metered::new(
            LeaseServer::new(LeaseService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ),
        cluster: Metered::new(
            ClusterServer::new(ClusterService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ),
        auth: Metered::new(
            AuthServer::new(AuthService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ),
        maintenance: Metered::new(
            MaintenanceServer::new(MaintenanceService::new(ctx)).max_decoding_message_size(limit),
            protocol,
        ),
    }
}

/// The service part of a gRPC path, `/<service>/<method>`.
fn service_of(path: &str) -> Option<&str> {
    path.strip_prefix('/')?.split_once('/').map(|(service, _)| service)
}

impl Service<http::Request<Body>> for Services {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    /// Always ready: the generated services are, and so are the metrics around them (their
    /// `poll_ready` returns `Ready` without looking at anything).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        fn is<S: NamedService>(_: &S, name: &str) -> bool {
            S::NAME == name
        }
        let name = service_of(req.uri().path()).unwrap_or_default();
        if is(&self.kv, name) {
            self.kv.call(req)
        } else if is(&self.watch, name) {
            self.watch.call(req)
        } else if is(&self.lease, name) {
            self.lease.call(req)
        } else if is(&self.maintenance, name) {
            self.maintenance.call(req)
        } else if is(&self.auth, name) {
            self.auth.call(req)
        } else if is(&self.cluster, name) {
            self.cluster.call(req)
        } else {
            let status = Status::unimplemented(format!("unknown service {name:?}"));
            let (parts, ()) = status.into_http::<()>().into_parts();
            Box::pin(std::future::ready(Ok(http::Response::from_parts(parts, Body::empty()))))
        }
    }
}

/// Serves the etcd API on `listener`, with lease expiry and the compactor beside it, until
/// `shutdown` completes. Then open watch and keep-alive streams end with UNAVAILABLE ("server
/// stopped", so clients move to another member), in-flight unary calls finish, and this
/// returns.
pub async fn serve(
    ctx: EtcdContext,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve_with_tls(ctx, listener, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (a server certificate, and a client CA when clients
/// must present certificates). The handshake happens per connection: a client that fails it is
/// dropped without reaching any service, and the others are served on.
pub async fn serve_with_tls(
    ctx: EtcdContext,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let expiry = tokio::spawn(LeaseExpiry::new(ctx.clone()).run(ctx.stopped()));
    let compactor = tokio::spawn(AutoCompactor::new(ctx.clone()).run(ctx.stopped()));
    let services = services(ctx.clone());
    let stopper = ctx.clone();
    let signal = async move {
        shutdown.await;
        stopper.shutdown_streams();
    };
    // HTTP/2 bounds the streams per connection; LimitedIncoming bounds the connections.
    let mut builder = Server::builder().max_concurrent_streams(ctx.limits.max_concurrent_streams);
    let mut incoming =
        LimitedIncoming::new(nodelay(listener), ctx.limits.max_connections, ctx.protocol);
    if tls.is_some() {
        incoming = incoming.without_goaway();
    }
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let result = builder.serve_with_incoming_shutdown(services, incoming, signal).await;
    ctx.shutdown_streams();
    // The expiry task ends on the same signal; a panic in it is not the caller's to handle.
    let _ = expiry.await;
    let _ = compactor.await;
    result
}

/// The connections `listener` accepts, with Nagle's algorithm off. Sockets accepted here do not
/// get `Server::tcp_nodelay` (tonic applies it only to listeners it binds itself), and without
/// TCP_NODELAY a response written in two segments waits for the client's delayed ACK: about
/// 40 ms per request on Linux.
pub fn nodelay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Unpin {
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a client connection");
            }
        })
    })
}
