//! The fuzz targets, each run for `CONCLAVE_FUZZ_SECONDS` (default 10), the corpus checks,
//! regression tests for the bugs the targets found, and the etcd API's limits tested at and
//! just past each one against the real services.
//!
//! Run them in release mode: `cargo test --release -p conclave-fuzz`. Add `-- --nocapture`
//! to see each target's report (inputs run, accepted and rejected, peak allocation).

mod child;
mod config_env;
mod corpus;
mod fuzz;
mod limits;
mod regressions;
mod support;
