//! Scuttlebutt anti-entropy replication with hybrid logical clocks, deterministic and IO-free.
