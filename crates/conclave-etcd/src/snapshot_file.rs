//! The backup file `etcdctl snapshot save` writes from a Conclave member, and how it is read
//! back by `conclaved snapshot restore` and `conclaved snapshot status`.
//!
//! etcdctl stores the bytes of the `Maintenance/Snapshot` stream as they come, so everything a
//! restore needs to trust the file travels inside it. etcdctl 3.4 checks one thing: that the
//! size is 32 more than a multiple of 512, as a page-aligned bbolt database followed by its
//! SHA-256 is ("sha256 checksum not found" otherwise). Zero padding before the checksum makes
//! every file that size. Layout, integers little-endian:
//!
//! ```text
//! magic            18 bytes  "CONCLAVE SNAPSHOT\n"
//! format version    u32      1
//! header length     u32      bytes of the header that follows
//! header                     revision i64, compact revision i64, applied index u64,
//!                            member id u64, cluster id u64, taken at (unix ms) u64, keys u64,
//!                            protocol name (u8 length, then UTF-8)
//! body length       u64
//! body                       the key-value store's snapshot encoding (keys with their held
//!                            history, leases, revision counters)
//! padding                    zero bytes, as many (0 to 511) as make the file's size 32 more
//!                            than a multiple of 512
//! checksum          u32      CRC-32C of every byte before it
//! ```
//!
//! Reading checks, in order: the magic (a foreign file, or an etcd bbolt snapshot, is named as
//! such), the version, that the lengths add up to the file's size (truncated or padded), the
//! checksum (corrupt), and last that the header is well formed. The body is opaque here:
//! whoever restores it decodes it with the key-value store and reports what is wrong with it.

use bytes::{BufMut, Bytes, BytesMut};

/// The first bytes of every snapshot file: readable with `head -c 18`.
pub const MAGIC: &[u8; 18] = b"CONCLAVE SNAPSHOT\n";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// bbolt's meta page magic, at byte 16 of an etcd snapshot (after the page header).
const BBOLT_MAGIC: [u8; 4] = 0xED0C_DAEDu32.to_le_bytes();
/// Magic, version and header length.
const PREFIX_LEN: usize = MAGIC.len() + 4 + 4;
const BODY_LEN_LEN: usize = 8;
const CHECKSUM_LEN: usize = 4;
/// A header longer than this is damage, not a header.
const MAX_HEADER_LEN: usize = 4096;
/// etcdctl 3.4 accepts a snapshot whose size modulo this ...
const SIZE_ALIGN: u64 = 512;
/// ... is this (the size of the SHA-256 etcd appends to its page-aligned database).
const SIZE_REMAINDER: u64 = 32;

/// The zero bytes that make a file of `unpadded` bytes (checksum included) the size etcdctl
/// expects.
fn padding(unpadded: u64) -> u64 {
    (SIZE_ALIGN + SIZE_REMAINDER - unpadded % SIZE_ALIGN) % SIZE_ALIGN
}

/// What a snapshot file says about the state in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The store's revision when the snapshot was taken.
    pub revision: i64,
    /// The store's compaction revision then (0 if never compacted).
    pub compact_revision: i64,
    /// The member's applied log index then (node-local under gossip).
    pub applied_index: u64,
    /// The member that served the snapshot.
    pub member_id: u64,
    pub cluster_id: u64,
    /// Wall-clock time the snapshot was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// Live keys at `revision`.
    pub keys: u64,
    /// The protocol of the cluster it was taken from: raft, paxos, totem or gossip.
    pub protocol: String,
}

/// A decoded snapshot file: its header and the key-value store's snapshot encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub header: SnapshotHeader,
    pub body: Bytes,
    /// The CRC-32C the file ends with (verified).
    pub checksum: u32,
}

/// Why bytes are not a usable snapshot file. Messages say what is wrong; the caller adds the
/// file name.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotFileError {
    #[error(
        "an etcd snapshot (a bbolt database), not a Conclave one: Conclave restores only snapshots \
         saved from a Conclave member; move data from etcd with a logical copy (see \
         docs/operations.md)"
    )]
    EtcdSnapshot,
    #[error(
        "not a Conclave snapshot: it does not start with the magic {:?}",
        String::from_utf8_lossy(MAGIC)
    )]
    NotASnapshot,
    #[error("truncated: {have} bytes, but a Conclave snapshot is at least {need}")]
    TooShort { have: usize, need: usize },
    #[error(
        "snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("truncated: the snapshot's lengths say {expected} bytes, but the file has {actual}")]
    Truncated { expected: u64, actual: u64 },
    #[error(
        "{extra} unexpected bytes after the checksum (the file has {actual} bytes, its lengths \
         say {expected})"
    )]
    TrailingBytes { extra: u64, expected: u64, actual: u64 },
    #[error(
        "checksum mismatch: the file says {stored:#010x}, its contents give {computed:#010x}; the \
         file is corrupt"
    )]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("malformed header: {0}")]
    MalformedHeader(String),
}

