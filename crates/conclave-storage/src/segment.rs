//! Segment files of the write-ahead log: their names, and reading one back record by record.
//!
//! Segments are `wal/<sequence>.log`, numbered from 1 without gaps. Reading tells a torn tail
//! from corruption. A crash during an unsynced write can leave the last segment ending in an
//! incomplete or garbled record; nothing valid can follow it, because every write after it
//! came later in the same file. So a bad record is a torn tail only when it is in the last
//! segment **and** no valid record starts anywhere after it. Anything else — a bad record in
//! an older segment, or one followed by a valid record — is damage inside data that was synced,
//! and is refused.
//!
//! The search for a later valid record tries every byte offset, because a damaged length field
//! gives no reliable place to resume. An entry whose data happens to hold an image of a valid
//! record could make a torn tail look like corruption; recovery then refuses to start, which is
//! the safe way to be wrong.
//!
//! Reading works record by record; whole records after the last commit record are a torn
//! batch, which replay (not this module) drops.

use crate::StorageError;
use crate::fsutil;
use crate::record::{self, DecodeError, HEADER_BYTES, Record};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The file name of segment `sequence`.
pub(crate) fn file_name(sequence: u64) -> String {
    format!("{sequence:016}.log")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `wal_dir`, in order, checked to be numbered without gaps.
pub(crate) fn list(wal_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut segments: Vec<(u64, PathBuf)> = fsutil::file_names(wal_dir)?
        .into_iter()
        .filter_map(|(name, path)| parse_name(&name).map(|seq| (seq, path)))
        .collect();
    segments.sort();
    for pair in segments.windows(2) {
        if pair[1].0 != pair[0].0 + 1 {
            return Err(StorageError::corrupt(
                &pair[1].1,
                0,
                format!("segment {} is missing before it", pair[0].0 + 1),
            ));
        }
    }
    Ok(segments)
}

/// How reading a segment ended.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// Bytes up to the end of the last valid record.
    pub valid_len: u64,
    /// Why the bytes after `valid_len` were dropped, when the segment ended in a torn tail.
    pub torn: Option<DecodeError>,
}

/// Reads every record of `bytes` (the contents of `path`), handing each to `visit` with the
/// byte range it takes. `last` says whether this is the newest segment, the only one that may
/// be torn.
pub(crate) fn scan(
    path: &Path,
    bytes: &[u8],
    max_record_bytes: u64,
    last: bool,
    mut visit: impl FnMut(Range<u64>, Record) -> Result<(), StorageError>,
) -> Result<ScanEnd, StorageError> {
    let mut at = 0usize;
    while at < bytes.len() {
        match record::decode(&bytes[at..], max_record_bytes) {
            Ok((record, used)) => {
                visit(at as u64..(at + used) as u64, record)?;
                at += used;
            }
            Err(error) => {
                if record::is_oversized_but_intact(&bytes[at..], max_record_bytes) {
                    return Err(StorageError::corrupt(
                        path,
                        at as u64,
                        format!("{error}, but the record is intact: was max_record_bytes lowered?"),
                    ));
                }
                if !last {
                    return Err(StorageError::corrupt(
                        path,
                        at as u64,
                        format!("{error} in a sealed segment"),
                    ));
                }
                if zeros_from(bytes) <= at {
                    // The preallocated rest of the active segment, never written.
                    return Ok(ScanEnd { valid_len: at as u64, torn: None });
                }
                if let Some(next) = next_valid_record(bytes, at + 1, max_record_bytes) {
                    return Err(StorageError::corrupt(
                        path,
                        at as u64,
                        format!("{error}, yet a valid record follows at offset {next}"),
                    ));
                }
                return Ok(ScanEnd { valid_len: at as u64, torn: Some(error) });
            }
        }
    }
    Ok(ScanEnd { valid_len: at as u64, torn: None })
}

