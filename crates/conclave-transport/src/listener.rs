//! The receiving side: accepts peer links and hands their payloads to the node's inbox.
//!
//! Every link opens with a hello naming its sender and its addressee. The listener refuses, with
//! a reason the dialer logs, a link addressed to another node, one from a node that is not a
//! member (or from itself), and — with TLS — one whose client certificate does not name the
//! node the hello claims: a member holding a valid certificate cannot speak as another member.
//! The TLS handshake has already checked that the certificate comes from the peer CA. A hello
//! of another wire format version is refused with a reason naming both versions.
//!
//! Each link reassembles fragmented payloads (see [`Assembler`]); a link that ends in the middle
//! of one delivers none of it, and one announcing more than `max_assembled_bytes` is cut off.

use crate::assembly::Assembler;
use crate::frame::{FrameReader, Hello, Kind, WireError, put_frame};
use crate::tls::{PeerIdentityError, certificate_names_node};
use crate::{PEER_IDENTITY_REFUSED_TOTAL, PeerTls, TransportConfig};
use bytes::BytesMut;
use conclave_core::NodeId;
use conclave_node::Inbound;
use rustls_pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long a new connection may take to finish its TLS handshake and send its hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts peer links for one node.
#[derive(Debug, Clone)]
pub struct PeerListener {
    me: NodeId,
    members: BTreeSet<NodeId>,
    inbox: mpsc::Sender<Inbound>,
    tls: Option<PeerTls>,
    /// With TLS: the metrics label of refusals for a certificate that does not name the sender.
    protocol: &'static str,
    max_frame_bytes: usize,
    max_assembled_bytes: usize,
}

impl PeerListener {
    /// `members` are the node ids allowed to send; anything else is refused. With
    /// `config.tls`, links must be mutual TLS and the client certificate must name the sender
    /// (`node-<id>.conclave`); `protocol` labels the refusal counter.
    pub fn new(
        me: NodeId,
        members: BTreeSet<NodeId>,
        inbox: mpsc::Sender<Inbound>,
        config: &TransportConfig,
        protocol: &'static str,
    ) -> Self {
        Self {
            me,
            members,
            inbox,
            tls: config.tls.clone(),
            protocol,
            max_frame_bytes: config.max_message_bytes,
            max_assembled_bytes: config.max_assembled_bytes,
        }
    }

    /// Serves `listener` until `stopping` turns true, then closes every link.
    pub async fn serve(self, listener: TcpListener, stopping: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut links = JoinSet::new();
        let stopped = until_true(stopping);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote)) => {
                        let this = this.clone();
                        links.spawn(async move {
                            if let Err(error) = this.link(stream).await {
                                report_link_end(remote, &error);
                            }
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        tracing::warn!(%error, "cannot accept a peer connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = links.join_next(), if !links.is_empty() => {}
            }
        }
        links.shutdown().await;
    }

    async fn link(&self, tcp: TcpStream) -> Result<(), WireError> {
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.speak(tcp, None).await,
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
                    .map_err(|error| {
                        tracing::debug!(%error, "peer TLS handshake failed");
                        error
                    })?;
                let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first().cloned());
                self.speak(stream, Some(leaf)).await
            }
        }
    }

    /// Reads the hello, accepts or refuses, then hands every message to the inbox and answers
    /// pings. `certificate` is `Some` on a TLS link: the client's leaf certificate, if any.
    async fn speak<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        certificate: Option<Option<CertificateDer<'static>>>,
    ) -> Result<(), WireError> {
        let (read, mut writer) = tokio::io::split(stream);
        let mut reader = FrameReader::new(read, self.max_frame_bytes);
        let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.hello())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
        let mut out = BytesMut::with_capacity(256);
        let hello = match hello {
            Ok(hello) => hello,
            Err(error @ WireError::Version(_)) => {
                // A peer of another release: tell it why, rather than close without a word (it
                // warns about the refusal, once).
                tracing::debug!(me = %self.me, %error, "peer refused: another wire format version");
                put_frame(&mut out, Kind::Refuse, error.to_string().as_bytes());
                writer.write_all(&out).await?;
                writer.shutdown().await?;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let from = match self.check(hello, certificate) {
            Ok(from) => from,
            Err(reason) => {
                put_frame(&mut out, Kind::Refuse, reason.as_bytes());
                writer.write_all(&out).await?;
                writer.shutdown().await?;
                return Ok(());
            }
        };
        put_frame(&mut out, Kind::Accept, &[]);
        writer.write_all(&out).await?;
        writer.flush().await?;
        let mut assembler = Assembler::new(from, self.max_assembled_bytes);
        while let Some((kind, body)) = reader.next().await? {
            match kind {
                Kind::Message | Kind::FirstFragment | Kind::Fragment => {
                    let Some(payload) = assembler.push(kind, body)? else { continue };
                    // Waiting here, when the inbox is full, lets back-pressure reach the
                    // sender's TCP window.
                    if self.inbox.send(Inbound { from, payload }).await.is_err() {
                        return Ok(());
                    }
                }
                Kind::Ping => {
                    out.clear();
                    put_frame(&mut out, Kind::Pong, &body);
                    writer.write_all(&out).await?;
                    writer.flush().await?;
                }
                other => return Err(WireError::UnknownKind(other as u8)),
            }
        }
        assembler.finish()
    }

    /// The sender a hello may speak for, or the reason it is refused.
    fn check(
        &self,
        hello: Hello,
        certificate: Option<Option<CertificateDer<'static>>>,
    ) -> Result<NodeId, String> {
        if hello.to != self.me {
            return Err(format!("a link for node {} reached node {}", hello.to, self.me));
        }
        let from = hello.from;
        if !self.members.contains(&from) || from == self.me {
            return Err(format!("node {from} is not a peer of node {}", self.me));
        }
        let Some(certificate) = certificate else { return Ok(from) };
        let verdict = match &certificate {
            None => Err(PeerIdentityError::NoCertificate),
            Some(cert) => certificate_names_node(cert, from),
        };
        verdict.map(|()| from).map_err(|error| {
            let reason = match error {
                PeerIdentityError::NoCertificate => "no_certificate",
                PeerIdentityError::Unreadable(_) => "unreadable",
                PeerIdentityError::WrongNode { .. } => "wrong_node",
            };
            metrics::counter!(PEER_IDENTITY_REFUSED_TOTAL, "protocol" => self.protocol, "reason" => reason)
                .increment(1);
            tracing::warn!(me = %self.me, claimed = %from, %error, "peer refused: its certificate does not prove its node id");
            format!("node {from} refused by node {}: {error}", self.me)
        })
    }
}

/// Logs why a link ended: a peer with this node's configuration never passes a limit, so one
/// that did is misconfigured or misbehaving, worth an operator's look; the rest is routine.
fn report_link_end(remote: std::net::SocketAddr, error: &WireError) {
    match error {
        WireError::TooLarge { .. } | WireError::PayloadTooLarge { .. } => {
            tracing::warn!(%remote, %error, "peer link cut off");
        }
        _ => tracing::debug!(%remote, %error, "peer link ended"),
    }
}

/// Resolves once `flag` turns true (or its sender is gone).
async fn until_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}
