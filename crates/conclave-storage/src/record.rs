//! The write-ahead log's records and how they are framed on disk.
//!
//! A record is a 9-byte header followed by its payload:
//!
//! ```text
//! +----------------+----------------+------+---------------------------+
//! | length: u32 LE | crc32c: u32 LE | type | payload (postcard, length) |
//! +----------------+----------------+------+---------------------------+
//! ```
//!
//! The checksum covers the type byte and the payload, so a run of zero bytes (a preallocated
//! or torn page) never reads as a valid record. The length is checked against the configured
//! limit before anything is sliced, so a damaged length field is never allocated.
//!
//! Records come in batches: the records of one `LogStore::write` (or of a segment's head),
//! closed by a commit record that counts them. Replay applies a batch only once it reads the
//! commit, so a batch cut short by a crash leaves no trace.

use crate::StorageError;
use bytes::Bytes;
use conclave_core::Entry;
use serde::{Deserialize, Serialize, Serializer};

/// Bytes before the payload: length, checksum, type.
pub(crate) const HEADER_BYTES: usize = 9;

/// The on-disk format this build writes and reads, named in every segment header. Format 1 had
/// no commit records (each record took effect on its own); replaying it by format 2's rules
/// would drop every batch, so a format 1 segment is refused instead.
pub(crate) const FORMAT: u32 = 2;

/// What a record holds, as the type byte in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordType {
    /// The first record of every segment.
    SegmentHeader = 1,
    /// A protocol's hard state; replaces the previous one.
    HardState = 2,
    /// Names the snapshot file that is now current.
    Snapshot = 3,
    /// Contiguous entries appended after the last one.
    Entries = 4,
    /// Drops every entry from an index on.
    Truncate = 5,
    /// Entries up to an index may be deleted from disk.
    Compact = 6,
    /// Closes a batch: the records since the previous commit take effect together.
    Commit = 7,
}

impl RecordType {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::SegmentHeader,
            2 => Self::HardState,
            3 => Self::Snapshot,
            4 => Self::Entries,
            5 => Self::Truncate,
            6 => Self::Compact,
            7 => Self::Commit,
            _ => return None,
        })
    }
}

/// Opens every segment: the format, which segment this is and where the log stood when it
/// began. The format comes first, so that a later format can be told apart by its first field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentHeader {
    pub format: u32,
    pub segment: u64,
    pub last_index: u64,
}

impl SegmentHeader {
    /// The header of segment `segment` in this build's format.
    pub fn new(segment: u64, last_index: u64) -> Self {
        Self { format: FORMAT, segment, last_index }
    }
}

/// Points at `snap/<index>-<term>.snap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct SnapshotMarker {
    pub index: u64,
    pub term: u64,
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Header(SegmentHeader),
    HardState(Bytes),
    Snapshot(SnapshotMarker),
    Entries(Vec<Entry>),
    Truncate {
        from: u64,
    },
    Compact {
        to: u64,
    },
    /// Closes the batch of the `records` records before it.
    Commit {
        records: u32,
    },
}

/// Why the bytes at some offset are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The file ends before the header or the payload does.
    Incomplete,
    /// The length field is above the limit.
    TooLong {
        length: u64,
        limit: u64,
    },
    Checksum,
    UnknownType(u8),
    Payload(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete => write!(f, "incomplete record"),
            Self::TooLong { length, limit } => {
                write!(f, "length field {length} exceeds max_record_bytes {limit}")
            }
            Self::Checksum => write!(f, "crc32c mismatch"),
            Self::UnknownType(t) => write!(f, "unknown record type {t}"),
            Self::Payload(e) => write!(f, "undecodable payload: {e}"),
        }
    }
}

/// Serializes a borrowed byte slice the way `Bytes` does, without copying it first.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

fn checksum(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// Appends framed records to a buffer, refusing any payload above the limit.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub max_record_bytes: u64,
}

impl Encoder {
    pub fn header(&self, buf: &mut Vec<u8>, header: &SegmentHeader) -> Result<(), StorageError> {
        self.frame(buf, RecordType::SegmentHeader, header, "segment header")
    }

