//! The live progress line of a run, on stderr: rewritten in place on a terminal, plain lines
//! every few seconds otherwise (so logs and CI output stay readable).

use crate::history::Recorder;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What the line shows besides the counts: the fault in force, if any.
pub type Status = Arc<Mutex<String>>;

/// Prints progress until `until` (plus the drain of requests in flight), then clears the line.
pub async fn report(
    label: String,
    recorder: Arc<Recorder>,
    status: Status,
    duration: Duration,
    until: Instant,
) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty { Duration::from_millis(500) } else { Duration::from_secs(5) };
    let mut last = (0usize, Instant::now());
    loop {
        // The last line falls on the end of the workload, not up to a period after it.
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(every.min(left).max(Duration::from_millis(10))).await;
        let now = Instant::now();
        let (total, failed) = recorder.counts();
        let rate = (total - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (total, now);
        let elapsed = recorder.start().elapsed().min(duration);
        let fault = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let line = format!(
            "{label} {:>5.1}/{:.0}s  ops {total}  failed {failed}  {rate:>7.0} op/s  {fault}",
            elapsed.as_secs_f64(),
            duration.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        if now >= until {
            if tty {
                let _ = writeln!(err);
            }
            return;
        }
    }
}

/// One plain line of news (a phase of the run), on its own line.
pub fn note(message: &str) {
    let mut err = std::io::stderr().lock();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2K");
    }
    let _ = writeln!(err, "{message}");
}
