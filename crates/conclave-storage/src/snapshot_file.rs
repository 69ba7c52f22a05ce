//! Snapshot files: `snap/<index>-<term>.snap`, each written atomically and checked on read.
//!
//! A file is a 20-byte header — the magic `CNCLSNAP`, the payload length (u64 LE) and the
//! payload's crc32c (u32 LE) — followed by the postcard encoding of the [`Snapshot`]. It is
//! written to a temporary name, synced, renamed into place and the directory synced, so a crash
//! leaves either the whole file or none of it under its real name. The write-ahead log's
//! snapshot marker, not the presence of a file, says which snapshot is current.

use crate::janitor::Janitor;
use crate::record::SnapshotMarker;
use crate::{FileStoreOptions, StorageError, fsutil};
use conclave_core::Snapshot;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"CNCLSNAP";
const HEADER_BYTES: u64 = 20;
const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the snapshot `marker` points at.
pub(crate) fn file_name(marker: SnapshotMarker) -> String {
    format!("{:016}-{:016}.snap", marker.index, marker.term)
}

fn parse_name(name: &str) -> Option<SnapshotMarker> {
    let (index, term) = name.strip_suffix(".snap")?.split_once('-')?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    Some(SnapshotMarker { index: number(index)?, term: number(term)? })
}

/// A snapshot encoded and framed, ready to be written; encoding first lets a too-large
/// snapshot be refused before anything touches the disk.
///
/// The file is `head` followed by `data`: the header, the postcard encoding of the metadata and
/// the data's length prefix, then the state machine's bytes themselves — which is byte for byte
/// the postcard encoding of the whole [`Snapshot`] after the header, without copying a state
/// of tens of megabytes into a second buffer to frame it.
#[derive(Debug)]
pub(crate) struct EncodedSnapshot {
    pub marker: SnapshotMarker,
    /// Empty for a snapshot whose file a `SnapshotWriter` already wrote.
    head: Vec<u8>,
    data: bytes::Bytes,
}

impl EncodedSnapshot {
    /// A snapshot whose file is already written and synced.
    pub(crate) fn written(marker: SnapshotMarker) -> Self {
        Self { marker, head: Vec::new(), data: bytes::Bytes::new() }
    }

    pub(crate) fn is_prewritten(&self) -> bool {
        self.head.is_empty()
    }

    /// The file's length.
    fn len(&self) -> usize {
        self.head.len() + self.data.len()
    }

    /// The file's bytes, in order.
    fn pieces(&self) -> [&[u8]; 2] {
        [&self.head, &self.data]
    }
}

pub(crate) fn encode(snapshot: &Snapshot, max_bytes: u64) -> Result<EncodedSnapshot, StorageError> {
    let mut head = vec![0; HEADER_BYTES as usize];
    let unencodable =
        |e: postcard::Error| StorageError::InvalidBatch(format!("cannot encode the snapshot: {e}"));
    head = postcard::to_extend(&snapshot.meta, head).map_err(unencodable)?;
    // The length prefix postcard gives a byte string: its length as a varint.
    head = postcard::to_extend(&(snapshot.data.len() as u64), head).map_err(unencodable)?;
    let length = (head.len() - HEADER_BYTES as usize + snapshot.data.len()) as u64;
    if length > max_bytes {
        return Err(StorageError::RecordTooLarge {
            what: "snapshot",
            size: length,
            limit: max_bytes,
        });
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[HEADER_BYTES as usize..]), &snapshot.data);
    head[0..8].copy_from_slice(MAGIC);
    head[8..16].copy_from_slice(&length.to_le_bytes());
    head[16..20].copy_from_slice(&crc.to_le_bytes());
    let marker = SnapshotMarker { index: snapshot.meta.index, term: snapshot.meta.term };
    Ok(EncodedSnapshot { marker, head, data: snapshot.data.clone() })
}

