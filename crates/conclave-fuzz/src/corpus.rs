//! The committed seed corpus: `corpus/<target>/` in this crate, one file per seed.
//!
//! The files are produced by the real encoders (`cargo run -p conclave-fuzz --bin
//! conclave-fuzz-corpus` rewrites them) and committed, so a run starts from the same valid
//! inputs everywhere and a reviewer can see what each target is fed.

use crate::runner::Seed;
use std::io;
use std::path::{Path, PathBuf};

/// This crate's corpus directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The directory of one target's seeds.
pub fn dir(target: &str) -> PathBuf {
    root().join(target)
}

/// Every file under `dir` (recursively), as seeds named by their path relative to `dir`, in
/// name order.
pub fn load_from(dir: &Path) -> io::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    collect(dir, dir, &mut seeds)?;
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(seeds)
}

fn collect(base: &Path, dir: &Path, seeds: &mut Vec<Seed>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(base, &path, seeds)?;
            continue;
        }
        let name = path
            .strip_prefix(base)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        seeds.push(Seed { name, bytes: std::fs::read(&path)? });
    }
    Ok(())
}

/// A target's committed seeds. Panics with the command that regenerates them when they are
/// missing, since a fuzz target without seeds would only feed noise.
pub fn load(target: &str) -> Vec<Seed> {
    let dir = dir(target);
    match load_from(&dir) {
        Ok(seeds) if !seeds.is_empty() => seeds,
        Ok(_) | Err(_) => panic!(
            "no seed corpus in {}; generate it with `cargo run -p conclave-fuzz --bin conclave-fuzz-corpus`",
            dir.display()
        ),
    }
}

/// Replaces the files of `dir` with `seeds` (each seed's name is its relative path).
pub fn write_to(dir: &Path, seeds: &[Seed]) -> io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for seed in seeds {
        let path = dir.join(&seed.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &seed.bytes)?;
    }
    Ok(())
}
