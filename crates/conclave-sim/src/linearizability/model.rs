//! The register model the search runs: each key is one register, and each operation is
//! compiled, together with what it returned, into a [`Step`] on the register's state.
//!
//! Values are interned into small integers. Values nobody ever observes (no read returned them,
//! no compare-and-swap expected them) are indistinguishable to every later operation, so they
//! all become one state, [`UNOBSERVED`]: fewer distinct states means more memo hits.

use super::history::{Call, Operation, Output};
use std::collections::HashMap;

/// Register state: [`ABSENT`], [`UNOBSERVED`], or an interned observed value.
pub(crate) type State = u32;
pub(crate) const ABSENT: State = 0;
pub(crate) const UNOBSERVED: State = 1;

/// What one operation does to the register, with its output already folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    /// A put or delete (completed or not): the register becomes `to`.
    Write { to: State },
    /// A completed read that returned `expect`.
    Read { expect: State },
    /// A compare-and-swap that succeeded, or a timed-out one taking effect.
    Swap { expect: State, to: State },
    /// A compare-and-swap that failed: the register did not hold `not`.
    Refuse { not: State },
}

impl Step {
    /// The state after this step from `state`, or `None` if its output rules `state` out.
    pub(crate) fn apply(self, state: State) -> Option<State> {
        match self {
            Self::Write { to } => Some(to),
            Self::Read { expect } => (state == expect).then_some(state),
            Self::Swap { expect, to } => (state == expect).then_some(to),
            Self::Refuse { not } => (state != not).then_some(state),
        }
    }

    /// The state this step may write.
    pub(crate) fn writes(self) -> Option<State> {
        match self {
            Self::Write { to } | Self::Swap { to, .. } => Some(to),
            Self::Read { .. } | Self::Refuse { .. } => None,
        }
    }
}

/// Maps values to register states, sending every unobserved value to [`UNOBSERVED`].
#[derive(Debug)]
pub(crate) struct Interner {
    ids: HashMap<String, State>,
    count: usize,
}

impl Interner {
    /// Interns every value some operation observes.
    pub(crate) fn observed_values(ops: &[&Operation]) -> Self {
        let mut interner = Self { ids: HashMap::new(), count: 2 };
        for op in ops {
            let observed = match (&op.call, &op.output) {
                (_, Some(Output::Get { value: Some(v) })) => Some(v),
                (Call::Cas { expected: Some(v), .. }, _) => Some(v),
                _ => None,
            };
            if let Some(v) = observed
                && !interner.ids.contains_key(v)
            {
                interner.ids.insert(v.clone(), interner.count as State);
                interner.count += 1;
            }
        }
        interner
    }

    pub(crate) fn state_of(&self, value: Option<&str>) -> State {
        match value {
            None => ABSENT,
            Some(v) => self.ids.get(v).copied().unwrap_or(UNOBSERVED),
        }
    }

    /// How many distinct states there are.
    pub(crate) fn states(&self) -> usize {
        self.count
    }

    /// Compiles an operation; a timed-out compare-and-swap becomes the step it takes if it
    /// took effect (if it did not, it is simply never linearized).
    pub(crate) fn step(&self, op: &Operation) -> Step {
        match (&op.call, &op.output) {
            (Call::Put { value }, _) => Step::Write { to: self.state_of(Some(value)) },
            (Call::Delete, _) => Step::Write { to: ABSENT },
            (Call::Get, Some(Output::Get { value })) => {
                Step::Read { expect: self.state_of(value.as_deref()) }
            }
            (Call::Cas { expected, .. }, Some(Output::Cas { succeeded: false })) => {
                Step::Refuse { not: self.state_of(expected.as_deref()) }
            }
            (Call::Cas { expected, new }, _) => Step::Swap {
                expect: self.state_of(expected.as_deref()),
                to: self.state_of(Some(new)),
            },
            // Validation guarantees a completed get has a get output, and timed-out gets are
            // dropped before the search.
            (Call::Get, _) => unreachable!("a get without a get output reached the search"),
        }
    }
}

/// The register's real value after `ops` in order, for reports (states merge unobserved values).
pub(crate) fn replay<'a>(
    initial: Option<&String>,
    ops: impl IntoIterator<Item = &'a Operation>,
) -> Option<String> {
    let mut value = initial.cloned();
    for op in ops {
        match (&op.call, &op.output) {
            (Call::Put { value: v }, _) => value = Some(v.clone()),
            (Call::Delete, _) => value = None,
            (Call::Cas { new, .. }, Some(Output::Cas { succeeded: true }) | None) => {
                value = Some(new.clone());
            }
            _ => {}
        }
    }
    value
}
