//! The peer wire format: a hello, then length-prefixed frames, over TCP or TLS.
//!
//! ```text
//! hello (dialer → listener, once):  "CONCLAVE" | version u32 | from u64 | to u64   (28 bytes)
//! frame (both ways):                length u32 | kind u8 | body                    (length = 1 + body)
//!
//! Message        kind 1   body = one whole protocol payload (at most FRAGMENT_BYTES)
//! Ping / Pong    kind 2/3 body = token u64
//! Accept         kind 4   body empty
//! Refuse         kind 5   body = reason, UTF-8
//! FirstFragment  kind 6   body = total u64 | the payload's first bytes
//! Fragment       kind 7   body = the payload's next bytes
//! ```
//!
//! All integers are big-endian. The listener answers the hello with `Accept` or with `Refuse`
//! (the body is the reason, UTF-8) and then closes; a hello of another version is refused with a
//! reason naming both versions. After `Accept` the dialer sends `Message` frames and `Ping`
//! frames, and the listener answers each `Ping` with a `Pong` carrying the same token. A frame
//! longer than the reader's limit ends the connection: the length is checked before anything is
//! allocated.
//!
//! A payload larger than [`FRAGMENT_BYTES`] (a snapshot: Raft's InstallSnapshot, Totem's Sync,
//! a Multi-Paxos catch-up) travels as a `FirstFragment` announcing its total length, then
//! `Fragment` frames, back to back on the link, until the total has arrived; only `Ping`s may
//! come between them. Frames stay small, so a frame never needs a buffer of a snapshot's size
//! and the receiver can refuse an announced total over its limit before reading any of it
//! (see [`Assembler`](crate::assembly::Assembler)). Version 1 had no fragments.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use conclave_core::NodeId;
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Opens every connection, so that a stray client (an HTTP probe, a client pointed at the peer
/// port) is told apart from a peer at once.
pub const MAGIC: &[u8; 8] = b"CONCLAVE";
/// The wire format's version; a listener refuses any other. Version 2 added fragments.
pub const VERSION: u32 = 2;
pub const HELLO_LEN: usize = 28;
/// Length prefix and kind.
pub const HEADER_LEN: usize = 5;
/// The most payload bytes one frame carries: a larger payload is split into fragments of this
/// size (fewer if the frame limit is smaller, see [`fragment_bytes`]). Small enough that the
/// sender's and receiver's frame buffers stay small, large enough that the 9 bytes of framing
/// per fragment cost nothing.
pub const FRAGMENT_BYTES: usize = 1024 * 1024;
/// The kind byte and the total length that a `FirstFragment` frame holds besides payload bytes.
pub const FIRST_FRAGMENT_OVERHEAD: usize = 1 + 8;
/// The smallest frame limit that leaves room for a fragment header and some payload.
pub const MIN_FRAME_BYTES: usize = 64;

/// The payload bytes per frame for a frame limit of `max_frame_bytes` (at least
/// [`MIN_FRAME_BYTES`]): a payload up to this size goes as one `Message`, a larger one in
/// fragments of this size.
pub fn fragment_bytes(max_frame_bytes: usize) -> usize {
    FRAGMENT_BYTES.min(max_frame_bytes.saturating_sub(FIRST_FRAGMENT_OVERHEAD)).max(1)
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Message = 1,
    Ping = 2,
    Pong = 3,
    Accept = 4,
    Refuse = 5,
    FirstFragment = 6,
    Fragment = 7,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Message,
            2 => Kind::Ping,
            3 => Kind::Pong,
            4 => Kind::Accept,
            5 => Kind::Refuse,
            6 => Kind::FirstFragment,
            7 => Kind::Fragment,
            _ => return None,
        })
    }
}

/// Who is dialing whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub from: NodeId,
    pub to: NodeId,
}

impl Hello {
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_be_bytes());
        out[12..20].copy_from_slice(&self.from.0.to_be_bytes());
        out[20..28].copy_from_slice(&self.to.0.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, WireError> {
        if &bytes[..8] != MAGIC {
            return Err(WireError::NotAPeer);
        }
        let version = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let from = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let to = u64::from_be_bytes(bytes[20..28].try_into().expect("8 bytes"));
        Ok(Hello { from: NodeId(from), to: NodeId(to) })
    }
}

/// Appends one frame to `out`.
pub fn put_frame(out: &mut BytesMut, kind: Kind, body: &[u8]) {
    put_frame_parts(out, kind, &[], body);
}

/// Appends one frame whose body is `head` then `body` (a first fragment's total, then its bytes).
pub fn put_frame_parts(out: &mut BytesMut, kind: Kind, head: &[u8], body: &[u8]) {
    let length = 1 + head.len() + body.len();
    // Payloads go in frames of at most FRAGMENT_BYTES, and no control frame comes near 4 GiB.
    let length = u32::try_from(length).expect("a frame body is at most a fragment long");
    out.reserve(HEADER_LEN + length as usize);
    out.put_u32(length);
    out.put_u8(kind as u8);
    out.put_slice(head);
    out.put_slice(body);
}