    pub fn hard_state(&self, buf: &mut Vec<u8>, hard_state: &[u8]) -> Result<(), StorageError> {
        self.frame(buf, RecordType::HardState, &RawBytes(hard_state), "hard state")
    }

    pub fn snapshot(&self, buf: &mut Vec<u8>, marker: &SnapshotMarker) -> Result<(), StorageError> {
        self.frame(buf, RecordType::Snapshot, marker, "snapshot marker")
    }

    pub fn entries(&self, buf: &mut Vec<u8>, entries: &[Entry]) -> Result<(), StorageError> {
        self.frame(buf, RecordType::Entries, entries, "entry")
    }

    pub fn truncate(&self, buf: &mut Vec<u8>, from: u64) -> Result<(), StorageError> {
        self.frame(buf, RecordType::Truncate, &from, "truncate record")
    }

    pub fn compact(&self, buf: &mut Vec<u8>, to: u64) -> Result<(), StorageError> {
        self.frame(buf, RecordType::Compact, &to, "compact record")
    }

    pub fn commit(&self, buf: &mut Vec<u8>, records: u32) -> Result<(), StorageError> {
        self.frame(buf, RecordType::Commit, &records, "commit record")
    }

    fn frame<T: Serialize + ?Sized>(
        &self,
        buf: &mut Vec<u8>,
        kind: RecordType,
        body: &T,
        what: &'static str,
    ) -> Result<(), StorageError> {
        let start = buf.len();
        buf.extend_from_slice(&[0; HEADER_BYTES]);
        if let Err(e) = postcard::to_io(body, &mut *buf) {
            buf.truncate(start);
            return Err(StorageError::InvalidBatch(format!("cannot encode a {what}: {e}")));
        }
        let length = (buf.len() - start - HEADER_BYTES) as u64;
        if length > self.max_record_bytes {
            buf.truncate(start);
            return Err(StorageError::RecordTooLarge {
                what,
                size: length,
                limit: self.max_record_bytes,
            });
        }
        let crc = checksum(kind as u8, &buf[start + HEADER_BYTES..]);
        buf[start..start + 4].copy_from_slice(&(length as u32).to_le_bytes());
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        buf[start + 8] = kind as u8;
        Ok(())
    }
}

