//! The search for a linearization of one key's operations.
//!
//! A configuration is what Wing and Gong's search carries and Lowe's memo caches: the set of
//! operations linearized so far and the register's state after them. An operation may be
//! linearized next only if every operation that returned before it was invoked already is.
//! The search is run breadth first, one level per completed operation linearized, and each
//! level keeps every configuration at most once (Lowe's memo). The key is linearizable iff the
//! last level is reached; if a level comes out empty, the deepest one explains the violation.
//!
//! A timed-out operation has no return, so nothing forces it into the linearization: leaving
//! it out means it never took effect (or took effect after everything observed). A timed-out
//! read constrains nothing and is dropped. Left alone, each timed-out write would double the
//! configurations (taken effect or not), so four reductions, none of which loses a
//! linearization, keep levels narrow:
//!
//! - Values nobody ever observes are one register state (see `model`).
//! - Timed-out operations with the same effect (say, puts of unobserved values) are
//!   interchangeable once invoked, so they may only take effect in invocation order, turning
//!   2^k subsets into k + 1 prefixes. A timed-out operation that would not change the state is
//!   never applied: not applying it leaves strictly more options.
//! - A timed-out compare-and-swap whose expected value is gone for good (not the current state,
//!   and every operation that could write it already linearized) can never take effect again,
//!   so it counts as used up whether it took effect or not.
//! - Subsumption: of two configurations with the same completed operations and state, the one
//!   whose used-up timed-out operations are a subset of the other's has every option the other
//!   has, so the other is dropped. Breadth first, this is exact whatever order routes arrive in.

use super::history::{Call, Operation};
use super::model::{Interner, State, Step, replay};
use super::report::KeyViolation;
use conclave_core::DetRng;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const NIL: u32 = u32::MAX;

/// Result of searching one key.
#[derive(Debug)]
pub(crate) enum KeyOutcome {
    Linearizable,
    Violation(Box<KeyViolation>),
    /// More configurations than the budget allows were needed.
    GaveUp {
        configurations: usize,
    },
}

/// Checks one key's operations against a register that starts at `initial`.
pub(crate) fn check_key(
    key: &str,
    initial: Option<&String>,
    all_ops: &[&Operation],
    max_configurations: usize,
) -> KeyOutcome {
    let last_return = all_ops.iter().filter_map(|op| op.completed_at).max().unwrap_or(0);
    // Timed-out reads constrain nothing; timed-out operations invoked after every answer was
    // seen can always be placed last, where they constrain nothing either.
    let mut ops: Vec<&Operation> = all_ops
        .iter()
        .copied()
        .filter(|op| op.is_completed() || (op.call != Call::Get && op.invoked_at <= last_return))
        .collect();
    if ops.iter().all(|op| !op.is_completed()) {
        return KeyOutcome::Linearizable;
    }
    let interner = Interner::observed_values(&ops);
    // Completed operations first, by invocation; then timed-out ones grouped by effect and by
    // invocation within a group, so that each group is a run.
    ops.sort_by_key(|op| {
        let timed_out = !op.is_completed();
        (timed_out, timed_out.then(|| interner.step(op)), op.invoked_at)
    });
    let search = Search::new(&ops, &interner, initial);
    match search.run(max_configurations) {
        Ok(None) => KeyOutcome::Linearizable,
        Ok(Some(deepest)) => {
            KeyOutcome::Violation(Box::new(search.explain(key, initial, &deepest)))
        }
        Err(configurations) => KeyOutcome::GaveUp { configurations },
    }
}

