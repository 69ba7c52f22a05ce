//! Reassembly of fragmented payloads on the receiving side of one link.
//!
//! The sender writes a large payload's fragments back to back on one connection, so the
//! receiver needs only one payload in progress per connection, and anything but a `Ping`
//! between two of its fragments is a broken stream. The announced total is checked against the
//! limit before a byte of it is kept, but not trusted beyond that: the buffer grows with what
//! has arrived (doubling, never past the total), so a peer that announces a gigabyte and sends
//! a kilobyte costs a kilobyte. A connection that ends mid-payload drops the partial payload
//! with the assembler.

use crate::frame::{Kind, WireError};
use bytes::Bytes;
use conclave_core::NodeId;

/// The payload in progress on one connection.
#[derive(Debug)]
pub struct Assembler {
    peer: NodeId,
    limit: usize,
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    total: usize,
    bytes: Vec<u8>,
}

impl Assembler {
    /// Reassembles payloads from `peer` of at most `limit` bytes.
    pub fn new(peer: NodeId, limit: usize) -> Self {
        Self { peer, limit, partial: None }
    }

    /// Takes one payload-carrying frame (`Message`, `FirstFragment` or `Fragment`) and returns
    /// the payload it completes, if any.
    pub fn push(&mut self, kind: Kind, body: Bytes) -> Result<Option<Bytes>, WireError> {
        match (kind, &mut self.partial) {
            (Kind::Message, None) => Ok(Some(body)),
            (Kind::FirstFragment, None) => {
                let Some((total, first)) = split_total(&body) else {
                    return Err(WireError::ShortFirstFragment(body.len()));
                };
                if total > self.limit as u64 {
                    return Err(WireError::PayloadTooLarge {
                        peer: self.peer,
                        announced: total,
                        limit: self.limit,
                    });
                }
                let total = total as usize;
                if first.len() >= total {
                    return Err(WireError::NothingToFollow {
                        carried: first.len(),
                        total: total as u64,
                    });
                }
                let mut bytes = Vec::new();
                grow(&mut bytes, first.len(), total);
                bytes.extend_from_slice(first);
                self.partial = Some(Partial { total, bytes });
                Ok(None)
            }
            (Kind::Fragment, Some(partial)) => {
                let received = partial.bytes.len() + body.len();
                if received > partial.total {
                    return Err(WireError::Overrun { received, total: partial.total as u64 });
                }
                grow(&mut partial.bytes, body.len(), partial.total);
                partial.bytes.extend_from_slice(&body);
                if received < partial.total {
                    return Ok(None);
                }
                let done = self.partial.take().expect("a payload is in progress");
                // The buffer grew to exactly the total, so this hands it over without a copy.
                Ok(Some(Bytes::from(done.bytes)))
            }
            (Kind::Fragment, None) => Err(WireError::StrayFragment(body.len())),
            (kind, Some(partial)) => Err(WireError::Interrupted {
                kind,
                received: partial.bytes.len(),
                total: partial.total as u64,
            }),
            (kind, None) => Err(WireError::UnknownKind(kind as u8)),
        }
    }

    /// The end of the stream: fine between payloads, an error in the middle of one (whose bytes
    /// are dropped).
    pub fn finish(self) -> Result<(), WireError> {
        match self.partial {
            None => Ok(()),
            Some(partial) => Err(WireError::TruncatedPayload {
                received: partial.bytes.len(),
                total: partial.total as u64,
            }),
        }
    }

    /// Bytes held for the payload in progress (its buffer's capacity).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.bytes.capacity())
    }
}

/// A first fragment's total length and payload bytes.
fn split_total(body: &[u8]) -> Option<(u64, &[u8])> {
    let (total, rest) = body.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*total), rest))
}

