//! `conclaved snapshot restore` and `conclaved snapshot status`: from a file saved with
//! `etcdctl snapshot save` to a node's data directory.
//!
//! A restored node starts as if it had taken a storage snapshot of the file's key-value state
//! at log index `max(applied index in the file, 1)`, with term 0 and the *configured*
//! membership: the data directory holds that snapshot and nothing else, no hard state. Every
//! protocol starts from such a directory the way it restarts after compacting its log — Raft
//! and Totem with their log beginning after the snapshot, Paxos with its first open slot after
//! it — so a cluster whose members were all restored from the same file agrees on the state at
//! that index and carries on from there. Term 0 is below every term, ballot and ring sequence
//! a protocol issues, so nothing in the new cluster's log can be mistaken for something older.
//!
//! Gossip rebuilds its last-writer-wins map (values with their HLC stamps) from a map image in
//! the log after a snapshot, not from the key-value store. So for gossip the restore also
//! writes the image right after the snapshot: every live key of the file, stamped from the
//! time the snapshot was taken and by origin 0, which no member uses. The stamps depend only
//! on the file, so every restored member holds the same map and the first anti-entropy rounds
//! find nothing to repair; any write after the restore stamps higher and wins.
//!
//! The data directory is built in a staging directory inside it and moved into place with
//! `snap/` before `wal/`: a restore cut short leaves either the staging directory (the next
//! restore refuses the non-empty directory) or a snapshot without a log, which the storage
//! layer refuses to start from. It never leaves a directory a node would start from empty.

use crate::config::{Config, ProtocolName};
use anyhow::Context;
use bytes::Bytes;
use conclave_core::{Membership, NodeId, Snapshot, SnapshotMeta, StateMachine};
use conclave_etcd::snapshot_file::{SnapshotFile, SnapshotHeader};
use conclave_gossip::durable::Image;
use conclave_gossip::{Hlc, Stamp, Update, VersionVector};
use conclave_kv::{KvStore, RangeRequest};
use conclave_storage::{FileStore, FileStoreOptions, LogStore, WriteBatch};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the data directory is assembled before it is moved into place.
const STAGING: &str = ".restore-in-progress";
/// The gossip origin restored keys are stamped with: member ids start at 1.
const RESTORE_ORIGIN: NodeId = NodeId(0);

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The input cannot be used: the file, or the data directory it was to go into.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing failed part-way.
    #[error("{0:#}")]
    Io(anyhow::Error),
}

impl RestoreError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused(_) => ExitCode::from(2),
            Self::Io(_) => ExitCode::FAILURE,
        }
    }
}

/// A snapshot file read, verified and decoded.
#[derive(Debug)]
pub struct Verified {
    pub file: SnapshotFile,
    pub size: u64,
    /// The key-value store it holds.
    pub store: KvStore,
}

/// Reads `path` and checks everything a restore relies on: the file's framing and checksum,
/// then that the key-value store inside decodes.
pub fn verify(path: &Path) -> Result<Verified, RestoreError> {
    let name = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| RestoreError::Refused(format!("cannot read snapshot {name}: {e}")))?;
    let file = SnapshotFile::decode(&bytes)
        .map_err(|e| RestoreError::Refused(format!("snapshot {name}: {e}")))?;
    let mut store = KvStore::new();
    let meta = SnapshotMeta { index: restore_index(&file.header), ..SnapshotMeta::default() };
    store.restore(&meta, &file.body).map_err(|e| {
        RestoreError::Refused(format!(
            "snapshot {name}: its checksum is right but its key-value data cannot be read \
             (saved by a newer or incompatible conclaved?): {e}"
        ))
    })?;
    Ok(Verified { file, size: bytes.len() as u64, store })
}

/// The log index the restored state sits at: the source's applied index, so that status
/// output continues from where the backup was taken, and at least 1.
fn restore_index(header: &SnapshotHeader) -> u64 {
    header.applied_index.max(1)
}

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub index: u64,
    pub revision: i64,
    pub keys: u64,
}

/// Initialises `config.data_dir` from the snapshot at `path`, for `config.node_id` in a
/// cluster of `config.members` running `config.protocol`.
pub fn restore(config: &Config, path: &Path) -> Result<Restored, RestoreError> {
    let verified = verify(path)?;
    let data_dir = &config.data_dir;
    check_empty(data_dir)?;

    let header = &verified.file.header;
    let index = restore_index(header);
    let membership = Membership::new(config.members.iter().map(|m| NodeId(m.id)));
    let snapshot = Snapshot {
        meta: SnapshotMeta { index, term: 0, membership },
        data: verified.file.body.clone(),
    };
    let entries = match config.protocol {
        ProtocolName::Gossip => vec![gossip_image(&verified.store, header, index + 1)?],
        ProtocolName::Raft | ProtocolName::Paxos | ProtocolName::Totem => Vec::new(),
    };

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))
        .map_err(RestoreError::Io)?;
    let staging = data_dir.join(STAGING);
    write_store(&staging, &snapshot, &entries).map_err(RestoreError::Io)?;
    move_into_place(&staging, data_dir).map_err(RestoreError::Io)?;
    check_restored(data_dir, index, entries.len()).map_err(RestoreError::Io)?;
    Ok(Restored { data_dir: data_dir.clone(), index, revision: header.revision, keys: header.keys })
}

