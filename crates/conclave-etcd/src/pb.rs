//! The generated etcd v3 messages, services and clients (from `proto/`).

#![allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]

/// `package mvccpb`: keys and events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `package authpb`: users, roles and permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// `package etcdserverpb`: the KV, Watch, Lease, Cluster and Maintenance services.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