/// A bitset over operation numbers.
fn bit(set: &[u64], i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

fn set_bit(set: &mut [u64], i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

/// The level index is keyed by Zobrist hashes, already uniform, so it does not hash again.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("the level index is keyed by u64 only");
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn mix(state: State) -> u64 {
    (u64::from(state) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

/// One configuration of the search.
#[derive(Clone, Debug)]
struct Config {
    /// Completed operations linearized (bit i: operation i).
    done: Box<[u64]>,
    /// Zobrist hash of `done` mixed with `state`.
    hash: u64,
    state: State,
    /// Timed-out operations used up: taken effect or dead (bit i: operation `completed + i`).
    used: Box<[u64]>,
    /// Every completed operation before this position, in return order, is linearized.
    low_ret: u32,
    /// Every completed operation numbered below this is linearized.
    low_done: u32,
    /// The last step of the path that led here, in `Search::path`.
    path: u32,
}

/// One level: its configurations, in the order they were found (so reports are
/// deterministic), and an index from (completed set, state) to them.
#[derive(Default)]
struct Level {
    configs: Vec<Option<Config>>,
    index: HashMap<u64, Vec<usize>, BuildHasherDefault<IdentityHasher>>,
}

impl Level {
    /// Adds `config` unless an existing one subsumes it; drops those it subsumes.
    fn insert(&mut self, config: Config) -> bool {
        let slots = self.index.entry(config.hash).or_default();
        let same = |c: &Config| c.state == config.state && c.done == config.done;
        for &slot in slots.iter() {
            if let Some(c) = &self.configs[slot]
                && same(c)
                && is_subset(&c.used, &config.used)
            {
                return false;
            }
        }
        slots.retain(|&slot| match &self.configs[slot] {
            Some(c) if same(c) && is_subset(&config.used, &c.used) => {
                self.configs[slot] = None;
                false
            }
            _ => true,
        });
        slots.push(self.configs.len());
        self.configs.push(Some(config));
        true
    }
}

/// The search over one key. Operations `0..completed` completed (in invocation order); the rest
/// timed out.
struct Search<'a> {
    ops: &'a [&'a Operation],
    steps: Vec<Step>,
    completed: usize,
    initial: State,
    /// Completed operations in return order.
    by_return: Vec<u32>,
    /// For a timed-out operation: the one before it in its group, which must be used first.
    predecessor: Vec<u32>,
    /// Per state: the operations that may write it.
    writers: Vec<Vec<u32>>,
    /// The timed-out compare-and-swaps: the operations that can die.
    swaps: Vec<u32>,
    /// A random number per completed operation, for Zobrist hashing.
    zobrist: Vec<u64>,
    /// Every step taken: (operation, previous step).
    path: std::cell::RefCell<Vec<(u32, u32)>>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [&'a Operation], interner: &Interner, initial: Option<&String>) -> Self {
        let steps: Vec<Step> = ops.iter().map(|op| interner.step(op)).collect();
        let completed = ops.iter().filter(|op| op.is_completed()).count();
        let mut by_return: Vec<u32> = (0..completed as u32).collect();
        by_return.sort_by_key(|&i| (ops[i as usize].completed_at, i));
        let mut predecessor = vec![NIL; ops.len()];
        for i in completed + 1..ops.len() {
            if steps[i] == steps[i - 1] {
                predecessor[i] = i as u32 - 1;
            }
        }
        let mut writers = vec![Vec::new(); interner.states()];
        for (i, step) in steps.iter().enumerate() {
            if let Some(to) = step.writes() {
                writers[to as usize].push(i as u32);
            }
        }
        let swaps = (completed..ops.len())
            .filter(|&i| matches!(steps[i], Step::Swap { .. }))
            .map(|i| i as u32)
            .collect();
        let mut rng = DetRng::new(0x11EA_817A_B1E5);
        let zobrist = (0..completed).map(|_| rng.next_u64()).collect();
        Self {
            ops,
            steps,
            completed,
            swaps,
            zobrist,
            initial: interner.state_of(initial.map(String::as_str)),
            by_return,
            predecessor,
            writers,
            path: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn step_path(&self, op: usize, parent: u32) -> u32 {
        let mut path = self.path.borrow_mut();
        path.push((op as u32, parent));
        path.len() as u32 - 1
    }

    fn is_linearized(&self, done: &[u64], used: &[u64], op: usize) -> bool {
        if op < self.completed { bit(done, op) } else { bit(used, op - self.completed) }
    }

    /// Marks as used every timed-out compare-and-swap that can no longer take effect.
    fn mark_dead(&self, done: &[u64], used: &mut [u64], state: State) {
        for &op in &self.swaps {
            let op = op as usize;
            let Step::Swap { expect, .. } = self.steps[op] else { continue };
            if state != expect
                && !bit(used, op - self.completed)
                && self.writers[expect as usize]
                    .iter()
                    .all(|&w| self.is_linearized(done, used, w as usize))
            {
                set_bit(used, op - self.completed);
            }
        }
    }

    /// Runs the search: `Ok(None)` if linearizable, `Ok(Some(deepest level's first
    /// configuration))` if not, `Err(count)` over budget.
    fn run(&self, max_configurations: usize) -> Result<Option<Config>, usize> {
        let timed_out = self.ops.len() - self.completed;
        let mut root = Config {
            done: vec![0; self.completed.div_ceil(64)].into_boxed_slice(),
            hash: mix(self.initial),
            state: self.initial,
            used: vec![0; timed_out.div_ceil(64)].into_boxed_slice(),
            low_ret: 0,
            low_done: 0,
            path: NIL,
        };
        self.mark_dead(&root.done, &mut root.used, root.state);
        let mut level = Level::default();
        level.insert(root);
        let mut configurations = 1usize;
        for _ in 0..self.completed {
            let mut next = Level::default();
            for config in level.configs.iter().flatten() {
                configurations += self.expand(config, &mut next);
            }
            if configurations > max_configurations {
                return Err(configurations);
            }
            if next.configs.iter().all(Option::is_none) {
                return Ok(level.configs.into_iter().flatten().next());
            }
            level = next;
        }
        Ok(None)
    }

    /// Adds to `next` every configuration with one more completed operation linearized,
    /// reachable from `from` by letting some timed-out operations take effect first.
    /// Returns how many configurations were created.
    fn expand(&self, from: &Config, next: &mut Level) -> usize {
        // The earliest return among completed operations not yet linearized: only operations
        // invoked by then may go next.
        let mut low_ret = from.low_ret as usize;
        while bit(&from.done, self.by_return[low_ret] as usize) {
            low_ret += 1;
        }
        let horizon = self.ops[self.by_return[low_ret] as usize].completed_at.unwrap_or(u64::MAX);
        let mut low_done = from.low_done as usize;
        while low_done < self.completed && bit(&from.done, low_done) {
            low_done += 1;
        }
        let candidates: Vec<usize> = (low_done..self.completed)
            .take_while(|&i| self.ops[i].invoked_at <= horizon)
            .filter(|&i| !bit(&from.done, i))
            .collect();
        let available: Vec<usize> = (self.completed..self.ops.len())
            .filter(|&i| self.ops[i].invoked_at <= horizon)
            .collect();

        // The states reachable by letting timed-out operations take effect, with what they
        // used up; each explored at most once, up to subsumption.
        let done_hash = from.hash ^ mix(from.state);
        let mut reached: Vec<(State, Box<[u64]>, u32)> =
            vec![(from.state, from.used.clone(), from.path)];
        let mut created = 0;
        let mut i = 0;
        while i < reached.len() {
            let (state, used, path) = reached[i].clone();
            i += 1;
            for &c in &candidates {
                let Some(after) = self.steps[c].apply(state) else { continue };
                let mut done = from.done.clone();
                set_bit(&mut done, c);
                let mut used = used.clone();
                self.mark_dead(&done, &mut used, after);
                let path = self.step_path(c, path);
                created += 1;
                next.insert(Config {
                    done,
                    hash: done_hash ^ self.zobrist[c] ^ mix(after),
                    state: after,
                    used,
                    low_ret: low_ret as u32,
                    low_done: low_done as u32,
                    path,
                });
            }
            for &p in &available {
                let slot = p - self.completed;
                let predecessor = self.predecessor[p];
                if bit(&used, slot)
                    || (predecessor != NIL && !bit(&used, predecessor as usize - self.completed))
                {
                    continue;
                }
                let Some(after) = self.steps[p].apply(state).filter(|&s| s != state) else {
                    continue;
                };
                let mut more = used.clone();
                set_bit(&mut more, slot);
                self.mark_dead(&from.done, &mut more, after);
                if reached.iter().any(|(s, u, _)| *s == after && is_subset(u, &more)) {
                    continue;
                }
                let path = self.step_path(p, path);
                reached.push((after, more, path));
            }
        }
        created
    }

    /// Describes the deepest configuration: the end of the longest linearizable prefix, the
    /// completed operation that had to come next but could not, and what was concurrent with it.
    fn explain(&self, key: &str, initial: Option<&String>, deepest: &Config) -> KeyViolation {
        let path = self.path.borrow();
        let mut prefix = Vec::new();
        let mut step = deepest.path;
        while step != NIL {
            prefix.push(path[step as usize].0 as usize);
            step = path[step as usize].1;
        }
        prefix.reverse();
        let value = replay(initial, prefix.iter().map(|&op| self.ops[op]));
        let stuck = self
            .by_return
            .iter()
            .map(|&i| i as usize)
            .find(|&i| !bit(&deepest.done, i))
            .expect("a failed search leaves a completed operation unlinearized");
        let horizon = self.ops[stuck].completed_at.unwrap_or(u64::MAX);
        let mut concurrent: Vec<Operation> = (0..self.ops.len())
            .filter(|&i| i != stuck && !self.is_linearized(&deepest.done, &deepest.used, i))
            .filter(|&i| self.ops[i].invoked_at <= horizon)
            .map(|i| self.ops[i].clone())
            .collect();
        concurrent.sort_by_key(|op| op.invoked_at);
        const SHOWN: usize = 8;
        let omitted = concurrent.len().saturating_sub(SHOWN);
        concurrent.truncate(SHOWN);
        let tail_start = prefix.len().saturating_sub(4);
        KeyViolation {
            key: key.to_string(),
            linearized_ops: prefix.len(),
            value_after_prefix: value.unwrap_or_else(|| "<absent>".into()),
            prefix_tail: prefix[tail_start..].iter().map(|&op| self.ops[op].clone()).collect(),
            stuck: Some(self.ops[stuck].clone()),
            concurrent,
            concurrent_omitted: omitted,
        }
    }
}
