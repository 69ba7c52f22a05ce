//! Assembling the five services into one gRPC server.
//!
//! [`services`] gives the routes, each service wrapped in request metrics and with the gRPC
//! decoding limit etcd uses (`max_request_bytes` plus 512 KiB), for a caller that runs its own
//! tonic server; such a caller also runs [`LeaseExpiry`] and calls
//! [`EtcdContext::shutdown_streams`] when it stops. [`serve`] does all of that on a listener.

use std::future::Future;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::cluster::ClusterService;
use crate::context::EtcdContext;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::lease_keeper::LeaseExpiry;
use crate::maintenance::MaintenanceService;
use crate::metrics::Metered;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::watch::WatchService;

/// The KV, Watch, Lease, Cluster and Maintenance services over `ctx`.
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
            MaintenanceServer::new(MaintenanceService::new(ctx)).max_decoding_message_size(limit),
            protocol,
        ));
    routes.routes()
}

/// Serves the etcd API on `listener`, with lease expiry running beside it, until `shutdown`
/// completes. Then open watch and keep-alive streams end with UNAVAILABLE ("server stopped",
/// so clients move to another member), in-flight unary calls finish, and this returns.
pub async fn serve(
    ctx: EtcdContext,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let expiry = tokio::spawn(LeaseExpiry::new(ctx.clone()).run(ctx.stopped()));
    let routes = services(ctx.clone());
    let stopper = ctx.clone();
    let signal = async move {
        shutdown.await;
        stopper.shutdown_streams();
    };
    let result = Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
        .await;
    ctx.shutdown_streams();
    // The expiry task ends on the same signal; a panic in it is not the caller's to handle.
    let _ = expiry.await;
    result
}
