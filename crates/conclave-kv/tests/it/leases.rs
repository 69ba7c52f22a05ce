//! Leases: grant, attach, revoke (deleting the attached keys), checkpoints, listing.

use conclave_kv::{
    Command, EventKind, KvError, KvStore, LeaseInfo, MAX_LEASE_TTL, Output, PutRequest,
};
use std::sync::{Arc, Mutex};

use crate::support::{b, get, put, put_req};

fn grant(store: &mut KvStore, id: i64, ttl: i64) -> Result<i64, KvError> {
    match store.apply_command(&Command::LeaseGrant { id, ttl }) {
        Output::LeaseGrant { id, ttl: granted, .. } => {
            assert_eq!(granted, ttl);
            Ok(id)
        }
        Output::Error(e) => Err(e),
        other => panic!("unexpected output {other:?}"),
    }
}

fn revoke(store: &mut KvStore, id: i64) -> Output {
    store.apply_command(&Command::LeaseRevoke { id })
}

// Reference: etcd3 API, "Lease": LeaseGrant with ID 0 lets the server choose the id.
#[test]
fn grant_chooses_ids_deterministically() {
    let mut a = KvStore::new();
    let mut b_store = KvStore::new();
    let ids: Vec<i64> = (0..5).map(|_| grant(&mut a, 0, 10).unwrap()).collect();
    let same: Vec<i64> = (0..5).map(|_| grant(&mut b_store, 0, 10).unwrap()).collect();
    assert_eq!(ids, same);
    assert!(ids.iter().all(|&id| id > 0));
    assert_eq!(grant(&mut a, 42, 10), Ok(42));
    assert_eq!(grant(&mut a, 42, 10), Err(KvError::LeaseExists));
    assert_eq!(grant(&mut a, 43, MAX_LEASE_TTL + 1), Err(KvError::LeaseTtlTooLarge));
    assert_eq!(KvError::LeaseExists.to_string(), "etcdserver: lease already exists");
    assert_eq!(a.current_revision(), 1, "grants create no revision");
    let listed: Vec<i64> = a.leases().iter().map(|l| l.id).collect();
    let mut sorted = ids.clone();
    sorted.push(42);
    sorted.sort();
    assert_eq!(listed, sorted);
}

// Reference: etcd3 API, "Put": a lease that does not exist is refused.
#[test]
fn attach_move_and_detach() {
    let mut s = KvStore::new();
    let err = put_req(&mut s, PutRequest::new(b("k"), b("v")).with_lease(7)).unwrap_err();
    assert_eq!(err.to_string(), "etcdserver: requested lease not found");
    grant(&mut s, 7, 30).unwrap();
    grant(&mut s, 8, 30).unwrap();
    put_req(&mut s, PutRequest::new(b("k"), b("v")).with_lease(7)).unwrap();
    put_req(&mut s, PutRequest::new(b("j"), b("v")).with_lease(7)).unwrap();
    assert_eq!(get(&s, "k").unwrap().lease, 7);
    assert_eq!(
        s.lease(7),
        Some(LeaseInfo { id: 7, ttl: 30, remaining_ttl: 30, keys: vec![b("j"), b("k")] })
    );
    // ignore_lease keeps the lease; a plain put moves the key to its new lease or to none.
    let keep =
        PutRequest { key: b("k"), value: b("w"), ignore_lease: true, ..PutRequest::default() };
    put_req(&mut s, keep).unwrap();
    assert_eq!(get(&s, "k").unwrap().lease, 7);
    put_req(&mut s, PutRequest::new(b("k"), b("v")).with_lease(8)).unwrap();
    assert_eq!(s.lease(7).unwrap().keys, vec![b("j")]);
    assert_eq!(s.lease(8).unwrap().keys, vec![b("k")]);
    put(&mut s, "j", "no lease");
    assert!(s.lease(7).unwrap().keys.is_empty());
    assert_eq!(get(&s, "j").unwrap().lease, 0);
}

// Reference: etcd3 API, "Lease": revoking a lease deletes every key attached to it.
#[test]
fn revoke_deletes_attached_keys_in_one_revision() {
    let mut s = KvStore::new();
    grant(&mut s, 5, 10).unwrap();
    for key in ["b", "a", "c"] {
        put_req(&mut s, PutRequest::new(b(key), b("v")).with_lease(5)).unwrap();
    }
    put(&mut s, "free", "v"); // 5
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    s.set_event_listener(Box::new(move |rev, events| {
        sink.lock().unwrap().push((rev, events.to_vec()));
    }));
    assert_eq!(revoke(&mut s, 5), Output::LeaseRevoke { revision: 6 });
    assert_eq!(get(&s, "a"), None);
    assert_eq!(get(&s, "c"), None);
    assert!(get(&s, "free").is_some());
    assert_eq!(s.lease(5), None);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (rev, events) = &seen[0];
    assert_eq!(*rev, 6);
    let deleted: Vec<_> = events.iter().map(|e| (e.kind, e.kv.key.clone())).collect();
    assert_eq!(
        deleted,
        [(EventKind::Delete, b("a")), (EventKind::Delete, b("b")), (EventKind::Delete, b("c"))]
    );
    assert!(events.iter().all(|e| e.prev_kv.as_ref().unwrap().lease == 5));
}

#[test]
fn revoke_errors_and_empty_leases() {
    let mut s = KvStore::new();
    assert_eq!(revoke(&mut s, 9), Output::Error(KvError::LeaseNotFound));
    grant(&mut s, 9, 10).unwrap();
    assert_eq!(revoke(&mut s, 9), Output::LeaseRevoke { revision: 1 });
    assert_eq!(revoke(&mut s, 9), Output::Error(KvError::LeaseNotFound));
}

// Reference: etcd's LeaseCheckpoint: the remaining TTL is replicated so a new leader resumes it.
#[test]
fn checkpoints_record_the_remaining_ttl() {
    let mut s = KvStore::new();
    grant(&mut s, 3, 60).unwrap();
    let out = s.apply_command(&Command::LeaseCheckpoint { id: 3, remaining_ttl: 17 });
    assert_eq!(out, Output::LeaseCheckpoint { revision: 1 });
    assert_eq!(s.lease(3).unwrap().remaining_ttl, 17);
    assert_eq!(s.lease(3).unwrap().ttl, 60);
    let out = s.apply_command(&Command::LeaseCheckpoint { id: 4, remaining_ttl: 1 });
    assert_eq!(out, Output::Error(KvError::LeaseNotFound));
}

#[test]
fn deleting_a_key_detaches_it() {
    let mut s = KvStore::new();
    grant(&mut s, 1, 10).unwrap();
    put_req(&mut s, PutRequest::new(b("k"), b("v")).with_lease(1)).unwrap();
    crate::support::delete(&mut s, conclave_kv::DeleteRangeRequest::key(b("k")));
    assert!(s.lease(1).unwrap().keys.is_empty());
    // Revoking now deletes nothing and creates no revision.
    let rev = s.current_revision();
    assert_eq!(revoke(&mut s, 1), Output::LeaseRevoke { revision: rev });
}
