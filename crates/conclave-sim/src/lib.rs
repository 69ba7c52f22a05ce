//! Deterministic simulator, invariant checkers and linearizability checker for every protocol.
