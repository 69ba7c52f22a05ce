//! A running etcd API server over [`conclave_fuzz::fake::FakeConsensus`], for the limit
//! tests: the real services and the real gRPC stack on 127.0.0.1, no replication.

use bytes::Bytes;
use conclave_etcd::Limits;
use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::lease_client::LeaseClient;
use conclave_etcd::pb::etcdserverpb::watch_client::WatchClient;
use conclave_etcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Clients may send and receive messages this large, so that only the server's limits apply.
pub const CLIENT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(limits: Limits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = conclave_fuzz::fake::etcd_context(limits, &format!("http://{addr}")).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = ctx.clone();
        let task = tokio::spawn(async move {
            conclave_etcd::serve(serving, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self { addr, stop: Some(stop), task: Some(task) }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await)
            .max_encoding_message_size(CLIENT_MESSAGE_BYTES)
            .max_decoding_message_size(CLIENT_MESSAGE_BYTES)
    }

    pub async fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel().await)
    }

    pub async fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel().await)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("the server stops within 10 s")
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: b(key), value: b(value), ..Default::default() }
}

pub fn get(key: &str) -> RangeRequest {
    RangeRequest { key: b(key), ..Default::default() }
}

/// The server still serves: a write lands and reads back.
pub async fn still_serving(kv: &mut KvClient<Channel>) {
    let key = "still-serving";
    let revision = kv
        .put(put(key, "yes"))
        .await
        .expect("a small put after the refusal")
        .into_inner()
        .header
        .unwrap()
        .revision;
    let got = kv.range(get(key)).await.expect("a read after the refusal").into_inner();
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.header.unwrap().revision, revision);
}
