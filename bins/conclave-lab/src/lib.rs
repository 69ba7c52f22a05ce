//! The lab: local clusters of real `conclaved` processes on loopback, and (growing) the A/B
//! runs, fault injection and reports that compare protocols with each other and with etcd.
//!
//! [`cluster::Cluster`] is shared by the `up` command and by the end-to-end tests of the
//! server, so that what the tests exercise is exactly what users start.

pub mod client;
pub mod cluster;