/// Decodes the record at the start of `buf`, returning it and how many bytes it took.
pub(crate) fn decode(buf: &[u8], max_record_bytes: u64) -> Result<(Record, usize), DecodeError> {
    if buf.len() < HEADER_BYTES {
        return Err(DecodeError::Incomplete);
    }
    let length = u64::from(u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")));
    if length > max_record_bytes {
        return Err(DecodeError::TooLong { length, limit: max_record_bytes });
    }
    let end = HEADER_BYTES + length as usize;
    if buf.len() < end {
        return Err(DecodeError::Incomplete);
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let kind = buf[8];
    let payload = &buf[HEADER_BYTES..end];
    if checksum(kind, payload) != crc {
        return Err(DecodeError::Checksum);
    }
    let kind = RecordType::from_byte(kind).ok_or(DecodeError::UnknownType(kind))?;
    let record = match kind {
        RecordType::SegmentHeader => Record::Header(header_body(payload)?),
        RecordType::HardState => Record::HardState(body(payload)?),
        RecordType::Snapshot => Record::Snapshot(body(payload)?),
        RecordType::Entries => Record::Entries(body(payload)?),
        RecordType::Truncate => Record::Truncate { from: body(payload)? },
        RecordType::Compact => Record::Compact { to: body(payload)? },
        RecordType::Commit => Record::Commit { records: body(payload)? },
    };
    Ok((record, end))
}

/// Whether `buf` starts with a whole record whose checksum holds but whose length is above
/// `max_record_bytes`: a record written under a higher limit, not damage.
pub(crate) fn is_oversized_but_intact(buf: &[u8], max_record_bytes: u64) -> bool {
    if buf.len() < HEADER_BYTES {
        return false;
    }
    let length = u64::from(u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")));
    let Some(end) = usize::try_from(length).ok().and_then(|l| l.checked_add(HEADER_BYTES)) else {
        return false;
    };
    // Only bytes already read are looked at: nothing is allocated for the length.
    length > max_record_bytes
        && end <= buf.len()
        && checksum(buf[8], &buf[HEADER_BYTES..end])
            == u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"))
}

/// A segment header, telling a format 1 header (segment and last index only) from damage.
fn header_body(payload: &[u8]) -> Result<SegmentHeader, DecodeError> {
    body(payload).map_err(|error| match body::<(u64, u64)>(payload) {
        Ok(_) => DecodeError::Payload(format!(
            "segment header of format 1 (before commit records); this build reads format {FORMAT}"
        )),
        Err(_) => error,
    })
}

fn body<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::Payload(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(DecodeError::Payload(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCODER: Encoder = Encoder { max_record_bytes: 1024 };

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let entries = vec![Entry::command(7, 2, Bytes::from_static(b"put")), Entry::noop(8, 2)];
        ENCODER.header(&mut buf, &SegmentHeader::new(3, 6)).unwrap();
        ENCODER.hard_state(&mut buf, b"term=2").unwrap();
        ENCODER.snapshot(&mut buf, &SnapshotMarker { index: 5, term: 1 }).unwrap();
        ENCODER.truncate(&mut buf, 7).unwrap();
        ENCODER.entries(&mut buf, &entries).unwrap();
        ENCODER.compact(&mut buf, 5).unwrap();
        ENCODER.commit(&mut buf, 6).unwrap();

        let expected = [
            Record::Header(SegmentHeader { format: FORMAT, segment: 3, last_index: 6 }),
            Record::HardState(Bytes::from_static(b"term=2")),
            Record::Snapshot(SnapshotMarker { index: 5, term: 1 }),
            Record::Truncate { from: 7 },
            Record::Entries(entries),
            Record::Compact { to: 5 },
            Record::Commit { records: 6 },
        ];
        let mut at = 0;
        for want in expected {
            let (got, used) = decode(&buf[at..], 1024).unwrap();
            assert_eq!(got, want);
            at += used;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn a_format_1_header_is_named_as_such() {
        let mut buf = Vec::new();
        let old = (3u64, 6u64);
        ENCODER.frame(&mut buf, RecordType::SegmentHeader, &old, "segment header").unwrap();
        match decode(&buf, 1024).unwrap_err() {
            DecodeError::Payload(reason) => assert!(reason.contains("format 1"), "{reason}"),
            other => panic!("expected a payload error, got {other}"),
        }
    }

    #[test]
    fn torn_records_are_incomplete() {
        let mut buf = Vec::new();
        ENCODER.hard_state(&mut buf, b"abcdef").unwrap();
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut], 1024).unwrap_err(),
                DecodeError::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn flipped_bits_fail_the_checksum() {
        let mut buf = Vec::new();
        ENCODER.hard_state(&mut buf, b"abcdef").unwrap();
        for at in 4..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad, 1024).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn zeros_are_not_a_record() {
        assert!(decode(&[0; 64], 1024).is_err());
    }

    #[test]
    fn oversized_length_is_rejected_before_reading() {
        let mut buf = vec![0xff; HEADER_BYTES];
        buf.extend_from_slice(b"short");
        assert_eq!(
            decode(&buf, 1024).unwrap_err(),
            DecodeError::TooLong { length: u64::from(u32::MAX), limit: 1024 }
        );
    }

    #[test]
    fn oversized_payload_is_refused_on_write() {
        let mut buf = vec![1, 2, 3];
        let err = ENCODER.hard_state(&mut buf, &[7; 2000]).unwrap_err();
        assert!(matches!(err, StorageError::RecordTooLarge { what: "hard state", .. }), "{err}");
        assert_eq!(buf, vec![1, 2, 3], "a refused record leaves the buffer as it was");
    }
}
