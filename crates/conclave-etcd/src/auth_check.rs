//! Who is calling, and whether they may: the checks every service makes once auth is on.
//!
//! A request names its caller with the `token` metadata (what `Authenticate` returned); while
//! auth is off every request is allowed and tokens are ignored, as in etcd. Once it is on, a
//! request without a token is refused with "user name is empty" wherever a user is needed, a
//! token this member did not issue (or that expired, or whose user changed password, was
//! deleted, or whose auth was disabled since) with "invalid auth token", and a user without the
//! permission with "permission denied".
//!
//! Reads are checked after their read barrier, against the same state they read. Writes are
//! checked against the member's auth state at revision R and proposed guarded with R
//! (`Command::Guarded`): if users or roles changed before the write applies, the store refuses
//! it and the check runs again on the newer state (a few times, then the client sees etcd's
//! "revision of auth store is old" and retries itself, as clientv3 does).

use bytes::Bytes;
use conclave_kv::{Access, AuthError, AuthState, Command, KvStore, Output};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::context::EtcdContext;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

/// The metadata key that carries the token (clientv3's `rpctypes.TokenFieldNameGRPC`).
pub const TOKEN_METADATA: &str = "token";

/// How often a guarded write is checked and proposed again after the auth state moved on.
const GUARD_ATTEMPTS: usize = 3;

/// The gRPC status etcd answers for an auth refusal.
pub fn auth_status(error: &AuthError) -> Status {
    let code = match error {
        AuthError::UserEmpty
        | AuthError::RoleEmpty
        | AuthError::AuthFailed
        | AuthError::InvalidAuthMgmt
        | AuthError::OldRevision => Code::InvalidArgument,
        AuthError::PermissionDenied => Code::PermissionDenied,
        AuthError::InvalidAuthToken => Code::Unauthenticated,
        AuthError::RootUserNotExist
        | AuthError::RootRoleNotExist
        | AuthError::UserAlreadyExist
        | AuthError::UserNotFound
        | AuthError::RoleAlreadyExist
        | AuthError::RoleNotFound
        | AuthError::RoleNotGranted
        | AuthError::PermissionNotGranted
        | AuthError::AuthNotEnabled => Code::FailedPrecondition,
    };
    Status::new(code, error.to_string())
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Auth is off: everything is allowed.
    Anyone,
    /// Auth is on and the request carries no token.
    Anonymous,
    /// Auth is on and the token names this user.
    User { name: String, root: bool },
}

impl Caller {
    /// The authenticated user's name; refuses an anonymous caller. `None` while auth is off.
    pub fn user(&self) -> Result<Option<&str>, Status> {
        match self {
            Self::Anyone => Ok(None),
            Self::Anonymous => Err(auth_status(&AuthError::UserEmpty)),
            Self::User { name, .. } => Ok(Some(name)),
        }
    }

    /// Refuses anyone but a holder of the root role (while auth is on).
    pub fn require_root(&self) -> Result<(), Status> {
        match self {
            Self::Anyone | Self::User { root: true, .. } => Ok(()),
            Self::Anonymous => Err(auth_status(&AuthError::UserEmpty)),
            Self::User { .. } => Err(auth_status(&AuthError::PermissionDenied)),
        }
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Self::Anyone | Self::User { root: true, .. })
    }

    /// Refuses unless the caller may access every key of every need.
    pub fn require(&self, auth: &AuthState, needs: &[Need]) -> Result<(), Status> {
        let Some(user) = self.user()? else { return Ok(()) };
        if self.is_root() {
            return Ok(());
        }
        for need in needs {
            auth.check(user, need.access, &need.key, &need.range_end)
                .map_err(|e| auth_status(&e))?;
        }
        Ok(())
    }
}

/// One range of keys a request touches, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    pub access: Access,
    pub key: Bytes,
    pub range_end: Bytes,
}

