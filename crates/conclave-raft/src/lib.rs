//! Raft, as a deterministic IO-free state machine behind the conclave-core protocol interface.
