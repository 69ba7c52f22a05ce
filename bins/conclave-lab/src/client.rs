//! A minimal etcd v3 client over the generated stubs, enough for readiness checks and workloads.

use conclave_etcd::pb::etcdserverpb::kv_client::KvClient;
use conclave_etcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Connects to one endpoint (`host:port`), with a short connect timeout and a 5 s request
/// timeout.
pub async fn connect(endpoint: &str) -> anyhow::Result<KvClient<Channel>> {
    connect_with_timeout(endpoint, Duration::from_secs(5)).await
}

/// Connects to one endpoint; every request on the client fails after `timeout`.
pub async fn connect_with_timeout(
    endpoint: &str,
    timeout: Duration,
) -> anyhow::Result<KvClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(KvClient::new(channel))
}

/// Puts `key = value` through `endpoint`.
pub async fn put(endpoint: &str, key: &str, value: &str) -> anyhow::Result<i64> {
    let mut client = connect(endpoint).await?;
    let response = client
        .put(PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(response.header.map(|h| h.revision).unwrap_or_default())
}

/// Reads `key` through `endpoint`, linearizably unless `serializable`.
pub async fn get(endpoint: &str, key: &str, serializable: bool) -> anyhow::Result<Option<Vec<u8>>> {
    let mut client = connect(endpoint).await?;
    let response = client
        .range(RangeRequest {
            key: key.as_bytes().to_vec().into(),
            serializable,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(response.kvs.into_iter().next().map(|kv| kv.value.to_vec()))
}