/// Makes room for `more` bytes: at least double the capacity, as a `Vec` would, but never past
/// `total`, so the finished payload's buffer is exactly its size.
fn grow(bytes: &mut Vec<u8>, more: usize, total: usize) {
    let needed = bytes.len() + more;
    if needed <= bytes.capacity() {
        return;
    }
    let target = needed.max(bytes.capacity() * 2).min(total);
    bytes.reserve_exact(target - bytes.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(total: u64, bytes: &[u8]) -> Bytes {
        let mut body = total.to_be_bytes().to_vec();
        body.extend_from_slice(bytes);
        body.into()
    }

    #[test]
    fn fragments_make_one_payload_and_messages_pass_through() {
        let mut assembler = Assembler::new(NodeId(1), 100);
        let small = assembler.push(Kind::Message, Bytes::from_static(b"hi")).unwrap();
        assert_eq!(small.as_deref(), Some(b"hi".as_ref()));
        assert_eq!(assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap(), None);
        assert_eq!(assembler.push(Kind::Fragment, Bytes::from_static(b"efg")).unwrap(), None);
        let whole = assembler.push(Kind::Fragment, Bytes::from_static(b"hij")).unwrap().unwrap();
        assert_eq!(whole.as_ref(), b"abcdefghij");
        // The next payload starts afresh.
        let next = assembler.push(Kind::Message, Bytes::from_static(b"after")).unwrap();
        assert_eq!(next.as_deref(), Some(b"after".as_ref()));
        assembler.finish().unwrap();
    }

    #[test]
    fn an_announced_total_over_the_limit_names_the_limit_and_the_peer() {
        let mut assembler = Assembler::new(NodeId(7), 1000);
        let error = assembler.push(Kind::FirstFragment, first(1001, b"x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "node 7 announced a payload of 1001 bytes, over the limit of 1000 bytes \
             (transport.max_assembled_bytes)"
        );
        let mut assembler = Assembler::new(NodeId(7), 1000);
        assert!(assembler.push(Kind::FirstFragment, first(u64::MAX, b"x")).is_err());
        // At the limit is fine.
        let mut assembler = Assembler::new(NodeId(7), 1000);
        assembler.push(Kind::FirstFragment, first(1000, &[1; 600])).unwrap();
        assert_eq!(
            assembler.push(Kind::Fragment, vec![2; 400].into()).unwrap().unwrap().len(),
            1000
        );
    }

    #[test]
    fn the_buffer_grows_with_what_arrived_not_with_what_was_announced() {
        let mut assembler = Assembler::new(NodeId(1), 1 << 30);
        assembler.push(Kind::FirstFragment, first(1 << 30, &[0; 1000])).unwrap();
        assert!(assembler.held() < 4096, "holds {} bytes after 1000 arrived", assembler.held());
        for _ in 0..10 {
            assembler.push(Kind::Fragment, vec![0; 1000].into()).unwrap();
        }
        assert!(assembler.held() <= 2 * 11_000, "holds {} after 11000 arrived", assembler.held());
        // Growth stops at the total: the finished buffer is handed over as it is.
        let mut assembler = Assembler::new(NodeId(1), 1 << 20);
        assembler.push(Kind::FirstFragment, first(3000, &[0; 1000])).unwrap();
        assembler.push(Kind::Fragment, vec![0; 1000].into()).unwrap();
        assert_eq!(assembler.held(), 2000);
        assembler.push(Kind::Fragment, vec![0; 900].into()).unwrap();
        assert_eq!(assembler.held(), 3000);
    }

    #[test]
    fn broken_fragment_streams_are_named() {
        let mut assembler = Assembler::new(NodeId(1), 100);
        let error = assembler.push(Kind::Fragment, Bytes::from_static(b"abc")).unwrap_err();
        assert_eq!(error.to_string(), "a fragment of 3 bytes continues no payload");

        let error = assembler.push(Kind::FirstFragment, Bytes::from_static(b"1234")).unwrap_err();
        assert!(matches!(error, WireError::ShortFirstFragment(4)), "{error}");

        let error = assembler.push(Kind::FirstFragment, first(3, b"abc")).unwrap_err();
        assert!(matches!(error, WireError::NothingToFollow { carried: 3, total: 3 }), "{error}");

        let mut assembler = Assembler::new(NodeId(1), 100);
        assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap();
        let error = assembler.push(Kind::Message, Bytes::from_static(b"x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a Message frame came after 4 of the 10 bytes of a fragmented payload"
        );

        let mut assembler = Assembler::new(NodeId(1), 100);
        assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap();
        let error = assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap_err();
        assert!(matches!(error, WireError::Interrupted { received: 4, .. }), "{error}");

        let mut assembler = Assembler::new(NodeId(1), 100);
        assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap();
        let error = assembler.push(Kind::Fragment, Bytes::from_static(b"efghijk")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "fragments carried 11 bytes of a payload announced as 10 bytes"
        );

        let mut assembler = Assembler::new(NodeId(1), 100);
        assembler.push(Kind::FirstFragment, first(10, b"abcd")).unwrap();
        assembler.push(Kind::Fragment, Bytes::from_static(b"ef")).unwrap();
        let error = assembler.finish().unwrap_err();
        assert_eq!(
            error.to_string(),
            "the connection closed after 6 of the 10 bytes of a fragmented payload"
        );
    }
}
