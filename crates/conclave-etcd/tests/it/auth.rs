//! The Auth service and the checks on KV, Watch, Lease and Maintenance, over the gRPC API:
//! tokens, their invalidation, etcd's codes and messages, and per-service rules.

use crate::support::TestServer;
use bytes::Bytes;
use conclave_etcd::pb::authpb::{Permission, UserAddOptions, permission::Type as PermType};
use conclave_etcd::pb::etcdserverpb::auth_client::AuthClient;
use conclave_etcd::pb::etcdserverpb::watch_request::RequestUnion;
use conclave_etcd::pb::etcdserverpb::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `message` carrying `token` in the metadata, as clientv3 sends it.
fn with<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("token", token.parse().unwrap());
    request
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("refused");
    assert_eq!((status.code(), status.message()), (code, message), "{status:?}");
}

const USER_EMPTY: &str = "etcdserver: user name is empty";
const DENIED: &str = "etcdserver: permission denied";
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";

async fn authenticate(auth: &mut AuthClient<Channel>, name: &str, password: &str) -> String {
    let request = AuthenticateRequest { name: name.into(), password: password.into() };
    auth.authenticate(request).await.unwrap().into_inner().token
}

/// root (password `rootpw`) and `reader` (`readerpw`, read on the prefix `app/`), auth on.
async fn setup(server: &TestServer) -> AuthClient<Channel> {
    let mut auth = AuthClient::new(server.channel().await);
    for (name, password) in [("root", "rootpw"), ("reader", "readerpw")] {
        let request = AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            ..Default::default()
        };
        auth.user_add(request).await.unwrap();
    }
    auth.user_grant_role(AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() })
        .await
        .unwrap();
    auth.role_add(AuthRoleAddRequest { name: "ro".into() }).await.unwrap();
    let perm =
        Permission { perm_type: PermType::Read as i32, key: b("app/"), range_end: b("app0") };
    auth.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: "ro".into(),
        perm: Some(perm),
    })
    .await
    .unwrap();
    auth.user_grant_role(AuthUserGrantRoleRequest { user: "reader".into(), role: "ro".into() })
        .await
        .unwrap();
    assert_refused(
        auth.authenticate(AuthenticateRequest { name: "root".into(), password: "rootpw".into() })
            .await,
        Code::FailedPrecondition,
        "etcdserver: authentication is not enabled",
    );
    auth.auth_enable(AuthEnableRequest {}).await.unwrap();
    auth
}

#[tokio::test]
async fn enable_needs_root_with_the_root_role() {
    let server = TestServer::start().await;
    let mut auth = AuthClient::new(server.channel().await);
    assert_refused(
        auth.auth_enable(AuthEnableRequest {}).await,
        Code::FailedPrecondition,
        "etcdserver: root user does not exist",
    );
    let root =
        AuthUserAddRequest { name: "root".into(), password: "pw".into(), ..Default::default() };
    auth.user_add(root).await.unwrap();
    assert_refused(
        auth.auth_enable(AuthEnableRequest {}).await,
        Code::FailedPrecondition,
        "etcdserver: root user does not have root role",
    );
    let empty = AuthUserAddRequest { name: String::new(), ..Default::default() };
    assert_refused(auth.user_add(empty).await, Code::InvalidArgument, USER_EMPTY);
    let status = auth.auth_status(AuthStatusRequest {}).await.unwrap().into_inner();
    assert!(!status.enabled);
    assert_eq!(status.auth_revision, 1);
}

