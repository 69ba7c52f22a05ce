//! The fuzz targets: what each feeds its code under test, and the properties it checks.
//!
//! Each module has a `fuzz*` function that runs one target under [`crate::runner::run`] with
//! the committed corpus, and the `check*` function that judges one input, which the tests also
//! call directly.

pub mod config;
pub mod etcd;
pub mod kv;
pub mod peer;
pub mod wal;
