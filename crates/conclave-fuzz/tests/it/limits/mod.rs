//! The etcd API's limits, each tested at the limit and just past it against the real services
//! on loopback: the answer carries etcd's code and text, and the server keeps serving.

mod lease_ttl;
mod range;
mod request_bytes;
mod txn_ops;
mod watchers;
