//! A linearizability checker for key-value histories, usable on simulated and real client runs.
//!
//! The model is a set of independent registers, one per key, with put, get, delete and
//! compare-and-swap. A history is linearizable iff every key's sub-history is (Herlihy and
//! Wing's locality, which Porcupine calls P-compositionality), so each key is searched on its
//! own, in key order, and the first key without a linearization is reported.
//!
//! Per key the search is Wing and Gong's, over configurations (operations linearized so far,
//! register state) memoized as Lowe proposed, explored level by level so that configurations
//! that another one subsumes are dropped; the `search` module explains the reductions that keep
//! timed-out operations cheap. The history format is documented on [`History`].
//!
//! ```
//! use conclave_sim::linearizability::{check, Call, History, Operation, Output, Verdict};
//!
//! let put = Operation {
//!     client: 1, key: "k".into(), call: Call::Put { value: "a".into() },
//!     invoked_at: 0, completed_at: Some(10), output: Some(Output::Put),
//! };
//! // A read that starts after the put finished must see it.
//! let stale = Operation {
//!     client: 2, key: "k".into(), call: Call::Get,
//!     invoked_at: 20, completed_at: Some(30), output: Some(Output::Get { value: None }),
//! };
//! let history = History { initial: Default::default(), operations: vec![put, stale] };
//! assert!(matches!(check(&history).unwrap(), Verdict::NotLinearizable(_)));
//! ```

mod history;
mod model;
mod report;
mod search;

pub use history::{Call, History, HistoryError, Operation, Output};
pub use report::KeyViolation;

use search::KeyOutcome;

/// Limits on the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Give up on a key once this many configurations were created. Histories from a few
    /// clients need a few dozen per operation.
    pub max_configurations_per_key: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { max_configurations_per_key: 2_000_000 }
    }
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// The first key, in key order, whose history has no linearization.
    NotLinearizable(Box<KeyViolation>),
    /// The search for `key` hit the configuration budget before deciding.
    Inconclusive {
        key: String,
        configurations: usize,
    },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }
}

/// Checks `history` with the default options.
pub fn check(history: &History) -> Result<Verdict, HistoryError> {
    check_with(history, &CheckOptions::default())
}

/// Checks `history`, key by key in key order, stopping at the first key that fails.
pub fn check_with(history: &History, options: &CheckOptions) -> Result<Verdict, HistoryError> {
    history.validate()?;
    let mut inconclusive = None;
    for (key, ops) in history.by_key() {
        let initial = history.initial.get(key);
        match search::check_key(key, initial, &ops, options.max_configurations_per_key) {
            KeyOutcome::Linearizable => {}
            KeyOutcome::Violation(violation) => {
                return Ok(Verdict::NotLinearizable(violation));
            }
            KeyOutcome::GaveUp { configurations } => {
                inconclusive
                    .get_or_insert(Verdict::Inconclusive { key: key.to_string(), configurations });
            }
        }
    }
    Ok(inconclusive.unwrap_or(Verdict::Linearizable))
}

#[cfg(test)]
mod tests;
