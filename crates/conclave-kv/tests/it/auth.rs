//! Users, roles and permissions as replicated state: auth commands through `apply`, guarded
//! writes, and the auth state in snapshots (reference: etcd's auth store, `server/auth`).

use bytes::Bytes;
use conclave_core::{SnapshotMeta, StateMachine};
use conclave_kv::{
    Access, AuthCommand, AuthError, Command, KvError, KvStore, Output, PermType, Permission,
    PutRequest, prefix_range_end,
};

use crate::support::{b, get};

fn apply(store: &mut KvStore, command: &Command) -> Output {
    let index = store.applied_index() + 1;
    Output::decode(&store.apply(index, Some(&command.encode()))).unwrap()
}

fn auth(store: &mut KvStore, command: AuthCommand) -> Result<u64, KvError> {
    match apply(store, &Command::Auth(command)) {
        Output::Auth { auth_revision, .. } => Ok(auth_revision),
        Output::Error(error) => Err(error),
        other => panic!("unexpected output {other:?}"),
    }
}

/// root, and `app` with readwrite on the prefix `app/`; auth enabled.
fn secured() -> KvStore {
    let mut store = KvStore::new();
    for name in ["root", "app"] {
        let hash = Some(format!("$argon2id$fake${name}"));
        auth(&mut store, AuthCommand::UserAdd { name: name.into(), password_hash: hash }).unwrap();
    }
    let grant = |user: &str, role: &str| AuthCommand::UserGrantRole {
        user: user.into(),
        role: role.into(),
    };
    auth(&mut store, grant("root", "root")).unwrap();
    auth(&mut store, AuthCommand::RoleAdd { name: "rw".into() }).unwrap();
    let permission = Permission::new(PermType::ReadWrite, b("app/"), prefix_range_end(b"app/"));
    auth(&mut store, AuthCommand::RoleGrantPermission { role: "rw".into(), permission }).unwrap();
    auth(&mut store, grant("app", "rw")).unwrap();
    auth(&mut store, AuthCommand::Enable).unwrap();
    store
}

#[test]
fn auth_commands_change_no_key_revision() {
    let store = secured();
    // Seven auth commands applied; the key-value revision is still the empty store's.
    assert_eq!(store.current_revision(), 1);
    assert!(store.auth().is_enabled());
    assert_eq!(store.auth().revision(), 7);
    assert_eq!(store.auth().user_names(), ["app", "root"]);
    assert_eq!(store.auth().check("app", Access::Write, b"app/x", b""), Ok(()));
    assert_eq!(
        store.auth().check("app", Access::Write, b"other", b""),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn refused_auth_commands_change_nothing() {
    let mut store = secured();
    let snapshot = store.snapshot();
    let refusals = [
        (AuthCommand::UserDelete { name: "root".into() }, AuthError::InvalidAuthMgmt),
        (AuthCommand::UserDelete { name: "ghost".into() }, AuthError::UserNotFound),
        (AuthCommand::RoleDelete { name: "ghost".into() }, AuthError::RoleNotFound),
        (AuthCommand::RoleAdd { name: "rw".into() }, AuthError::RoleAlreadyExist),
    ];
    for (command, error) in refusals {
        assert_eq!(auth(&mut store, command), Err(KvError::Auth(error)));
    }
    // Only the applied index moved.
    let mut expected = KvStore::new();
    expected
        .restore(&SnapshotMeta { index: store.applied_index(), ..Default::default() }, &snapshot)
        .unwrap();
    assert_eq!(expected.snapshot(), store.snapshot());
}

// Reference: etcd's apply-time check of the auth revision in the request header
// (`ErrAuthOldRevision`): a permission revoked after the check must not be overlooked.
#[test]
fn guarded_writes_apply_only_at_the_revision_they_were_checked_at() {
    let mut store = secured();
    let checked_at = store.auth().revision();
    let put = Command::Put(PutRequest::new(b("app/k"), b("v1")));
    assert!(matches!(apply(&mut store, &put.guarded(checked_at)), Output::Put(_)));
    assert_eq!(get(&store, "app/k").unwrap().value, b("v1"));

    // Auth changes between the check and the apply: the write is refused, nothing changes.
    let revoke = AuthCommand::RoleRevokePermission {
        role: "rw".into(),
        key: b("app/"),
        range_end: prefix_range_end(b"app/"),
    };
    auth(&mut store, revoke).unwrap();
    let revision = store.current_revision();
    let stale = Command::Put(PutRequest::new(b("app/k"), b("v2"))).guarded(checked_at);
    assert_eq!(apply(&mut store, &stale), Output::Error(KvError::Auth(AuthError::OldRevision)));
    assert_eq!(store.current_revision(), revision);
    assert_eq!(get(&store, "app/k").unwrap().value, b("v1"));

    // A guard inside a guard, or a guard around garbage, is refused.
    let nested = put.guarded(store.auth().revision()).guarded(store.auth().revision());
    assert!(matches!(apply(&mut store, &nested), Output::Error(KvError::Decode(_))));
    let garbage = Command::Guarded { auth_revision: 0, command: Bytes::from_static(b"\xff\xff") };
    assert!(matches!(apply(&mut store, &garbage), Output::Error(KvError::Decode(_))));
    assert!(!garbage.is_key_write());
    assert!(put.guarded(1).is_key_write());
}

#[test]
fn auth_state_travels_in_snapshots() {
    let store = secured();
    let mut replica = KvStore::new();
    let meta = SnapshotMeta { index: store.applied_index(), ..Default::default() };
    replica.restore(&meta, &store.snapshot()).unwrap();
    assert_eq!(replica.auth(), store.auth());
    assert_eq!(replica.auth().password_hash("app"), Some("$argon2id$fake$app"));
    assert_eq!(replica.snapshot(), store.snapshot());
}

#[test]
fn format_1_snapshots_restore_with_auth_off() {
    let mut store = KvStore::new();
    apply(&mut store, &Command::Put(PutRequest::new(b("k"), b("v"))));
    let current = store.snapshot();
    assert_eq!(current[0], 2, "the current snapshot format");
    // Format 1 is format 2 without the auth state at the end (5 bytes while it is empty).
    let mut old = current[..current.len() - 5].to_vec();
    old[0] = 1;
    let mut restored = KvStore::new();
    let meta = SnapshotMeta { index: store.applied_index(), ..Default::default() };
    restored.restore(&meta, &old).unwrap();
    assert_eq!(get(&restored, "k").unwrap().value, b("v"));
    assert!(!restored.auth().is_enabled());
    assert_eq!(restored.snapshot(), current);
    let mut unknown = current.to_vec();
    unknown[0] = 9;
    let error = KvStore::new().restore(&meta, &unknown).unwrap_err();
    assert_eq!(error, "kv snapshot format 9 is not one of the supported 1 and 2");
}