impl Need {
    pub fn read(key: &Bytes, range_end: &Bytes) -> Self {
        Self { access: Access::Read, key: key.clone(), range_end: range_end.clone() }
    }

    pub fn write(key: &Bytes, range_end: &Bytes) -> Self {
        Self { access: Access::Write, key: key.clone(), range_end: range_end.clone() }
    }
}

/// The rule "the caller may access every key of `needs`", for [`EtcdContext::authorize`] and
/// [`EtcdContext::propose_authorized`].
pub(crate) fn needs_rule(needs: &[Need]) -> impl Fn(&KvStore, &Caller) -> Result<(), Status> + '_ {
    move |store, caller| caller.require(store.auth(), needs)
}

/// What a range needs.
pub(crate) fn range_needs(request: &RangeRequest) -> Vec<Need> {
    vec![Need::read(&request.key, &request.range_end)]
}

/// What a put needs: write on the key, and read when it returns the previous value.
pub(crate) fn put_needs(request: &PutRequest) -> Vec<Need> {
    let mut needs = vec![Need::write(&request.key, &Bytes::new())];
    if request.prev_kv {
        needs.push(Need::read(&request.key, &Bytes::new()));
    }
    needs
}

/// What a delete needs: write on the range, and read when it returns the deleted values.
pub(crate) fn delete_needs(request: &DeleteRangeRequest) -> Vec<Need> {
    let mut needs = vec![Need::write(&request.key, &request.range_end)];
    if request.prev_kv {
        needs.push(Need::read(&request.key, &request.range_end));
    }
    needs
}

/// What a txn needs, as etcd's `checkTxnReqsPermission`: read on every compared range, and
/// for the operations of both branches (whichever runs) what each needs on its own — read for
/// a range, write for a put or delete, and read too when a put or delete returns previous
/// values — at every nesting depth.
pub(crate) fn txn_needs(txn: &TxnRequest, needs: &mut Vec<Need>) {
    for compare in &txn.compare {
        needs.push(Need::read(&compare.key, &compare.range_end));
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => needs.push(Need::read(&r.key, &r.range_end)),
            Some(Op::RequestPut(r)) => needs.extend(put_needs(r)),
            Some(Op::RequestDeleteRange(r)) => needs.extend(delete_needs(r)),
            Some(Op::RequestTxn(nested)) => txn_needs(nested, needs),
            None => {}
        }
    }
}

impl EtcdContext {
    /// The caller of a request with `metadata`, judged against `store`'s auth state.
    fn caller_in(&self, store: &KvStore, metadata: &MetadataMap) -> Result<Caller, Status> {
        let auth = store.auth();
        if !auth.is_enabled() {
            return Ok(Caller::Anyone);
        }
        let Some(token) = metadata.get(TOKEN_METADATA) else { return Ok(Caller::Anonymous) };
        let invalid = || auth_status(&AuthError::InvalidAuthToken);
        let token = token.to_str().map_err(|_| invalid())?;
        let owner = self.tokens.lookup(token, Instant::now()).ok_or_else(invalid)?;
        if auth.credential(&owner.user) != Some(owner.credential) {
            // The password changed, the user was deleted, or auth was re-enabled since.
            self.tokens.revoke(token);
            return Err(invalid());
        }
        let root = auth.is_root(&owner.user);
        Ok(Caller::User { name: owner.user, root })
    }

    /// Runs `rule` for the caller against the member's current state, under one look at the
    /// store; returns the auth revision it judged by.
    pub(crate) fn authorize(
        &self,
        metadata: &MetadataMap,
        rule: impl FnOnce(&KvStore, &Caller) -> Result<(), Status>,
    ) -> Result<u64, Status> {
        let store = self.read_store();
        let caller = self.caller_in(&store, metadata)?;
        rule(&store, &caller)?;
        Ok(store.auth().revision())
    }