/// The first offset at or after `from` where a whole, valid record starts. A header of zeros is
/// never valid, so the search stops where the trailing zeros (a preallocated tail) begin.
fn next_valid_record(bytes: &[u8], from: usize, max_record_bytes: u64) -> Option<usize> {
    let last_start = bytes.len().checked_sub(HEADER_BYTES)?.min(zeros_from(bytes));
    (from..=last_start).find(|&at| record::decode(&bytes[at..], max_record_bytes).is_ok())
}

/// Where the run of zero bytes that ends `bytes` begins (`bytes.len()` when the last byte is
/// not zero).
pub(crate) fn zeros_from(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Encoder;

    const ENCODER: Encoder = Encoder { max_record_bytes: 4096 };

    fn three_records() -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for hs in [&b"one"[..], b"two", b"three"] {
            starts.push(buf.len());
            ENCODER.hard_state(&mut buf, hs).unwrap();
        }
        (buf, starts)
    }

    fn count(bytes: &[u8], last: bool) -> Result<(usize, ScanEnd), StorageError> {
        let mut n = 0;
        let end = scan(Path::new("wal/x.log"), bytes, 4096, last, |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok((n, end))
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(1), "0000000000000001.log");
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("12.log.tmp"), None);
        assert_eq!(parse_name(".log"), None);
    }

    #[test]
    fn torn_tail_of_the_last_segment_is_dropped() {
        let (buf, starts) = three_records();
        let cut = starts[2] + 5;
        let (n, end) = count(&buf[..cut], true).unwrap();
        assert_eq!(n, 2);
        assert_eq!(end.valid_len, starts[2] as u64);
        assert_eq!(end.torn, Some(DecodeError::Incomplete));
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let (mut buf, _) = three_records();
        let len = buf.len();
        buf.extend_from_slice(&[0x2A; 7]);
        buf.extend_from_slice(&[0; 100]);
        let (n, end) = count(&buf, true).unwrap();
        assert_eq!((n, end.valid_len), (3, len as u64));
        assert!(end.torn.is_some());
    }

    #[test]
    fn zeros_after_the_last_record_are_the_preallocated_end() {
        let (mut buf, _) = three_records();
        let len = buf.len();
        buf.extend_from_slice(&[0; 4096]);
        let (n, end) = count(&buf, true).unwrap();
        assert_eq!((n, end.valid_len, end.torn), (3, len as u64, None));
    }

    #[test]
    fn a_valid_record_after_a_run_of_zeros_is_corruption() {
        let (mut buf, starts) = three_records();
        let third = buf[starts[2]..].to_vec();
        buf.truncate(starts[2]);
        buf.extend_from_slice(&[0; 64]);
        buf.extend_from_slice(&third);
        assert!(matches!(count(&buf, true), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn zeros_in_a_sealed_segment_are_corruption() {
        let (mut buf, _) = three_records();
        buf.extend_from_slice(&[0; 64]);
        assert!(matches!(count(&buf, false), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn damage_followed_by_a_valid_record_is_corruption() {
        let (mut buf, starts) = three_records();
        buf[starts[1] + HEADER_BYTES] ^= 1;
        let err = count(&buf, true).unwrap_err();
        match err {
            StorageError::Corrupt { offset, .. } => assert_eq!(offset, starts[1] as u64),
            other => panic!("expected corruption, got {other}"),
        }
    }

    #[test]
    fn damaged_length_field_followed_by_a_valid_record_is_corruption() {
        let (mut buf, starts) = three_records();
        buf[starts[1]..starts[1] + 4].copy_from_slice(&4000u32.to_le_bytes());
        assert!(matches!(count(&buf, true), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn a_record_above_a_lowered_limit_is_not_mistaken_for_a_torn_tail() {
        let (buf, _) = three_records();
        let err = scan(Path::new("wal/x.log"), &buf, 4, true, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("max_record_bytes lowered"), "{err}");
    }

    #[test]
    fn any_damage_in_a_sealed_segment_is_corruption() {
        let (buf, starts) = three_records();
        let err = count(&buf[..starts[2] + 3], false).unwrap_err();
        assert!(err.to_string().contains("sealed segment"), "{err}");
    }
}