/// A data directory is restored into only when it holds nothing: restoring over a node's data
/// would throw away its promises (votes, ballots) and its log.
fn check_empty(data_dir: &Path) -> Result<(), RestoreError> {
    let name = data_dir.display();
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(RestoreError::Refused(format!("data_dir {name} is not a directory")));
        }
        Err(e) => {
            return Err(RestoreError::Io(anyhow::anyhow!("cannot list data_dir {name}: {e}")));
        }
    };
    // A freshly formatted volume (a Kubernetes PVC) holds `lost+found`; that is not data.
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lost+found")
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more =
        if names.len() > 5 { format!(" and {} more", names.len() - 5) } else { String::new() };
    Err(RestoreError::Refused(format!(
        "data_dir {name} is not empty (it holds {shown}{more}); a restore only initialises a new \
         node: stop the node, move its data directory away (or choose an empty data_dir), and \
         restore every member of the cluster from the same file"
    )))
}

/// Gossip's map image for every live key of the restored store (see the module docs).
fn gossip_image(
    store: &KvStore,
    header: &SnapshotHeader,
    index: u64,
) -> Result<conclave_core::Entry, RestoreError> {
    let everything = RangeRequest::range(Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
    let live = store
        .range(&everything)
        .map_err(|e| RestoreError::Refused(format!("cannot list the snapshot's keys: {e}")))?;
    let base = Hlc::new(header.taken_at_unix_ms, 0);
    let mut last = base;
    let entries = live
        .kvs
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            last = base.advance(i as u64);
            Update { key: kv.key, value: Some(kv.value), stamp: Stamp::new(last, RESTORE_ORIGIN) }
        })
        .collect();
    let mut have = VersionVector::new();
    have.raise(RESTORE_ORIGIN, last);
    Ok(Image { have, entries }.to_entry(index, last.pack()))
}

/// Writes the snapshot and entries as a new store in `dir` and syncs it.
fn write_store(
    dir: &Path,
    snapshot: &Snapshot,
    entries: &[conclave_core::Entry],
) -> anyhow::Result<()> {
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    let (mut store, recovered) = FileStore::open(dir, FileStoreOptions::default())
        .with_context(|| format!("cannot create a store in {}", dir.display()))?;
    anyhow::ensure!(
        recovered.snapshot.is_none() && recovered.entries.is_empty(),
        "{} was not empty",
        dir.display()
    );
    let batch = WriteBatch {
        snapshot: Some(snapshot),
        discard_log: true,
        hard_state: None,
        entries,
        compact_to: None,
    };
    store
        .write(&batch)
        .and_then(|()| store.sync())
        .with_context(|| format!("cannot write the restored state to {}", dir.display()))
}

