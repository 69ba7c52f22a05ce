//! Forwarding lease renewals to the lease holder, as etcd followers forward `LeaseRenew` to
//! their leader.
//!
//! Only the holder counts leases down, so a keep-alive (or a time-to-live query, which reports
//! the countdown) that arrives at another member is sent on to the holder's client URL over the
//! same etcd API. The forwarded request carries [`FORWARDED`] metadata and is always answered
//! where it lands, so two members that disagree about the holder cannot bounce it between them.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::REQUEST_TIMED_OUT;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// Metadata key marking a request one member forwarded to another.
pub const FORWARDED: &str = "conclave-forwarded";

/// How long a forwarded request may take before the client is told to retry.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to other members' client URLs, opened lazily and kept.
#[derive(Debug, Default)]
pub(crate) struct LeaseForwarder {
    clients: Mutex<BTreeMap<String, LeaseClient<Channel>>>,
}

impl LeaseForwarder {
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, url: &str) -> Result<LeaseClient<Channel>, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(url) {
            return Ok(client.clone());
        }
        let uri = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| Status::internal(format!("etcdserver: bad client url {url}: {e}")))?
            .connect_timeout(Duration::from_secs(1));
        let client = LeaseClient::new(endpoint.connect_lazy());
        clients.insert(url.to_string(), client.clone());
        Ok(client)
    }

    pub async fn keep_alive(&self, url: &str, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        let mut client = self.client(url)?;
        let call = async move {
            let request = marked(tokio_stream::once(LeaseKeepAliveRequest { id }));
            let mut responses = client.lease_keep_alive(request).await?.into_inner();
            responses
                .message()
                .await?
                .ok_or_else(|| Status::unavailable("etcdserver: lease holder closed the stream"))
        };
        with_timeout(call).await
    }

    pub async fn time_to_live(
        &self,
        url: &str,
        request: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let mut client = self.client(url)?;
        let call =
            async move { Ok(client.lease_time_to_live(marked(request)).await?.into_inner()) };
        with_timeout(call).await
    }
}

fn marked<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}

async fn with_timeout<T>(call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(Status::unavailable(REQUEST_TIMED_OUT)),
    }
}
