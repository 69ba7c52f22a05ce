//! The receiving side: the `Peer` gRPC service.
//!
//! With TLS on, the handshake has already checked that the peer's certificate comes from the
//! peer CA; this service then checks that it names the node each batch (and ping) claims to come
//! from, and refuses the stream otherwise: a member holding a valid certificate cannot speak as
//! another member.

use crate::pb::peer_server::{Peer, PeerServer};
use crate::pb::{Ack, Batch, Ping, Pong};
use crate::tls::{PeerIdentityError, certificate_names_node};
use crate::{PEER_IDENTITY_REFUSED_TOTAL, TransportConfig};
use conclave_core::NodeId;
use conclave_node::Inbound;
use rustls_pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

/// Accepts peer streams and hands their payloads to the node's inbox.
#[derive(Debug, Clone)]
pub struct PeerService {
    me: NodeId,
    members: BTreeSet<NodeId>,
    inbox: mpsc::Sender<Inbound>,
    stopping: watch::Receiver<bool>,
    /// Set when the server runs mutual TLS: the metrics label, and the demand that every
    /// sender's certificate names it.
    identity_check: Option<&'static str>,
}

impl PeerService {
    /// `members` are the node ids allowed to send; anything else is refused.
    pub fn new(me: NodeId, members: BTreeSet<NodeId>, inbox: mpsc::Sender<Inbound>) -> Self {
        let (_, stopping) = watch::channel(false);
        Self { me, members, inbox, stopping, identity_check: None }
    }

    /// Requires every stream and ping to come with a TLS client certificate that names the
    /// sender's node id (`node-<id>.conclave`). For a server that runs with
    /// [`PeerTls::server_config`](crate::PeerTls::server_config); `protocol` labels the refusal
    /// counter.
    pub fn require_node_certificates(mut self, protocol: &'static str) -> Self {
        self.identity_check = Some(protocol);
        self
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

    /// With TLS on, checks that the peer's certificate names `from`; logs and counts a refusal.
    fn check_identity(
        &self,
        certs: Option<&Arc<Vec<CertificateDer<'static>>>>,
        from: NodeId,
    ) -> Result<(), Status> {
        let Some(protocol) = self.identity_check else { return Ok(()) };
        let verdict = match certs.and_then(|certs| certs.first()) {
            None => Err(PeerIdentityError::NoCertificate),
            Some(cert) => certificate_names_node(cert, from),
        };
        verdict.map_err(|error| {
            let reason = match error {
                PeerIdentityError::NoCertificate => "no_certificate",
                PeerIdentityError::Unreadable(_) => "unreadable",
                PeerIdentityError::WrongNode { .. } => "wrong_node",
            };
            metrics::counter!(PEER_IDENTITY_REFUSED_TOTAL, "protocol" => protocol, "reason" => reason)
                .increment(1);
            tracing::warn!(me = %self.me, claimed = %from, %error, "peer refused: its certificate does not prove its node id");
            Status::permission_denied(format!("node {from} refused by node {}: {error}", self.me))
        })
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(&self, request: Request<Streaming<Batch>>) -> Result<Response<Ack>, Status> {
        let certs = request.peer_certs();
        let mut stream = request.into_inner();
        let mut stopping = self.stopping.clone();
        // The sender whose certificate was checked; a stream speaks for one node only.
        let mut proven: Option<NodeId> = None;
        loop {
            let batch = tokio::select! {
                batch = stream.message() => batch?,
                _ = stopping.wait_for(|stop| *stop) => {
                    return Err(Status::unavailable("node is shutting down"));
                }
            };
            let Some(batch) = batch else { break };
            let from = self.check(&batch)?;
            if proven != Some(from) {
                self.check_identity(certs.as_ref(), from)?;
                proven = Some(from);
            }
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
        self.check_identity(request.peer_certs().as_ref(), from)?;
        Ok(Response::new(Pong {}))
    }
}