/// Moves `staging/snap` and then `staging/wal` into `data_dir` and removes `staging`.
fn move_into_place(staging: &Path, data_dir: &Path) -> anyhow::Result<()> {
    for part in ["snap", "wal"] {
        let (from, to) = (staging.join(part), data_dir.join(part));
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        sync_dir(data_dir)?;
    }
    std::fs::remove_dir(staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    sync_dir(data_dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Opens the restored directory as the node will and checks it recovers what was written.
fn check_restored(data_dir: &Path, index: u64, entries: usize) -> anyhow::Result<()> {
    let (_store, recovered) = FileStore::open(data_dir, FileStoreOptions::default())
        .with_context(|| format!("the restored {} does not open", data_dir.display()))?;
    let snapshot_index = recovered.snapshot.as_ref().map(|s| s.meta.index);
    anyhow::ensure!(
        snapshot_index == Some(index) && recovered.entries.len() == entries,
        "the restored {} recovers snapshot {snapshot_index:?} and {} entries, not snapshot {index} \
         and {entries}",
        data_dir.display(),
        recovered.entries.len()
    );
    Ok(())
}

/// `conclaved snapshot restore FILE`: prints what was restored, or the error.
pub fn run_restore(config: &Config, path: &Path) -> ExitCode {
    match restore(config, path) {
        Ok(done) => {
            let members =
                config.members.iter().map(|m| m.id.to_string()).collect::<Vec<_>>().join(", ");
            println!(
                "restored {} keys at revision {} from {} into {} (node {} of a {} cluster with \
                 members {members}, log index {})",
                done.keys,
                done.revision,
                path.display(),
                done.data_dir.display(),
                config.node_id,
                config.protocol,
                done.index,
            );
            println!(
                "restore every other member from the same file, then start all of them together"
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("conclaved: {error}");
            error.exit_code()
        }
    }
}

/// `conclaved snapshot status FILE`: verifies the file and describes it.
pub fn run_status(path: &Path) -> ExitCode {
    match verify(path) {
        Ok(verified) => {
            print!("{}", describe(path, &verified));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("conclaved: {error}");
            error.exit_code()
        }
    }
}

fn describe(path: &Path, verified: &Verified) -> String {
    let h = &verified.file.header;
    let mut out = String::new();
    let _ = writeln!(out, "snapshot:          {}", path.display());
    let _ = writeln!(out, "checksum:          {:#010x} (crc32c, verified)", verified.file.checksum);
    let _ = writeln!(out, "size:              {} bytes", verified.size);
    let _ = writeln!(out, "revision:          {}", h.revision);
    let _ = writeln!(out, "compact revision:  {}", h.compact_revision);
    let _ = writeln!(out, "keys:              {}", h.keys);
    let _ = writeln!(out, "leases:            {}", verified.store.leases().len());
    let _ = writeln!(out, "taken at:          {} (unix ms)", h.taken_at_unix_ms);
    let _ = writeln!(out, "protocol:          {}", h.protocol);
    let _ = writeln!(out, "member:            {}", h.member_id);
    let _ = writeln!(out, "cluster id:        {:x}", h.cluster_id);
    let _ = writeln!(out, "applied index:     {}", h.applied_index);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Member;
    use conclave_kv::{Command, PutRequest};

    fn snapshot_file(dir: &Path, keys: usize) -> PathBuf {
        let mut kv = KvStore::new();
        for i in 0..keys {
            let put = PutRequest::new(format!("k{i}"), format!("v{i}"));
            kv.apply(i as u64 + 1, Some(&Command::Put(put).encode()));
        }
        let header = SnapshotHeader {
            revision: kv.current_revision(),
            applied_index: keys as u64,
            taken_at_unix_ms: 1_700_000_000_000,
            keys: keys as u64,
            protocol: "raft".into(),
            ..SnapshotHeader::default()
        };
        let path = dir.join("backup.db");
        std::fs::write(&path, conclave_etcd::snapshot_file::encode(&header, &kv.snapshot()))
            .unwrap();
        path
    }

    fn config(data_dir: PathBuf, protocol: ProtocolName) -> Config {
        let members = (1..=3)
            .map(|id| Member::parse(&format!("{id}=127.0.0.1:{id}0,127.0.0.1:{id}1")).unwrap())
            .collect();
        Config { node_id: 2, protocol, data_dir, members, ..Config::default() }
    }

    #[test]
    fn every_protocol_restores_into_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = snapshot_file(dir.path(), 5);
        for protocol in
            [ProtocolName::Raft, ProtocolName::Paxos, ProtocolName::Totem, ProtocolName::Gossip]
        {
            let data_dir = dir.path().join(protocol.as_str());
            let done = restore(&config(data_dir.clone(), protocol), &file).unwrap();
            assert_eq!((done.index, done.keys, done.revision), (5, 5, 6));
            let (_, recovered) = FileStore::open(&data_dir, FileStoreOptions::default()).unwrap();
            let snapshot = recovered.snapshot.unwrap();
            assert_eq!(snapshot.meta.index, 5);
            assert_eq!(snapshot.meta.membership.voters.len(), 3);
            assert!(recovered.hard_state.is_none());
            assert!(!data_dir.join(STAGING).exists());
            if protocol == ProtocolName::Gossip {
                let image = Image::from_entry(&recovered.entries[0]).unwrap().unwrap();
                assert_eq!(image.entries.len(), 5);
                assert_eq!(recovered.entries[0].index, 6);
            } else {
                assert!(recovered.entries.is_empty());
            }
        }
    }

    #[test]
    fn a_non_empty_data_dir_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = snapshot_file(dir.path(), 1);
        let data_dir = dir.path().join("node");
        std::fs::create_dir_all(data_dir.join("wal")).unwrap();
        let error = restore(&config(data_dir.clone(), ProtocolName::Raft), &file).unwrap_err();
        assert!(matches!(error, RestoreError::Refused(_)));
        assert!(error.to_string().contains("is not empty (it holds wal)"), "{error}");
        assert!(!data_dir.join("snap").exists());
    }

    #[test]
    fn a_damaged_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = snapshot_file(dir.path(), 3);
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let data_dir = dir.path().join("node");
        let error = restore(&config(data_dir.clone(), ProtocolName::Raft), &file).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("backup.db") && text.contains("checksum mismatch"), "{text}");
        assert!(!data_dir.exists(), "nothing is created for a refused file");
    }
}
