//! Assembling the five services into one gRPC server.
//!
//! [`services`] gives the routes, each service wrapped in request metrics and with the gRPC
//! decoding limit etcd uses (`max_request_bytes` plus 512 KiB), for a caller that runs its own
//! tonic server; such a caller also runs [`LeaseExpiry`] and [`AutoCompactor`] and calls
//! [`EtcdContext::shutdown_streams`] when it stops. [`serve`] does all of that on a listener, and
//! [`serve_with_tls`] the same over TLS.

use std::future::Future;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
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

/// The KV, Watch, Lease, Cluster, Auth and Maintenance services over `ctx`.
pub fn services(ctx: EtcdContext) -> Routes {
    let limit = ctx.limits.max_decoding_message_bytes();
    let protocol = ctx.protocol;
    let mut routes = Routes::builder();
    routes
        .add_service(Metered::new(
            KvServer::new(KvService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ))
        .add_service(Metered::new(
            WatchServer::new(WatchService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ))
        .add_service(Metered::new(
            LeaseServer::new(LeaseService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ))
        .add_service(Metered::new(
            ClusterServer::new(ClusterService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ))
        .add_service(Metered::new(
            AuthServer::new(AuthService::new(ctx.clone())).max_decoding_message_size(limit),
            protocol,
        ))
        .add_service(Metered::new(
            MaintenanceServer::new(MaintenanceService::new(ctx)).max_decoding_message_size(limit),
            protocol,
        ));
    routes.routes()
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
    let routes = services(ctx.clone());
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
    let result = builder.add_routes(routes).serve_with_incoming_shutdown(incoming, signal).await;
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
