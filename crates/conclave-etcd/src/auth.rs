//! The `Auth` service: users, roles, permissions, enabling auth, and `Authenticate`.
//!
//! Changes are proposed as `conclave_kv::AuthCommand`s, so every member holds the same users
//! and roles; passwords are hashed here (`auth_password.rs`) before anything is proposed, and
//! only the hash enters the log. `Authenticate` is answered by the member the client talks to:
//! it verifies the password against the replicated hash after a read barrier (so a user just
//! added elsewhere is found) and issues a token that only this member knows
//! (`auth_token.rs`). While auth is on, every call but `Authenticate` and `AuthStatus` needs
//! the root role, except that a user may get itself and the roles it holds.

use conclave_kv::{AuthCommand, AuthError, Command, Output, PermType, Permission};
use std::sync::OnceLock;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::auth_check::{Caller, auth_status};
use crate::auth_token::TokenOwner;
use crate::context::EtcdContext;
use crate::pb::authpb::Permission as PbPermission;
use crate::pb::authpb::permission::Type as PbPermType;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::*;

/// The `etcdserverpb.Auth` service.
#[derive(Clone, Debug)]
pub struct AuthService {
    ctx: EtcdContext,
}

impl AuthService {
    pub fn new(ctx: EtcdContext) -> Self {
        Self { ctx }
    }

    /// Proposes an auth command on behalf of a root caller; the header's revision.
    async fn change(
        &self,
        metadata: &MetadataMap,
        command: AuthCommand,
    ) -> Result<Option<ResponseHeader>, Status> {
        let command = Command::Auth(command);
        let output = self
            .ctx
            .propose_authorized(metadata, |_, caller| caller.require_root(), &command)
            .await?;
        let Output::Auth { revision, .. } = output else {
            return Err(Status::internal(format!(
                "etcdserver: unexpected store output {output:?}"
            )));
        };
        Ok(self.ctx.header(revision))
    }

    /// Refuses a caller that is not root before any expensive work (hashing) is done.
    fn require_root(&self, metadata: &MetadataMap) -> Result<(), Status> {
        self.ctx.caller(metadata)?.0.require_root()
    }

    /// Waits until this member's auth state is as fresh as a linearizable read would see it
    /// (a local read under a protocol without linearizable reads, which cannot enable auth).
    async fn barrier(&self) -> Result<(), Status> {
        let local = !self.ctx.consensus.guarantees().linearizable_reads;
        self.ctx.read_barrier(local).await
    }

    /// Hashes a password given for `user add` or `user passwd`.
    async fn hash(&self, password: String, hashed_password: &str) -> Result<String, Status> {
        if !hashed_password.is_empty() {
            return Err(Status::invalid_argument(
                "etcdserver: conclave does not accept pre-hashed passwords; send the password",
            ));
        }
        if password.is_empty() {
            return Err(Status::invalid_argument(
                "etcdserver: password is empty; give one, or add the user with no password",
            ));
        }
        self.ctx.hasher.hash(password).await
    }
}

/// A hash that matches no password, verified for unknown users so that a missing user takes
/// as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| crate::auth_password::hash(b"conclave decoy password").unwrap_or_default())
}

fn perm_type(value: i32) -> Result<PermType, Status> {
    match PbPermType::try_from(value) {
        Ok(PbPermType::Read) => Ok(PermType::Read),
        Ok(PbPermType::Write) => Ok(PermType::Write),
        Ok(PbPermType::Readwrite) => Ok(PermType::ReadWrite),
        Err(_) => Err(Status::invalid_argument(format!(
            "etcdserver: permission type {value} is not READ (0), WRITE (1) or READWRITE (2)"
        ))),
    }
}