/// Writes the snapshot into `dir` atomically and durably; with a `pace` (bytes a second) other
/// than 0, in synced pieces no faster than that
/// (`FileStoreOptions::snapshot_write_bytes_per_sec`).
pub(crate) fn write(
    dir: &Path,
    encoded: &EncodedSnapshot,
    no_fsync: bool,
    pace: u64,
) -> Result<(), StorageError> {
    let path = dir.join(file_name(encoded.marker));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", file_name(encoded.marker)));
    let mut file = File::create(&temp).map_err(|e| StorageError::io("create", &temp, e))?;
    if pace > 0 && !no_fsync {
        write_paced(&mut file, encoded.pieces(), pace)
            .map_err(|(op, e)| StorageError::io(op, &temp, e))?;
    } else {
        for piece in encoded.pieces() {
            file.write_all(piece).map_err(|e| StorageError::io("write", &temp, e))?;
        }
    }
    if !no_fsync {
        file.sync_all().map_err(|e| StorageError::io("fsync", &temp, e))?;
    }
    drop(file);
    fs::rename(&temp, &path).map_err(|e| StorageError::io("rename", &temp, e))?;
    fsutil::sync_dir(dir, no_fsync)
}

/// Writes `bytes` a piece at a time, each made durable before the next and none before its
/// time at `rate` bytes a second, so the disk never holds more than a piece of it in front of
/// other writers' syncs.
fn write_paced(
    file: &mut File,
    bytes: [&[u8]; 2],
    rate: u64,
) -> Result<(), (&'static str, io::Error)> {
    let started = Instant::now();
    let mut written = 0u64;
    let chunk = FileStoreOptions::SNAPSHOT_WRITE_CHUNK_BYTES;
    for piece in bytes.into_iter().flat_map(|bytes| bytes.chunks(chunk)) {
        file.write_all(piece).map_err(|e| ("write", e))?;
        file.sync_data().map_err(|e| ("fdatasync", e))?;
        written += piece.len() as u64;
        let due = started + Duration::from_secs_f64(written as f64 / rate as f64);
        if let Some(early) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(early);
        }
    }
    Ok(())
}

/// Whether the file for `encoded` already holds exactly these bytes (same length and crc), so
/// writing it again can be skipped.
pub(crate) fn is_written(dir: &Path, encoded: &EncodedSnapshot) -> Result<bool, StorageError> {
    let path = dir.join(file_name(encoded.marker));
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StorageError::io("open", &path, e)),
    };
    let file_len = file.metadata().map_err(|e| StorageError::io("stat", &path, e))?.len();
    if file_len != encoded.len() as u64 {
        return Ok(false);
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    file.read_exact(&mut header).map_err(|e| StorageError::io("read", &path, e))?;
    Ok(header[..] == encoded.head[..HEADER_BYTES as usize])
}

/// Reads and checks the snapshot `marker` points at.
pub(crate) fn read(
    dir: &Path,
    marker: SnapshotMarker,
    max_bytes: u64,
) -> Result<Snapshot, StorageError> {
    let path = dir.join(file_name(marker));
    let mut file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::corrupt(
            &path,
            0,
            "the write-ahead log names this snapshot, but the file is missing",
        ),
        _ => StorageError::io("open", &path, e),
    })?;
    let file_len = file.metadata().map_err(|e| StorageError::io("stat", &path, e))?.len();
    if file_len < HEADER_BYTES {
        return Err(StorageError::corrupt(
            &path,
            0,
            format!("file of {file_len} bytes has no header"),
        ));
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    file.read_exact(&mut header).map_err(|e| StorageError::io("read", &path, e))?;
    if &header[0..8] != MAGIC {
        return Err(StorageError::corrupt(&path, 0, "bad magic"));
    }
    let length = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if length > max_bytes {
        return Err(StorageError::corrupt(
            &path,
            8,
            format!("length field {length} exceeds max_snapshot_bytes {max_bytes}"),
        ));
    }
    if length != file_len - HEADER_BYTES {
        return Err(StorageError::corrupt(
            &path,
            8,
            format!(
                "length field {length} does not match the file's {} payload bytes",
                file_len - HEADER_BYTES
            ),
        ));
    }
    let mut payload = vec![0; length as usize];
    file.read_exact(&mut payload).map_err(|e| StorageError::io("read", &path, e))?;
    let crc = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    if crc32c::crc32c(&payload) != crc {
        return Err(StorageError::corrupt(&path, HEADER_BYTES, "crc32c mismatch"));
    }
    let snapshot: Snapshot = postcard::from_bytes(&payload).map_err(|e| {
        StorageError::corrupt(&path, HEADER_BYTES, format!("undecodable snapshot: {e}"))
    })?;
    if snapshot.meta.index != marker.index || snapshot.meta.term != marker.term {
        return Err(StorageError::corrupt(
            &path,
            HEADER_BYTES,
            format!(
                "holds the snapshot at index {} term {}, not the one its name says",
                snapshot.meta.index, snapshot.meta.term
            ),
        ));
    }
    Ok(snapshot)
}

