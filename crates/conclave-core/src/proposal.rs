//! The header the driver wraps around each client command before proposing it.
//!
//! Protocols treat entry data as opaque. The driver prefixes each command with the proposing
//! node and its request id, so that whichever replica applies the entry, the one that accepted
//! the request can find its waiting caller — even when the protocol forwarded the command to a
//! leader, and even when the leader changed in between.

use crate::{NodeId, RequestId};
use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of header before the command: origin node id then request id, both little-endian u64.
pub const HEADER_LEN: usize = 16;

/// A command as it travels inside a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub origin: NodeId,
    pub request: RequestId,
    pub command: Bytes,
}

impl Proposal {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + self.command.len());
        buf.put_u64_le(self.origin.0);
        buf.put_u64_le(self.request.0);
        buf.put_slice(&self.command);
        buf.freeze()
    }

    /// Splits entry data into header and command; `None` if it is too short to hold a header.
    pub fn decode(data: &Bytes) -> Option<Self> {
        if data.len() < HEADER_LEN {
            return None;
        }
        let origin = u64::from_le_bytes(data[0..8].try_into().ok()?);
        let request = u64::from_le_bytes(data[8..16].try_into().ok()?);
        Some(Self {
            origin: NodeId(origin),
            request: RequestId(request),
            command: data.slice(HEADER_LEN..),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Proposal { origin: NodeId(3), request: RequestId(99), command: Bytes::from("put") };
        assert_eq!(Proposal::decode(&p.encode()), Some(p));
        assert_eq!(Proposal::decode(&Bytes::from_static(b"short")), None);
    }
}