/// The whole file for a snapshot with this header and key-value store encoding.
pub fn encode(header: &SnapshotHeader, body: &[u8]) -> Bytes {
    let header = encode_header(header);
    let unpadded = PREFIX_LEN + header.len() + BODY_LEN_LEN + body.len() + CHECKSUM_LEN;
    let pad = padding(unpadded as u64) as usize;
    let mut out = BytesMut::with_capacity(unpadded + pad);
    out.put_slice(MAGIC);
    out.put_u32_le(FORMAT_VERSION);
    out.put_u32_le(u32::try_from(header.len()).expect("the header is small"));
    out.put_slice(&header);
    out.put_u64_le(body.len() as u64);
    out.put_slice(body);
    out.put_bytes(0, pad);
    let checksum = crc32c::crc32c(&out);
    out.put_u32_le(checksum);
    out.freeze()
}

impl SnapshotFile {
    /// Reads and verifies a whole file. See the [module documentation](self) for the checks.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotFileError> {
        if !bytes.starts_with(MAGIC) {
            if bytes.get(16..20) == Some(&BBOLT_MAGIC[..]) {
                return Err(SnapshotFileError::EtcdSnapshot);
            }
            if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
                return Err(SnapshotFileError::TooShort {
                    have: bytes.len(),
                    need: PREFIX_LEN + BODY_LEN_LEN + CHECKSUM_LEN,
                });
            }
            return Err(SnapshotFileError::NotASnapshot);
        }
        let minimum = PREFIX_LEN + BODY_LEN_LEN + CHECKSUM_LEN;
        if bytes.len() < PREFIX_LEN {
            return Err(SnapshotFileError::TooShort { have: bytes.len(), need: minimum });
        }
        let version = read_u32(bytes, MAGIC.len());
        if version != FORMAT_VERSION {
            return Err(SnapshotFileError::UnsupportedVersion { found: version });
        }
        let header_len = read_u32(bytes, MAGIC.len() + 4) as usize;
        if header_len > MAX_HEADER_LEN {
            return Err(SnapshotFileError::MalformedHeader(format!(
                "header length {header_len} is over the limit of {MAX_HEADER_LEN}"
            )));
        }
        let body_len_at = PREFIX_LEN + header_len;
        let actual = bytes.len() as u64;
        if bytes.len() < body_len_at + BODY_LEN_LEN {
            return Err(SnapshotFileError::Truncated {
                expected: (body_len_at + BODY_LEN_LEN + CHECKSUM_LEN) as u64,
                actual,
            });
        }
        let body_len = read_u64(bytes, body_len_at);
        let unpadded =
            ((body_len_at + BODY_LEN_LEN + CHECKSUM_LEN) as u64).saturating_add(body_len);
        let expected = unpadded.saturating_add(padding(unpadded));
        if actual < expected {
            return Err(SnapshotFileError::Truncated { expected, actual });
        }
        if actual > expected {
            return Err(SnapshotFileError::TrailingBytes {
                extra: actual - expected,
                expected,
                actual,
            });
        }
        let checksum_at = bytes.len() - CHECKSUM_LEN;
        let stored = read_u32(bytes, checksum_at);
        let computed = crc32c::crc32c(&bytes[..checksum_at]);
        if stored != computed {
            return Err(SnapshotFileError::ChecksumMismatch { stored, computed });
        }
        let header = decode_header(&bytes[PREFIX_LEN..body_len_at])?;
        let body_at = body_len_at + BODY_LEN_LEN;
        let body = Bytes::copy_from_slice(&bytes[body_at..body_at + body_len as usize]);
        Ok(Self { header, body, checksum: stored })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

fn encode_header(h: &SnapshotHeader) -> Vec<u8> {
    let protocol = h.protocol.as_bytes();
    let protocol = &protocol[..protocol.len().min(usize::from(u8::MAX))];
    let mut out = Vec::with_capacity(7 * 8 + 1 + protocol.len());
    out.put_i64_le(h.revision);
    out.put_i64_le(h.compact_revision);
    out.put_u64_le(h.applied_index);
    out.put_u64_le(h.member_id);
    out.put_u64_le(h.cluster_id);
    out.put_u64_le(h.taken_at_unix_ms);
    out.put_u64_le(h.keys);
    out.put_u8(protocol.len() as u8);
    out.put_slice(protocol);
    out
}