/// A malformed or unexpected byte stream.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the connection does not start with the Conclave peer hello (is this a peer port?)")]
    NotAPeer,
    #[error("peer wire format version {0} is not supported: this node speaks version {VERSION}")]
    Version(u32),
    #[error("a frame of {length} bytes is over the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error("a frame of length 0 has no kind")]
    Empty,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error(
        "node {peer} announced a payload of {announced} bytes, over the limit of {limit} bytes \
         (transport.max_assembled_bytes)"
    )]
    PayloadTooLarge { peer: NodeId, announced: u64, limit: usize },
    #[error("a fragment of {0} bytes continues no payload")]
    StrayFragment(usize),
    #[error("a first fragment of {0} bytes is too short to hold the payload's total length")]
    ShortFirstFragment(usize),
    #[error(
        "a first fragment carries {carried} bytes of a payload of {total}: nothing would follow"
    )]
    NothingToFollow { carried: usize, total: u64 },
    #[error("a {kind:?} frame came after {received} of the {total} bytes of a fragmented payload")]
    Interrupted { kind: Kind, received: usize, total: u64 },
    #[error("fragments carried {received} bytes of a payload announced as {total} bytes")]
    Overrun { received: usize, total: u64 },
    #[error("the connection closed after {received} of the {total} bytes of a fragmented payload")]
    TruncatedPayload { received: usize, total: u64 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads frames from one connection, reusing its buffer; a message body is handed out as a
/// slice of that buffer, without a copy.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    limit: usize,
}

impl<R> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader").field("buffered", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `limit` bounds a frame's length (kind and body).
    pub fn new(inner: R, limit: usize) -> Self {
        Self { inner, buf: BytesMut::with_capacity(64 * 1024), limit }
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    pub async fn next(&mut self) -> Result<Option<(Kind, Bytes)>, WireError> {
        loop {
            if self.buf.len() >= 4 {
                let length =
                    u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
                if length == 0 {
                    return Err(WireError::Empty);
                }
                if length > self.limit {
                    return Err(WireError::TooLarge { length, limit: self.limit });
                }
                if self.buf.len() >= 4 + length {
                    self.buf.advance(4);
                    let kind_byte = self.buf.get_u8();
                    let body = self.buf.split_to(length - 1).freeze();
                    let kind =
                        Kind::from_byte(kind_byte).ok_or(WireError::UnknownKind(kind_byte))?;
                    return Ok(Some((kind, body)));
                }
                self.buf.reserve(4 + length - self.buf.len());
            } else if self.buf.capacity() - self.buf.len() < 4 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(WireError::Truncated) };
            }
        }
    }

    /// Reads exactly a hello (before any frame).
    pub async fn hello(&mut self) -> Result<Hello, WireError> {
        let mut bytes = [0u8; HELLO_LEN];
        let buffered = self.buf.len().min(HELLO_LEN);
        bytes[..buffered].copy_from_slice(&self.buf[..buffered]);
        self.buf.advance(buffered);
        if buffered < HELLO_LEN {
            self.inner.read_exact(&mut bytes[buffered..]).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    WireError::NotAPeer
                } else {
                    WireError::Io(e)
                }
            })?;
        }
        Hello::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (kind, body) in parts {
            put_frame(&mut out, *kind, body);
        }
        out.to_vec()
    }

    #[tokio::test]
    async fn frames_round_trip_however_the_bytes_arrive() {
        let mut bytes = Hello { from: NodeId(3), to: NodeId(1) }.encode().to_vec();
        bytes.extend(frames(&[(Kind::Message, b"abc"), (Kind::Ping, &7u64.to_be_bytes())]));
        // One byte at a time, as a slow link might deliver them.
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&bytes).await.unwrap();
        });
        let mut reader = FrameReader::new(rx, 1024);
        assert_eq!(reader.hello().await.unwrap(), Hello { from: NodeId(3), to: NodeId(1) });
        let (kind, body) = reader.next().await.unwrap().unwrap();
        assert_eq!((kind, body.as_ref()), (Kind::Message, b"abc".as_ref()));
        let (kind, body) = reader.next().await.unwrap().unwrap();
        assert_eq!((kind, body.as_ref()), (Kind::Ping, 7u64.to_be_bytes().as_ref()));
        writer.await.unwrap();
        assert!(reader.next().await.unwrap().is_none(), "clean end after the last frame");
    }

    #[tokio::test]
    async fn bad_streams_are_named() {
        let mut reader = FrameReader::new(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], 1024);
        assert!(matches!(reader.hello().await, Err(WireError::NotAPeer)));

        let mut hello = Hello { from: NodeId(1), to: NodeId(2) }.encode();
        hello[11] = 9;
        let mut reader = FrameReader::new(&hello[..], 1024);
        assert!(matches!(reader.hello().await, Err(WireError::Version(9))));

        let big = frames(&[(Kind::Message, &[0u8; 100])]);
        let error = FrameReader::new(&big[..], 50).next().await.unwrap_err();
        assert_eq!(error.to_string(), "a frame of 101 bytes is over the limit of 50 bytes");

        let unknown = [0, 0, 0, 1, 42];
        let error = FrameReader::new(&unknown[..], 50).next().await.unwrap_err();
        assert!(matches!(error, WireError::UnknownKind(42)));

        let cut = &frames(&[(Kind::Message, b"abcdef")])[..7];
        assert!(matches!(FrameReader::new(cut, 50).next().await, Err(WireError::Truncated)));
        assert!(matches!(
            FrameReader::new(&[0u8, 0, 0, 0][..], 50).next().await,
            Err(WireError::Empty)
        ));
    }
}