#[tokio::test]
async fn tokens_speak_for_their_user_until_it_changes() {
    let server = TestServer::start().await;
    let mut auth = setup(&server).await;
    let mut kv = server.kv().await;
    let put = || PutRequest { key: b("app/k"), value: b("v"), ..Default::default() };

    assert_refused(kv.put(put()).await, Code::InvalidArgument, USER_EMPTY);
    assert_refused(kv.put(with("made-up.1", put())).await, Code::Unauthenticated, INVALID_TOKEN);
    assert_refused(
        auth.authenticate(AuthenticateRequest { name: "root".into(), password: "nope".into() })
            .await,
        Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );

    let root = authenticate(&mut auth, "root", "rootpw").await;
    let reader = authenticate(&mut auth, "reader", "readerpw").await;
    kv.put(with(&root, put())).await.unwrap();
    assert_refused(kv.put(with(&reader, put())).await, Code::PermissionDenied, DENIED);
    let get = || RangeRequest { key: b("app/k"), ..Default::default() };
    assert_eq!(kv.range(with(&reader, get())).await.unwrap().into_inner().kvs.len(), 1);
    let outside = RangeRequest { key: b("app/"), range_end: b("b"), ..Default::default() };
    assert_refused(kv.range(with(&reader, outside)).await, Code::PermissionDenied, DENIED);

    // Only root manages auth; a user may see itself.
    assert_refused(
        auth.user_list(with(&reader, AuthUserListRequest {})).await,
        Code::PermissionDenied,
        DENIED,
    );
    let me = AuthUserGetRequest { name: "reader".into() };
    assert_eq!(auth.user_get(with(&reader, me)).await.unwrap().into_inner().roles, ["ro"]);
    let other = AuthUserGetRequest { name: "root".into() };
    assert_refused(auth.user_get(with(&reader, other)).await, Code::PermissionDenied, DENIED);
    let role = AuthRoleGetRequest { role: "ro".into() };
    let perms = auth.role_get(with(&reader, role)).await.unwrap().into_inner().perm;
    assert_eq!(perms.len(), 1);
    assert_eq!(perms[0].key, b("app/"));

    // A password change voids the user's tokens; the new password works.
    let change = AuthUserChangePasswordRequest {
        name: "reader".into(),
        password: "newpw".into(),
        ..Default::default()
    };
    auth.user_change_password(with(&root, change)).await.unwrap();
    assert_refused(kv.range(with(&reader, get())).await, Code::Unauthenticated, INVALID_TOKEN);
    let reader = authenticate(&mut auth, "reader", "newpw").await;
    kv.range(with(&reader, get())).await.unwrap();

    // So does deleting the user — also once a user of that name is added again.
    auth.user_delete(with(&root, AuthUserDeleteRequest { name: "reader".into() })).await.unwrap();
    assert_refused(kv.range(with(&reader, get())).await, Code::Unauthenticated, INVALID_TOKEN);
    let again = AuthUserAddRequest {
        name: "reader".into(),
        password: "newpw".into(),
        ..Default::default()
    };
    auth.user_add(with(&root, again)).await.unwrap();
    assert_refused(kv.range(with(&reader, get())).await, Code::Unauthenticated, INVALID_TOKEN);

    // Disabling auth opens everything; enabling it again voids every older token.
    auth.auth_disable(with(&root, AuthDisableRequest {})).await.unwrap();
    kv.put(put()).await.unwrap();
    auth.auth_enable(AuthEnableRequest {}).await.unwrap();
    assert_refused(kv.put(with(&root, put())).await, Code::Unauthenticated, INVALID_TOKEN);
    let root = authenticate(&mut auth, "root", "rootpw").await;
    kv.put(with(&root, put())).await.unwrap();
    assert_refused(
        auth.user_delete(with(&root, AuthUserDeleteRequest { name: "root".into() })).await,
        Code::InvalidArgument,
        "etcdserver: invalid auth management",
    );
}

