//! The machine's floor, measured next to every bench: how long one `fdatasync` of a 4 KiB
//! append takes in the data directory, and one TCP round trip on loopback. A replicated write
//! cannot be acknowledged faster than one round trip plus one sync.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

/// Percentiles of one probe, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Probe {
    fn of(mut samples_us: Vec<f64>) -> Self {
        samples_us.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if samples_us.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * samples_us.len() as f64 - 1e-9).ceil() as usize;
            samples_us[rank.clamp(1, samples_us.len()) - 1]
        };
        Self {
            samples: samples_us.len(),
            p50_us: at(50.0),
            p99_us: at(99.0),
            max_us: samples_us.last().copied().unwrap_or(0.0),
        }
    }
}

/// Both probes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    /// Append 4 KiB to a file in the bench's data directory, then `fdatasync` it.
    pub fdatasync: Probe,
    /// A 64-byte ping answered by a 64-byte pong over TCP on 127.0.0.1 (Nagle off).
    pub loopback_rtt: Probe,
}

/// Appends 4 KiB and syncs it `samples` times in a file under `dir`, which is removed after.
pub fn fdatasync(dir: &Path, samples: usize) -> anyhow::Result<Probe> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = vec![0x5au8; 4096];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Probe::of(times))
}

/// Times `samples` ping-pongs between two threads over a loopback TCP connection.
pub fn loopback_rtt(samples: usize) -> anyhow::Result<Probe> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => stream.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut stream = TcpStream::connect(addr).context("cannot connect on loopback")?;
    stream.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    // A few untimed round trips first, so both threads are awake and the path is warm.
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 50 {
        let started = Instant::now();
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        if i >= 50 {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(stream);
    let _ = echo.join();
    Ok(Probe::of(times))
}

/// Measures both probes.
pub fn measure(dir: &Path, fsync_samples: usize, rtt_samples: usize) -> anyhow::Result<Machine> {
    Ok(Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        fdatasync: fdatasync(dir, fsync_samples)?,
        loopback_rtt: loopback_rtt(rtt_samples)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_measure_something() {
        let dir = tempfile::tempdir().unwrap();
        let sync = fdatasync(dir.path(), 5).unwrap();
        assert_eq!(sync.samples, 5);
        assert!(sync.p50_us > 0.0 && sync.p50_us <= sync.max_us);
        assert!(!dir.path().join("fdatasync-probe").exists(), "the probe file is removed");
        let rtt = loopback_rtt(20).unwrap();
        assert_eq!(rtt.samples, 20);
        assert!(rtt.p50_us > 0.0 && rtt.p99_us <= rtt.max_us);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Probe::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50.0, 99.0, 100.0));
        assert_eq!(Probe::of(Vec::new()).samples, 0);
    }
}
