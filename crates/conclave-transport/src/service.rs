//! The receiving side: the `Peer` gRPC service.

use crate::TransportConfig;
use crate::pb::peer_server::{Peer, PeerServer};
use crate::pb::{Ack, Batch, Ping, Pong};
use conclave_core::NodeId;
use conclave_node::Inbound;
use std::collections::BTreeSet;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

/// Accepts peer streams and hands their payloads to the node's inbox.
#[derive(Debug, Clone)]
pub struct PeerService {
    me: NodeId,
    members: BTreeSet<NodeId>,
    inbox: mpsc::Sender<Inbound>,
    stopping: watch::Receiver<bool>,
}

impl PeerService {
    /// `members` are the node ids allowed to send; anything else is refused.
    pub fn new(me: NodeId, members: BTreeSet<NodeId>, inbox: mpsc::Sender<Inbound>) -> Self {
        let (_, stopping) = watch::channel(false);
        Self { me, members, inbox, stopping }
    }

    /// Ends every open stream once `stopping` turns true. Peer streams live as long as the
    /// connection, so a graceful server shutdown would otherwise wait for them forever.
    pub fn with_shutdown(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = stopping;
        self
    }

    /// The tonic service, with the decode limit from `config`.
    pub fn into_server(self, config: &TransportConfig) -> PeerServer<Self> {
        PeerServer::new(self)
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes)
    }

    fn check(&self, batch: &Batch) -> Result<NodeId, Status> {
        if batch.to != self.me.0 {
            return Err(Status::failed_precondition(format!(
                "batch addressed to node {} reached node {}",
                batch.to, self.me
            )));
        }
        let from = NodeId(batch.from);
        if !self.members.contains(&from) || from == self.me {
            return Err(Status::permission_denied(format!(
                "node {from} is not a peer of node {}",
                self.me
            )));
        }
        Ok(from)
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(&self, request: Request<Streaming<Batch>>) -> Result<Response<Ack>, Status> {
        let mut stream = request.into_inner();
        let mut stopping = self.stopping.clone();
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch?,
                _ = stopping.wait_for(|stop| *stop) => {
                    return Err(Status::unavailable("node is shutting down"));
                }
            };
            let Some(batch) = batch else { break };
            let from = self.check(&batch)?;
            for payload in batch.payloads {
                if self.inbox.send(Inbound { from, payload }).await.is_err() {
                    return Err(Status::unavailable("node is shutting down"));
                }
            }
        }
        Ok(Response::new(Ack {}))
    }

    async fn round_trip(&self, request: Request<Ping>) -> Result<Response<Pong>, Status> {
        let from = NodeId(request.get_ref().from);
        if !self.members.contains(&from) {
            return Err(Status::permission_denied(format!(
                "node {from} is not a peer of node {}",
                self.me
            )));
        }
        Ok(Response::new(Pong {}))
    }
}
