//! Writes the seed corpus of every fuzz target into this crate's `corpus/` directory, from
//! the real encoders. Run it after a change to any encoded format, then commit the files:
//!
//! ```text
//! cargo run -p conclave-fuzz --bin conclave-fuzz-corpus
//! ```

use conclave_fuzz::{corpus, seeds, targets};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut written = 0;
    let mut targets_done = Vec::new();
    for (target, seeds) in seeds::all() {
        if let Err(e) = corpus::write_to(&corpus::dir(target), &seeds) {
            eprintln!("conclave-fuzz-corpus: cannot write the {target} corpus: {e}");
            return ExitCode::FAILURE;
        }
        written += seeds.len();
        targets_done.push(format!("{target} ({})", seeds.len()));
    }
    let wal = match seeds::wal::seeds() {
        Ok(seeds) => seeds,
        Err(e) => {
            eprintln!("conclave-fuzz-corpus: cannot write the scenario logs: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = corpus::write_to(&corpus::dir(targets::wal::TARGET), &wal) {
        eprintln!("conclave-fuzz-corpus: cannot write the wal corpus: {e}");
        return ExitCode::FAILURE;
    }
    written += wal.len();
    targets_done.push(format!("{} ({})", targets::wal::TARGET, wal.len()));
    println!(
        "wrote {written} seeds under {}: {}",
        corpus::root().display(),
        targets_done.join(", ")
    );
    ExitCode::SUCCESS
}
