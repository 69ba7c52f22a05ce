//! Integration tests of conclave-storage: the conformance suite against both stores, crash
//! recovery and corruption handling of the file store, and the memory store's power loss.

mod conformance;
mod crash;
mod file_store;
mod mem_store;
mod support;
