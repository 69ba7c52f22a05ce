//! Durable log and hard state: a segmented write-ahead log with group commit, snapshots and a conformance suite.