fn pb_permission(permission: Permission) -> PbPermission {
    let perm_type = match permission.perm_type {
        PermType::Read => PbPermType::Read,
        PermType::Write => PbPermType::Write,
        PermType::ReadWrite => PbPermType::Readwrite,
    };
    PbPermission {
        perm_type: perm_type as i32,
        key: permission.key,
        range_end: permission.range_end,
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let header = self.change(request.metadata(), AuthCommand::Enable).await?;
        tracing::info!("auth enabled");
        Ok(Response::new(AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let header = self.change(request.metadata(), AuthCommand::Disable).await?;
        tracing::info!("auth disabled");
        Ok(Response::new(AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        _request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        self.barrier().await?;
        let (enabled, auth_revision) = {
            let store = self.ctx.read_store();
            (store.auth().is_enabled(), store.auth().revision())
        };
        Ok(Response::new(AuthStatusResponse {
            header: self.ctx.current_header(),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let AuthenticateRequest { name, password } = request.into_inner();
        self.barrier().await?;
        let (hash, credential) = {
            let store = self.ctx.read_store();
            let auth = store.auth();
            if !auth.is_enabled() {
                return Err(auth_status(&AuthError::AuthNotEnabled));
            }
            (auth.password_hash(&name).map(str::to_owned), auth.credential(&name))
        };
        let failed = || auth_status(&AuthError::AuthFailed);
        let (known, hash) = match hash {
            Some(hash) => (true, hash),
            None => (false, decoy_hash().to_owned()),
        };
        let matches = self.ctx.hasher.verify(password, hash).await?;
        if !known || !matches {
            tracing::info!(user = %name, "authentication failed");
            return Err(failed());
        }
        // The password may have changed (or auth been disabled) while it was being verified.
        let now = self.ctx.read_store().auth().credential(&name);
        let Some(credential) = credential.filter(|c| Some(*c) == now) else {
            return Err(failed());
        };
        let token = self
            .ctx
            .tokens
            .issue(TokenOwner { user: name.clone(), credential }, Instant::now())
            .map_err(|reason| Status::internal(format!("etcdserver: {reason}")))?;
        tracing::debug!(user = %name, "authenticated");
        Ok(Response::new(AuthenticateResponse { header: self.ctx.current_header(), token }))
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        self.require_root(request.metadata())?;
        let (metadata, _, request) = request.into_parts();
        if request.name.is_empty() {
            return Err(auth_status(&AuthError::UserEmpty));
        }
        if self.ctx.read_store().auth().user(&request.name).is_some() {
            return Err(auth_status(&AuthError::UserAlreadyExist));
        }
        let no_password = request.options.is_some_and(|o| o.no_password);
        let password_hash = if no_password {
            None
        } else {
            Some(self.hash(request.password, &request.hashed_password).await?)
        };
        let name = request.name;
        let header = self
            .change(&metadata, AuthCommand::UserAdd { name: name.clone(), password_hash })
            .await?;
        tracing::info!(user = %name, "user added");
        Ok(Response::new(AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        self.barrier().await?;
        let name = &request.get_ref().name;
        let mut roles = Vec::new();
        self.ctx.authorize(request.metadata(), |store, caller| {
            // A user may see itself; anyone else needs root.
            if !matches!(caller, Caller::User { name: me, .. } if me == name) {
                caller.require_root()?;
            }
            let user =
                store.auth().user(name).ok_or_else(|| auth_status(&AuthError::UserNotFound))?;
            roles = user.roles;
            Ok(())
        })?;
        Ok(Response::new(AuthUserGetResponse { header: self.ctx.current_header(), roles }))
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.barrier().await?;
        self.require_root(request.metadata())?;
        let users = self.ctx.read_store().auth().user_names();
        Ok(Response::new(AuthUserListResponse { header: self.ctx.current_header(), users }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let name = request.name;
        let header = self.change(&metadata, AuthCommand::UserDelete { name: name.clone() }).await?;
        tracing::info!(user = %name, "user deleted");
        Ok(Response::new(AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        self.require_root(request.metadata())?;
        let (metadata, _, request) = request.into_parts();
        if self.ctx.read_store().auth().user(&request.name).is_none() {
            return Err(auth_status(&AuthError::UserNotFound));
        }
        let password_hash = self.hash(request.password, &request.hashed_password).await?;
        let name = request.name;
        let command = AuthCommand::UserChangePassword { name: name.clone(), password_hash };
        let header = self.change(&metadata, command).await?;
        tracing::info!(user = %name, "password changed");
        Ok(Response::new(AuthUserChangePasswordResponse { header }))
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let command = AuthCommand::UserGrantRole { user: request.user, role: request.role };
        let header = self.change(&metadata, command).await?;
        Ok(Response::new(AuthUserGrantRoleResponse { header }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let command = AuthCommand::UserRevokeRole { user: request.name, role: request.role };
        let header = self.change(&metadata, command).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse { header }))
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let header = self.change(&metadata, AuthCommand::RoleAdd { name: request.name }).await?;
        Ok(Response::new(AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        self.barrier().await?;
        let role = &request.get_ref().role;
        let mut permissions = Vec::new();
        self.ctx.authorize(request.metadata(), |store, caller| {
            // A user may see the roles it holds; anyone else needs root.
            let holds = match caller {
                Caller::User { name, .. } => {
                    store.auth().user(name).is_some_and(|u| u.roles.contains(role))
                }
                Caller::Anyone | Caller::Anonymous => false,
            };
            if !holds {
                caller.require_root()?;
            }
            permissions =
                store.auth().role(role).ok_or_else(|| auth_status(&AuthError::RoleNotFound))?;
            Ok(())
        })?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.ctx.current_header(),
            perm: permissions.into_iter().map(pb_permission).collect(),
        }))
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.barrier().await?;
        self.require_root(request.metadata())?;
        let roles = self.ctx.read_store().auth().role_names();
        Ok(Response::new(AuthRoleListResponse { header: self.ctx.current_header(), roles }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let header = self.change(&metadata, AuthCommand::RoleDelete { name: request.role }).await?;
        Ok(Response::new(AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let Some(perm) = request.perm else {
            return Err(Status::invalid_argument("etcdserver: permission not given"));
        };
        let permission = Permission::new(perm_type(perm.perm_type)?, perm.key, perm.range_end);
        let command = AuthCommand::RoleGrantPermission { role: request.name, permission };
        let header = self.change(&metadata, command).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse { header }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let command = AuthCommand::RoleRevokePermission {
            role: request.role,
            key: request.key,
            range_end: request.range_end,
        };
        let header = self.change(&metadata, command).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse { header }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn permission_types_map_both_ways() {
        assert_eq!(perm_type(0).unwrap(), PermType::Read);
        assert_eq!(perm_type(1).unwrap(), PermType::Write);
        assert_eq!(perm_type(2).unwrap(), PermType::ReadWrite);
        assert_eq!(perm_type(3).unwrap_err().code(), tonic::Code::InvalidArgument);
        let p = pb_permission(Permission::new(PermType::ReadWrite, Bytes::new(), Bytes::new()));
        assert_eq!(p.perm_type, 2);
    }

    #[test]
    fn the_decoy_hash_matches_nothing_likely() {
        assert!(decoy_hash().starts_with("$argon2id$"));
        assert!(!crate::auth_password::verify(b"", decoy_hash()));
    }
}