fn decode_header(bytes: &[u8]) -> Result<SnapshotHeader, SnapshotFileError> {
    const FIXED: usize = 7 * 8 + 1;
    let malformed = |what: String| SnapshotFileError::MalformedHeader(what);
    if bytes.len() < FIXED {
        return Err(malformed(format!("{} bytes, expected at least {FIXED}", bytes.len())));
    }
    let field = |i: usize| read_u64(bytes, i * 8);
    let protocol_len = usize::from(bytes[FIXED - 1]);
    if bytes.len() != FIXED + protocol_len {
        return Err(malformed(format!(
            "{} bytes, expected {} for a protocol name of {protocol_len} bytes",
            bytes.len(),
            FIXED + protocol_len
        )));
    }
    let protocol = std::str::from_utf8(&bytes[FIXED..])
        .map_err(|_| malformed("the protocol name is not UTF-8".into()))?
        .to_string();
    Ok(SnapshotHeader {
        revision: field(0) as i64,
        compact_revision: field(1) as i64,
        applied_index: field(2),
        member_id: field(3),
        cluster_id: field(4),
        taken_at_unix_ms: field(5),
        keys: field(6),
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            revision: 42,
            compact_revision: 7,
            applied_index: 99,
            member_id: 2,
            cluster_id: 0xdead_beef,
            taken_at_unix_ms: 1_700_000_000_000,
            keys: 3,
            protocol: "raft".into(),
        }
    }

    fn sample() -> Bytes {
        encode(&header(), b"\x01the kv store")
    }

    #[test]
    fn round_trips() {
        let bytes = sample();
        assert!(bytes.starts_with(MAGIC));
        let file = SnapshotFile::decode(&bytes).unwrap();
        assert_eq!(file.header, header());
        assert_eq!(&file.body[..], b"\x01the kv store");
        assert_eq!(file.checksum, crc32c::crc32c(&bytes[..bytes.len() - CHECKSUM_LEN]));
    }

    #[test]
    fn every_size_is_what_etcdctl_accepts() {
        for len in 0..1100 {
            let bytes = encode(&header(), &vec![7u8; len]);
            assert_eq!(bytes.len() as u64 % SIZE_ALIGN, SIZE_REMAINDER, "body of {len} bytes");
            assert_eq!(SnapshotFile::decode(&bytes).unwrap().body.len(), len);
        }
    }

    #[test]
    fn an_empty_body_round_trips() {
        let file = SnapshotFile::decode(&encode(&SnapshotHeader::default(), b"")).unwrap();
        assert_eq!((file.header, file.body.len()), (SnapshotHeader::default(), 0));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample();
        for len in 0..bytes.len() {
            let error = SnapshotFile::decode(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    error,
                    SnapshotFileError::Truncated { .. }
                        | SnapshotFileError::TooShort { .. }
                        | SnapshotFileError::NotASnapshot
                ),
                "{len} bytes: {error}"
            );
            if len >= MAGIC.len() {
                assert!(error.to_string().contains("truncated"), "{len} bytes: {error}");
            }
        }
    }

    #[test]
    fn every_flipped_bit_after_the_magic_is_refused() {
        let bytes = sample();
        for at in MAGIC.len()..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.to_vec();
                damaged[at] ^= 1 << bit;
                assert!(SnapshotFile::decode(&damaged).is_err(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn a_damaged_body_or_padding_is_a_checksum_mismatch() {
        let clean = sample().to_vec();
        let body_at = clean.windows(4).position(|w| w == b"the ").unwrap();
        for at in [body_at, clean.len() - CHECKSUM_LEN - 2] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x40;
            let error = SnapshotFile::decode(&bytes).unwrap_err();
            assert!(matches!(error, SnapshotFileError::ChecksumMismatch { .. }), "{error}");
            assert!(error.to_string().contains("corrupt"), "{error}");
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = sample().to_vec();
        bytes.extend_from_slice(b"xx");
        let error = SnapshotFile::decode(&bytes).unwrap_err();
        assert!(matches!(error, SnapshotFileError::TrailingBytes { extra: 2, .. }), "{error}");
    }

    #[test]
    fn foreign_files_are_named() {
        assert_eq!(SnapshotFile::decode(b"{\"kvs\": []}"), Err(SnapshotFileError::NotASnapshot));
        let mut bbolt = vec![0u8; 4096];
        bbolt[16..20].copy_from_slice(&BBOLT_MAGIC);
        assert_eq!(SnapshotFile::decode(&bbolt), Err(SnapshotFileError::EtcdSnapshot));
    }

    #[test]
    fn a_newer_version_is_refused_by_number() {
        let mut bytes = sample().to_vec();
        bytes[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&2u32.to_le_bytes());
        let error = SnapshotFile::decode(&bytes).unwrap_err();
        assert_eq!(error, SnapshotFileError::UnsupportedVersion { found: 2 });
        assert!(error.to_string().contains("version 2"), "{error}");
    }
}
