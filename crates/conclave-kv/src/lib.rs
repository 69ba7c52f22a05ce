//! The replicated state machine: an MVCC key-value store with etcd's revision semantics.
