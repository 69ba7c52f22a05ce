//! The history format the linearizability checker reads: one record per client operation on a
//! single-key register.
//!
//! A [`History`] is what clients saw, not what the servers did. It serializes with serde (JSON
//! in the lab, kept in memory by the simulator), so the same checker judges simulated runs and
//! real client runs against a live cluster. The format, field by field:
//!
//! - `initial`: the value of each key before the first operation; keys not listed start absent.
//! - `operations`: in any order. Each has the `client` that issued it (informational), the `key`,
//!   the `call` (what was asked), `invoked_at` (when the client sent it), `completed_at` (when the
//!   client saw the answer) and `output` (what the answer said).
//!
//! Times are any monotone clock shared by all clients, in any unit (the simulator uses a global
//! event counter, the lab nanoseconds since the run started). An operation A precedes B in real
//! time only if `A.completed_at < B.invoked_at`; equal times count as concurrent.
//!
//! `completed_at: None` means the client gave up waiting (a timeout): the operation may have
//! taken effect at any time after `invoked_at`, or never, and its output is unknown, so `output`
//! must be `None` too. Operations known *not* to have taken effect (the server answered "not
//! the leader") must be left out of the history altogether.
//!
//! As JSON, one operation looks like:
//!
//! ```json
//! {"client": 2, "key": "k1", "call": {"Cas": {"expected": "v7", "new": "v9"}},
//!  "invoked_at": 1200, "completed_at": 1250, "output": {"Cas": {"succeeded": true}}}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a client observed on a replicated key-value store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Values present before the first operation; unlisted keys start absent.
    #[serde(default)]
    pub initial: BTreeMap<String, String>,
    /// Every operation whose effect is applied or unknown, in any order.
    pub operations: Vec<Operation>,
}

/// One client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client that issued it; used only in reports.
    pub client: u64,
    pub key: String,
    pub call: Call,
    /// When the request was sent.
    pub invoked_at: u64,
    /// When the answer arrived; `None` if the client timed out.
    pub completed_at: Option<u64>,
    /// The answer; `None` exactly when `completed_at` is `None`.
    pub output: Option<Output>,
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Sets the key to `value`.
    Put { value: String },
    /// Reads the key.
    Get,
    /// Removes the key.
    Delete,
    /// Sets the key to `new` if it currently holds `expected` (`None`: if it is absent).
    Cas { expected: Option<String>, new: String },
}

/// What the store answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    Put,
    Get { value: Option<String> },
    Delete,
    Cas { succeeded: bool },
}

/// A history the checker cannot judge because it is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("operation {index} completed at {completed_at}, before it was invoked at {invoked_at}")]
    CompletedBeforeInvoked { index: usize, invoked_at: u64, completed_at: u64 },
    #[error("operation {index} completed but has no output")]
    MissingOutput { index: usize },
    #[error("operation {index} timed out but has an output; a timed-out output is unknown")]
    OutputWithoutCompletion { index: usize },
    #[error("operation {index} is a {call} but its output is a {output}")]
    OutputMismatch { index: usize, call: &'static str, output: &'static str },
}

impl Call {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Put { .. } => "put",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Cas { .. } => "cas",
        }
    }
}

impl Output {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get { .. } => "get",
            Self::Delete => "delete",
            Self::Cas { .. } => "cas",
        }
    }
}

impl Operation {
    /// Whether the client saw an answer.
    pub fn is_completed(&self) -> bool {
        self.completed_at.is_some()
    }
}

impl History {
    /// Checks that every operation is well formed.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, op) in self.operations.iter().enumerate() {
            match (op.completed_at, &op.output) {
                (Some(completed_at), _) if completed_at < op.invoked_at => {
                    return Err(HistoryError::CompletedBeforeInvoked {
                        index,
                        invoked_at: op.invoked_at,
                        completed_at,
                    });
                }
                (Some(_), None) => return Err(HistoryError::MissingOutput { index }),
                (None, Some(_)) => return Err(HistoryError::OutputWithoutCompletion { index }),
                (Some(_), Some(output)) if output.kind() != op.call.kind() => {
                    return Err(HistoryError::OutputMismatch {
                        index,
                        call: op.call.kind(),
                        output: output.kind(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Splits the history into one sub-history per key, in key order (P-compositionality:
    /// a history of independent registers is linearizable iff each register's is).
    pub fn by_key(&self) -> BTreeMap<&str, Vec<&Operation>> {
        let mut keys: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
        for op in &self.operations {
            keys.entry(op.key.as_str()).or_default().push(op);
        }
        keys
    }
}

impl std::fmt::Display for Operation {
    /// A compact one-line form for reports: `client 2 cas(k1, v7 -> v9) = true [1200, 1250]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "<absent>".into());
        write!(f, "client {} ", self.client)?;
        match &self.call {
            Call::Put { value } => write!(f, "put({}, {value})", self.key)?,
            Call::Get => write!(f, "get({})", self.key)?,
            Call::Delete => write!(f, "delete({})", self.key)?,
            Call::Cas { expected, new } => {
                write!(f, "cas({}, {} -> {new})", self.key, show(expected))?
            }
        }
        match &self.output {
            Some(Output::Get { value }) => write!(f, " = {}", show(value))?,
            Some(Output::Cas { succeeded }) => write!(f, " = {succeeded}")?,
            Some(Output::Put | Output::Delete) => write!(f, " = ok")?,
            None => write!(f, " = ?")?,
        }
        match self.completed_at {
            Some(done) => write!(f, " [{}, {done}]", self.invoked_at),
            None => write!(f, " [{}, timed out]", self.invoked_at),
        }
    }
}
