//! Dialing a peer: TCP (and TLS), the hello, and the listener's answer.

use crate::frame::{
    FrameReader, Hello, Kind, WireError, fragment_bytes, put_frame, put_frame_parts,
};
use crate::tls::server_name;
use crate::{PeerTls, TransportConfig};
use bytes::BytesMut;
use conclave_core::NodeId;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// A byte stream to a peer, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Why a link to a peer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to {address}: {error}")]
    Connect { address: String, error: std::io::Error },
    #[error("TLS handshake with {address} failed: {error}")]
    Tls { address: String, error: std::io::Error },
    #[error("node {peer} at {address} refused the link: {reason}")]
    Refused { peer: NodeId, address: String, reason: String },
    #[error("{address} did not answer as a Conclave peer: {error}")]
    Protocol { address: String, error: WireError },
    #[error("{address} did not answer within {0:?}", timeout)]
    Timeout { address: String, timeout: Duration },
}

impl DialError {
    /// Whether this is a refusal worth a warning (a certificate or identity problem, a listener
    /// that is not a peer) rather than a peer that is simply down.
    pub fn is_misconfiguration(&self) -> bool {
        match self {
            DialError::Connect { .. } | DialError::Timeout { .. } => false,
            DialError::Tls { error, .. } => error.to_string().contains("certificate"),
            DialError::Refused { .. } | DialError::Protocol { .. } => true,
        }
    }
}

/// An open, accepted link to one peer.
pub struct Connection {
    pub(crate) reader: FrameReader<ReadHalf<Box<dyn Stream>>>,
    pub(crate) writer: Writer,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// Opens a link from `me` to `peer` at `address` and waits for the listener to accept it.
///
/// With `config.tls`, the server must present a certificate from the peer CA naming
/// `node-<peer>.conclave`, and this side presents its own.
pub async fn dial(
    me: NodeId,
    peer: NodeId,
    address: &str,
    config: &TransportConfig,
) -> Result<Connection, DialError> {
    let timeout = Duration::from_millis(config.connect_timeout_ms);
    let within = |future| async move {
        tokio::time::timeout(timeout, future)
            .await
            .map_err(|_| DialError::Timeout { address: address.to_string(), timeout })?
    };
    within(open(me, peer, address, config.tls.as_ref(), config.max_message_bytes)).await
}

async fn open(
    me: NodeId,
    peer: NodeId,
    address: &str,
    tls: Option<&PeerTls>,
    limit: usize,
) -> Result<Connection, DialError> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|error| DialError::Connect { address: address.to_string(), error })?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.client_config());
            let stream = connector
                .connect(server_name(peer), tcp)
                .await
                .map_err(|error| DialError::Tls { address: address.to_string(), error })?;
            Box::new(stream)
        }
    };
    let (read, mut writer) = tokio::io::split(stream);
    let hello = Hello { from: me, to: peer }.encode();
    let protocol = |error: WireError| DialError::Protocol { address: address.to_string(), error };
    writer.write_all(&hello).await.map_err(|e| protocol(e.into()))?;
    writer.flush().await.map_err(|e| protocol(e.into()))?;
    let mut reader = FrameReader::new(read, limit);
    match reader.next().await {
        Ok(Some((Kind::Accept, _))) => {}
        Ok(Some((Kind::Refuse, reason))) => {
            return Err(DialError::Refused {
                peer,
                address: address.to_string(),
                reason: String::from_utf8_lossy(&reason).into_owned(),
            });
        }
        Ok(Some((kind, _))) => return Err(protocol(WireError::UnknownKind(kind as u8))),
        Ok(None) => return Err(protocol(WireError::Truncated)),
        Err(WireError::Io(error)) if tls.is_some() => {
            // A TLS server that refuses our certificate says so in an alert, which surfaces
            // here, on the first read after the handshake.
            return Err(DialError::Tls { address: address.to_string(), error });
        }
        Err(error) => return Err(protocol(error)),
    }
    Ok(Connection {
        reader,
        writer: Writer {
            inner: writer,
            out: BytesMut::with_capacity(64 * 1024),
            fragment_bytes: fragment_bytes(limit),
        },
    })
}

impl Connection {
    /// Sends one payload now, in fragments if it is large (tests and tools; the transport
    /// batches).
    pub async fn send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if self.writer.needs_fragments(payload) {
            return self.writer.write_fragmented(payload).await;
        }
        self.writer.push(payload);
        self.writer.flush().await
    }

    /// Sends a ping and waits for its pong; `Err` if the link ends first.
    pub async fn ping(&mut self) -> Result<(), WireError> {
        let token = 0x5eed;
        self.writer.push_ping(token);
        self.writer.flush().await?;
        loop {
            match self.reader.next().await? {
                Some((Kind::Pong, body)) if body.as_ref() == token.to_be_bytes() => return Ok(()),
                Some(_) => continue,
                None => return Err(WireError::Truncated),
            }
        }
    }
}

/// The writing side of a link, with its batch buffer.
pub(crate) struct Writer {
    inner: WriteHalf<Box<dyn Stream>>,
    out: BytesMut,
    /// The most payload bytes in one frame: larger payloads go in fragments.
    fragment_bytes: usize,
}

impl Writer {
    /// Whether `payload` is too large for one frame and must go through `write_fragmented`.
    pub fn needs_fragments(&self, payload: &[u8]) -> bool {
        payload.len() > self.fragment_bytes
    }

    /// Queues one protocol payload that fits in one frame (see `needs_fragments`); `flush`
    /// sends what was queued, in one write.
    pub fn push(&mut self, payload: &[u8]) {
        debug_assert!(!self.needs_fragments(payload), "a large payload goes in fragments");
        put_frame(&mut self.out, Kind::Message, payload);
    }

    /// Sends what was queued, then `payload` as a first fragment announcing its length and as
    /// many fragments as it takes, one write each: neither side ever buffers more than a
    /// fragment of it on top of the payload itself. Nothing else is written to the connection
    /// meanwhile, which is what lets the receiver keep one partial payload per connection.
    pub async fn write_fragmented(&mut self, payload: &[u8]) -> std::io::Result<()> {
        debug_assert!(self.needs_fragments(payload), "a small payload goes as one message");
        let (first, rest) = payload.split_at(self.fragment_bytes.min(payload.len()));
        let total = (payload.len() as u64).to_be_bytes();
        put_frame_parts(&mut self.out, Kind::FirstFragment, &total, first);
        self.flush().await?;
        for fragment in rest.chunks(self.fragment_bytes) {
            put_frame(&mut self.out, Kind::Fragment, fragment);
            self.flush().await?;
        }
        Ok(())
    }

    pub fn push_ping(&mut self, token: u64) {
        put_frame(&mut self.out, Kind::Ping, &token.to_be_bytes());
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.inner.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 4 * 1024 * 1024 {
                // A snapshot went through; do not hold its buffer forever.
                self.out = BytesMut::with_capacity(64 * 1024);
            }
        }
        self.inner.flush().await
    }
}
