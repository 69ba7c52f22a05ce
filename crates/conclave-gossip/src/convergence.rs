//! Measured convergence: how long this replica's writes take to reach every live member.
//!
//! A write has converged when every member this replica considers live has acknowledged (in
//! a digest) holding it or something newer from this origin. The tracker keeps the tick of
//! each own write until then; a replica with no live peer measures nothing, since nobody else
//! holds its writes.

use crate::hlc::Hlc;
use std::collections::BTreeMap;

/// Own writes tracked at most; beyond this the oldest are dropped unmeasured.
const TRACKED_MAX: usize = 65_536;

#[derive(Clone, Debug, Default)]
pub struct Convergence {
    pending: BTreeMap<Hlc, u64>,
    last_ticks: u64,
    converged_total: u64,
    ticks_total: u64,
}

impl Convergence {
    pub fn wrote(&mut self, hlc: Hlc, tick: u64) {
        if self.pending.len() >= TRACKED_MAX {
            self.pending.pop_first();
        }
        self.pending.insert(hlc, tick);
    }

    pub fn is_waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Every live member now covers this origin through `acked_by_all`.
    pub fn acknowledged(&mut self, acked_by_all: Hlc, now_tick: u64) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > acked_by_all {
                break;
            }
            let ticks = now_tick - entry.remove();
            self.last_ticks = ticks;
            self.converged_total += 1;
            self.ticks_total += ticks;
        }
    }

    /// Ticks the most recently converged write took.
    pub fn last_ticks(&self) -> u64 {
        self.last_ticks
    }

    pub fn converged_total(&self) -> u64 {
        self.converged_total
    }

    /// Sum of the ticks of every converged write (with `converged_total`, the mean).
    pub fn ticks_total(&self) -> u64 {
        self.ticks_total
    }
}