    /// The caller, for services that decide by who it is (the Auth service).
    pub(crate) fn caller(&self, metadata: &MetadataMap) -> Result<(Caller, u64), Status> {
        let store = self.read_store();
        let caller = self.caller_in(&store, metadata)?;
        Ok((caller, store.auth().revision()))
    }

    /// Refuses a read the caller may not make (checked after the read barrier).
    pub(crate) fn authorize_needs(
        &self,
        metadata: &MetadataMap,
        needs: &[Need],
    ) -> Result<(), Status> {
        self.authorize(metadata, |store, caller| caller.require(store.auth(), needs)).map(|_| ())
    }

    /// Checks `rule` and proposes `command` guarded by the auth revision the check saw, again
    /// on a newer state if auth changed before the command applied.
    pub(crate) async fn propose_authorized(
        &self,
        metadata: &MetadataMap,
        rule: impl Fn(&KvStore, &Caller) -> Result<(), Status>,
        command: &Command,
    ) -> Result<Output, Status> {
        let mut attempt = 1;
        loop {
            let revision = self.authorize(metadata, &rule)?;
            let guard = self.guards_writes().then_some(revision);
            match self.propose_guarded(command, guard).await {
                Err(status) if is_old_revision(&status) && attempt < GUARD_ATTEMPTS => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Writes are guarded wherever auth can be enabled: under every protocol that orders writes
    /// (gossip refuses auth commands, so its auth stays off, and it has no use for guards).
    fn guards_writes(&self) -> bool {
        self.consensus.guarantees().linearizable_writes
    }
}

fn is_old_revision(status: &Status) -> bool {
    status.message() == AuthError::OldRevision.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::{Compare, RequestOp};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn auth_errors_keep_etcd_codes() {
        let s = auth_status(&AuthError::UserEmpty);
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: user name is empty")
        );
        let s = auth_status(&AuthError::PermissionDenied);
        assert_eq!(
            (s.code(), s.message()),
            (Code::PermissionDenied, "etcdserver: permission denied")
        );
        let s = auth_status(&AuthError::InvalidAuthToken);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unauthenticated, "etcdserver: invalid auth token")
        );
        let s = auth_status(&AuthError::AuthFailed);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "etcdserver: authentication failed, invalid user ID or password");
        let s = auth_status(&AuthError::RootUserNotExist);
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: root user does not exist")
        );
        assert!(is_old_revision(&auth_status(&AuthError::OldRevision)));
    }

    #[test]
    fn callers_are_refused_by_kind() {
        assert!(Caller::Anyone.require_root().is_ok());
        assert_eq!(Caller::Anonymous.require_root().unwrap_err().code(), Code::InvalidArgument);
        let user = Caller::User { name: "u".into(), root: false };
        assert_eq!(user.require_root().unwrap_err().code(), Code::PermissionDenied);
        assert!(Caller::User { name: "root".into(), root: true }.require_root().is_ok());
        assert_eq!(user.user().unwrap(), Some("u"));
        assert_eq!(Caller::Anyone.user().unwrap(), None);
    }

    #[test]
    fn txn_needs_cover_compares_and_both_branches() {
        let nested = TxnRequest {
            failure: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: b("d"),
                    range_end: b("e"),
                    prev_kv: true,
                })),
            }],
            ..Default::default()
        };
        let txn = TxnRequest {
            compare: vec![Compare { key: b("c"), ..Default::default() }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest { key: b("p"), ..Default::default() })),
            }],
            failure: vec![RequestOp { request: Some(Op::RequestTxn(nested)) }],
        };
        let mut needs = Vec::new();
        txn_needs(&txn, &mut needs);
        assert_eq!(
            needs,
            vec![
                Need::read(&b("c"), &Bytes::new()),
                Need::write(&b("p"), &Bytes::new()),
                Need::write(&b("d"), &b("e")),
                Need::read(&b("d"), &b("e")),
            ]
        );
    }
}
