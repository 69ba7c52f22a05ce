//! The etcd API's limits, each tested at the limit and just past it against the real services
//! on loopback: the answer carries etcd's code and text (or, for connections and streams, what
//! gRPC clients see of a refused one), and the server keeps serving.

mod connections;
mod lease_ttl;
mod leases;
mod range;
mod request_bytes;
mod streams;
mod txn_ops;
mod watchers;
