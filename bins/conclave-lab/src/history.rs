//! Recording what clients saw, and turning it into the checker's history.
//!
//! Every request becomes one [`OpRecord`] with its invocation and completion times (nanoseconds
//! since the run started, from one monotonic clock shared by all clients), the answer or the
//! error, and the endpoint it went to. [`to_history`] keeps what the linearizability checker
//! must see: every answered operation, and every write whose fate is unknown (a timeout, a
//! broken connection) as "timed out", i.e. possibly applied at any time after its invocation.
//! Failed reads constrain nothing, and writes refused for certain never happened, so both are
//! left out. The file `history-<target>.json` is exactly the checker's [`History`] in JSON.

use crate::kv::{Answer, ErrorKind};
use crate::workload::{OpKind, PlannedOp};
use conclave_sim::linearizability::{Call, History, Operation, Output};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// One request as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub client: u64,
    pub kind: OpKind,
    pub key: String,
    pub call: Call,
    pub endpoint: usize,
    pub invoked_ns: u64,
    pub completed_ns: u64,
    /// `Some` when answered.
    pub output: Option<Output>,
    pub error: Option<ErrorKind>,
}

impl OpRecord {
    pub fn ok(&self) -> bool {
        self.output.is_some()
    }

    pub fn latency_ns(&self) -> u64 {
        self.completed_ns.saturating_sub(self.invoked_ns)
    }

    /// A write (or compare-and-swap) that changed the store for certain: acknowledged put,
    /// successful compare-and-swap.
    pub fn is_acknowledged_write(&self) -> bool {
        matches!(self.output, Some(Output::Put) | Some(Output::Cas { succeeded: true }))
    }

    /// A write whose fate is unknown.
    pub fn is_indefinite_write(&self) -> bool {
        self.kind.may_write() && self.error.is_some_and(|e| !e.is_definite())
    }
}

/// The call a planned operation makes, as the checker models it.
pub fn call_of(op: &PlannedOp, expected: Option<&str>) -> Call {
    let tag = op.tag.clone().unwrap_or_default();
    match op.kind {
        OpKind::Read => Call::Get,
        OpKind::Write => Call::Put { value: tag },
        OpKind::Cas => Call::Cas { expected: expected.map(String::from), new: tag },
    }
}

/// Collects records from every client of one run.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    records: Mutex<Vec<OpRecord>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self { start, records: Mutex::new(Vec::new()) }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        client: u64,
        op: &PlannedOp,
        call: Call,
        endpoint: usize,
        invoked_ns: u64,
        completed_ns: u64,
        answer: Answer,
    ) {
        let (output, error) = match answer {
            Answer::Done(output) => (Some(output), None),
            Answer::Failed { kind, .. } => (None, Some(kind)),
        };
        let record = OpRecord {
            client,
            kind: op.kind,
            key: op.key.clone(),
            call,
            endpoint,
            invoked_ns,
            completed_ns,
            output,
            error,
        };
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(record);
    }

    /// How many requests were recorded so far, and how many of them failed.
    pub fn counts(&self) -> (usize, usize) {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        (records.len(), records.iter().filter(|r| !r.ok()).count())
    }

    /// Every record, sorted by invocation.
    pub fn take(&self) -> Vec<OpRecord> {
        let mut records =
            std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        records.sort_by_key(|r| (r.invoked_ns, r.client));
        records
    }
}

/// The checker's history of a run (see the module docs for what is kept).
pub fn to_history(records: &[OpRecord]) -> History {
    let operations = records
        .iter()
        .filter_map(|r| {
            if let Some(output) = &r.output {
                Some(Operation {
                    client: r.client,
                    key: r.key.clone(),
                    call: r.call.clone(),
                    invoked_at: r.invoked_ns,
                    completed_at: Some(r.completed_ns),
                    output: Some(output.clone()),
                })
            } else if r.is_indefinite_write() {
                Some(Operation {
                    client: r.client,
                    key: r.key.clone(),
                    call: r.call.clone(),
                    invoked_at: r.invoked_ns,
                    completed_at: None,
                    output: None,
                })
            } else {
                None
            }
        })
        .collect();
    History { initial: Default::default(), operations }
}

/// Writes a history as JSON.
pub fn save(history: &History, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    serde_json::to_writer(std::io::BufWriter::new(file), history)?;
    Ok(())
}

/// Reads a history written by [`save`] (or by anything else that follows the format).
pub fn load(path: &Path) -> anyhow::Result<History> {
    let file = std::fs::File::open(path)?;
    Ok(serde_json::from_reader(std::io::BufReader::new(file))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: OpKind, output: Option<Output>, error: Option<ErrorKind>) -> OpRecord {
        let call = match kind {
            OpKind::Read => Call::Get,
            _ => Call::Put { value: "c1-1".into() },
        };
        OpRecord {
            client: 1,
            kind,
            key: "k".into(),
            call,
            endpoint: 0,
            invoked_ns: 10,
            completed_ns: 20,
            output,
            error,
        }
    }

    #[test]
    fn history_keeps_answers_and_unknown_writes() {
        let records = vec![
            record(OpKind::Write, Some(Output::Put), None),
            record(OpKind::Write, None, Some(ErrorKind::Timeout)),
            record(OpKind::Write, None, Some(ErrorKind::Connect)),
            record(OpKind::Read, None, Some(ErrorKind::Timeout)),
            record(OpKind::Read, Some(Output::Get { value: None }), None),
        ];
        let history = to_history(&records);
        assert_eq!(history.operations.len(), 3);
        assert_eq!(history.operations[1].completed_at, None);
        assert!(history.validate().is_ok());
    }
}
