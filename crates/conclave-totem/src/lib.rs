//! The Totem single-ring ordering and membership protocol, deterministic and IO-free.