/// Snapshot files in `dir` and what they hold, oldest first.
type Listing = Vec<(SnapshotMarker, PathBuf)>;

/// The snapshot files in `dir`, oldest first, and any temporary files a crash left behind.
pub(crate) fn list(dir: &Path) -> Result<(Listing, Vec<PathBuf>), StorageError> {
    let mut snapshots = Vec::new();
    let mut temps = Vec::new();
    for (name, path) in fsutil::file_names(dir)? {
        if name.ends_with(TEMP_SUFFIX) {
            temps.push(path);
        } else if let Some(marker) = parse_name(&name) {
            snapshots.push((marker, path));
        }
    }
    snapshots.sort();
    Ok((snapshots, temps))
}

/// Discards snapshot files that are no longer needed: temporary files, files newer than the
/// current snapshot (written, but their marker never became durable), and all but the newest
/// `keep` of the rest. Returns whether anything was discarded, so the caller syncs the
/// directory.
pub(crate) fn prune(
    dir: &Path,
    current: Option<SnapshotMarker>,
    keep: usize,
    spared: &BTreeSet<SnapshotMarker>,
    janitor: &Janitor,
) -> Result<bool, StorageError> {
    let (snapshots, temps) = list(dir)?;
    // A file being written, or written and awaiting its marker, is not surplus.
    let is_spared = |path: &Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        parse_name(name.strip_suffix(TEMP_SUFFIX).unwrap_or(name))
            .is_some_and(|marker| spared.contains(&marker))
    };
    let mut doomed: Vec<PathBuf> = temps.into_iter().filter(|p| !is_spared(p)).collect();
    let mut kept = 0;
    for (marker, path) in snapshots.into_iter().rev() {
        if spared.contains(&marker) {
            continue;
        }
        let is_newer = current.is_none_or(|c| marker > c);
        if is_newer || kept >= keep {
            doomed.push(path);
        } else {
            kept += 1;
        }
    }
    for path in &doomed {
        janitor.discard(path)?;
    }
    Ok(!doomed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let marker = SnapshotMarker { index: 120, term: 3 };
        assert_eq!(file_name(marker), "0000000000000120-0000000000000003.snap");
        assert_eq!(parse_name(&file_name(marker)), Some(marker));
        assert_eq!(parse_name("12-3.snap.tmp"), None);
        assert_eq!(parse_name("-3.snap"), None);
    }

    #[test]
    fn the_framing_is_the_postcard_encoding_of_the_whole_snapshot() {
        // Lengths whose prefix takes one, two and three varint bytes.
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let snapshot = Snapshot {
                meta: conclave_core::SnapshotMeta {
                    index: 9_000_000_000,
                    term: 7,
                    membership: conclave_core::Membership::new(
                        [1, 2, 3].map(conclave_core::NodeId),
                    ),
                },
                data: bytes::Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
            };
            let encoded = encode(&snapshot, u64::MAX).unwrap();
            let file: Vec<u8> = encoded.pieces().concat();
            let payload = &file[HEADER_BYTES as usize..];
            assert_eq!(payload, postcard::to_allocvec(&snapshot).unwrap(), "data of {len} bytes");
            assert_eq!(&file[8..16], &(payload.len() as u64).to_le_bytes());
            assert_eq!(&file[16..20], &crc32c::crc32c(payload).to_le_bytes());
        }
    }
}