#[tokio::test]
async fn users_without_passwords_cannot_authenticate() {
    let server = TestServer::start().await;
    let mut auth = setup(&server).await;
    let root = authenticate(&mut auth, "root", "rootpw").await;
    let add = AuthUserAddRequest {
        name: "svc".into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    };
    auth.user_add(with(&root, add)).await.unwrap();
    let login = AuthenticateRequest { name: "svc".into(), password: String::new() };
    assert_refused(
        auth.authenticate(login).await,
        Code::InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password",
    );
    let empty = AuthUserAddRequest { name: "x".into(), ..Default::default() };
    assert_eq!(auth.user_add(with(&root, empty)).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn txn_watch_lease_and_maintenance_are_checked() {
    let server = TestServer::start().await;
    let mut auth = setup(&server).await;
    let root = authenticate(&mut auth, "root", "rootpw").await;
    let reader = authenticate(&mut auth, "reader", "readerpw").await;
    let mut kv = server.kv().await;

    // A txn needs read on its compares and what each op needs, in both branches.
    let read_op = |key: &str| RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: b(key),
            ..Default::default()
        })),
    };
    let put_op = |key: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b(key),
            ..Default::default()
        })),
    };
    let reads = TxnRequest {
        compare: vec![Compare { key: b("app/a"), ..Default::default() }],
        success: vec![read_op("app/a")],
        failure: vec![read_op("app/b")],
    };
    kv.txn(with(&reader, reads.clone())).await.unwrap();
    let sneaky = TxnRequest { failure: vec![put_op("app/b")], ..reads.clone() };
    assert_refused(kv.txn(with(&reader, sneaky.clone())).await, Code::PermissionDenied, DENIED);
    kv.txn(with(&root, sneaky)).await.unwrap();
    let compare_outside =
        TxnRequest { compare: vec![Compare { key: b("secret"), ..Default::default() }], ..reads };
    assert_refused(kv.txn(with(&reader, compare_outside)).await, Code::PermissionDenied, DENIED);
    let compact = CompactionRequest { revision: 1, physical: false };
    assert_refused(kv.compact(with(&reader, compact)).await, Code::PermissionDenied, DENIED);

    // Watch: a create outside the user's permissions is answered canceled.
    let mut watch = server.watch().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut stream =
        watch.watch(with(&reader, tokio_stream::wrappers::ReceiverStream::new(rx))).await.unwrap();
    let create = |key: &str, end: &str| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b(key),
            range_end: b(end),
            ..Default::default()
        })),
    };
    tx.send(create("secret", "")).await.unwrap();
    let refused = stream.get_mut().message().await.unwrap().unwrap();
    assert!(refused.created && refused.canceled, "{refused:?}");
    assert_eq!(refused.cancel_reason, DENIED);
    tx.send(create("app/", "app0")).await.unwrap();
    let created = stream.get_mut().message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");

    // Leases: a user is needed; revoking needs write on the attached keys.
    let mut lease = server.lease().await;
    let grant = || LeaseGrantRequest { ttl: 60, id: 0 };
    assert_refused(lease.lease_grant(grant()).await, Code::InvalidArgument, USER_EMPTY);
    let id = lease.lease_grant(with(&reader, grant())).await.unwrap().into_inner().id;
    let attach = PutRequest { key: b("app/leased"), lease: id, ..Default::default() };
    kv.put(with(&root, attach)).await.unwrap();
    let revoke = LeaseRevokeRequest { id };
    assert_refused(lease.lease_revoke(with(&reader, revoke)).await, Code::PermissionDenied, DENIED);
    let ttl = LeaseTimeToLiveRequest { id, keys: true };
    assert_refused(lease.lease_time_to_live(ttl).await, Code::InvalidArgument, USER_EMPTY);
    let ttl = LeaseTimeToLiveRequest { id, keys: true };
    let answer = lease.lease_time_to_live(with(&reader, ttl)).await.unwrap().into_inner();
    assert_eq!(answer.keys, [b("app/leased")]);
    lease.lease_revoke(with(&root, revoke)).await.unwrap();

    // Maintenance: status for anyone, hashes and snapshots for root.
    let mut maintenance = server.maintenance().await;
    maintenance.status(StatusRequest {}).await.unwrap();
    assert_refused(
        maintenance.hash_kv(with(&reader, HashKvRequest { revision: 0 })).await,
        Code::PermissionDenied,
        DENIED,
    );
    assert_refused(
        maintenance.snapshot(SnapshotRequest {}).await.map(|_| ()),
        Code::InvalidArgument,
        USER_EMPTY,
    );
    maintenance.hash_kv(with(&root, HashKvRequest { revision: 0 })).await.unwrap();
}
