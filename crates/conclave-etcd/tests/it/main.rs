//! Integration tests of the etcd v3 API over a fake in-process consensus: each test starts the
//! services on 127.0.0.1:0 and talks to them with the generated tonic clients (and, where it is
//! installed, with the real `etcdctl`).

mod auth;
mod cluster;
mod etcdctl;
mod gossip;
mod kv;
mod lease;
mod limits;
mod metrics;
mod support;
mod watch;
