//! The lab: local clusters of real `conclaved` processes on loopback, and the A/B runs that
//! compare protocols with each other and with a real etcd under one workload and one fault
//! schedule, check what clients saw, and write a report.
//!
//! [`cluster::Cluster`] is shared by the `up` command and by the end-to-end tests of the
//! server, so that what the tests exercise is exactly what users start. The A/B pipeline, in
//! the order a run goes through it: [`options`] → [`ab`] (targets and runs) → [`run`] (one
//! target: [`target`] with [`proxy`] and [`etcd`], [`drive`] with [`workload`] and [`kv`],
//! [`faults`], [`scrape`], [`progress`], [`convergence`]) → [`history`] → [`analysis`] and
//! [`stats`] → [`results`] → [`report`] and [`plots`]. [`check`] judges a saved history. [`bench`] measures
//! throughput and latency of every protocol next to etcd's.

pub mod ab;
pub mod analysis;
pub mod bench;
pub mod bench_conn;
pub mod bench_load;
pub mod bench_machine;
pub mod bench_options;
pub mod bench_plot;
pub mod bench_report;
pub mod bench_scaling;
pub mod bench_target;
pub mod check;
pub mod client;
pub mod cluster;
pub mod convergence;
pub mod drive;
pub mod etcd;
pub mod faults;
pub mod history;
pub mod kv;
pub mod options;
pub mod plots;
pub mod progress;
pub mod proxy;
pub mod report;
pub mod results;
pub mod run;
pub mod scrape;
pub mod stats;
pub mod target;
pub mod workload;
