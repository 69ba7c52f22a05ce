//! `max_connections` (10,000 by default): the client connections served at once. A connection
//! accepted past it gets an HTTP/2 GOAWAY with ENHANCE_YOUR_CALM and "etcdserver: too many
//! connections" and is closed, which tonic reports as RESOURCE_EXHAUSTED and grpc-go (etcdctl,
//! clientv3) as UNAVAILABLE; the connections already open are served on, and once one closes a
//! new one is taken again.

use crate::support::{TestServer, get, put, still_serving};
use conclave_etcd::Limits;
use conclave_etcd::connections::TOO_MANY_CONNECTIONS;
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A client on its own TCP connection.
async fn connect(server: &TestServer) -> KvClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect_lazy();
    KvClient::new(channel)
}

/// Puts through a fresh connection until one is served: the server notices a closed
/// connection (and frees its place) a moment after the client closes it.
async fn until_a_connection_is_served(server: &TestServer) -> KvClient<Channel> {
    for _ in 0..300 {
        let mut client = connect(server).await;
        if client.put(put("again", "yes")).await.is_ok() {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no connection was served within 30 s of one closing");
}

#[tokio::test]
async fn at_the_limit_and_one_past_and_back() {
    assert_eq!(Limits::default().max_connections, 10_000);
    let limit = 2;
    let server = TestServer::start(Limits { max_connections: limit, ..Limits::default() }).await;
    let mut open = Vec::new();
    for i in 0..limit {
        let mut client = connect(&server).await;
        client.put(put(&format!("c{i}"), "v")).await.expect("connections up to the limit");
        open.push(client);
    }
    // One past: refused, every time, while the others stay open.
    for _ in 0..3 {
        let mut refused = connect(&server).await;
        let err = refused.range(get("c0")).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // The GOAWAY's text reaches the client (tonic keeps it in the error's source).
        assert!(format!("{err:?}").contains(TOO_MANY_CONNECTIONS), "{err:?}");
    }
    // The open connections are served on.
    for client in &mut open {
        still_serving(client).await;
    }
    // Closing one makes room for one.
    drop(open.pop());
    let mut again = until_a_connection_is_served(&server).await;
    still_serving(&mut again).await;
    let err = connect(&server).await.range(get("c0")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "full again: {err:?}");
    still_serving(&mut open[0]).await;
    server.stop().await;
}
