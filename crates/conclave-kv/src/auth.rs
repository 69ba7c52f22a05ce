//! Authentication and authorization as replicated state: users, roles and their key
//! permissions, whether auth is on, and the auth revision (etcd's auth store).
//!
//! Every change is an [`AuthCommand`] applied in log order, so all replicas agree on who may do
//! what. Passwords never reach this module: the server hashes a password (with a memory-hard
//! KDF and a random salt) before it proposes, and the state keeps only that hash, opaque to it.
//! Verifying a password and issuing tokens are the serving member's business.
//!
//! The auth revision counts changes; it moves with every command that changed something. A
//! server that checked a request's permissions against revision R proposes the request inside
//! [`crate::Command::Guarded`] with R, and the store refuses it with
//! [`AuthError::OldRevision`] if auth changed meanwhile — so a permission revoked between the
//! check and the apply is never overlooked (etcd does the same with the revision in its request
//! header).
//!
//! etcd's rules: `auth enable` needs a user `root` holding the role `root`; the role `root`
//! grants everything and may be granted without being created; while auth is on, the user
//! `root` cannot be deleted, the role `root` cannot be deleted nor revoked from `root`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::auth_perm::{Access, Permission, permits};

/// The user that must exist, holding [`ROOT_ROLE`], before auth can be enabled.
pub const ROOT_USER: &str = "root";
/// The role that grants every permission, and the right to manage auth and the cluster.
pub const ROOT_ROLE: &str = "root";

/// Why an auth command or check was refused. Texts are etcd's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A guarded request was checked against an auth revision that has since moved on.
    #[error("etcdserver: revision of auth store is old")]
    OldRevision,
}

/// A change to the auth state (one per etcd Auth RPC that writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    Enable,
    Disable,
    /// `password_hash` is the PHC string of the password's hash; `None` makes a user that
    /// cannot authenticate with a password (etcd's `--no-password`).
    UserAdd {
        name: String,
        password_hash: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password_hash: String,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        user: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    /// Adds the permission, or changes the type of the role's permission on the same keys.
    RoleGrantPermission {
        role: String,
        permission: Permission,
    },
    RoleRevokePermission {
        role: String,
        key: Bytes,
        range_end: Bytes,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct User {
    password_hash: Option<String>,
    roles: BTreeSet<String>,
    /// The auth revision at which the user was created or last changed password: tokens
    /// issued before it are void.
    credential_revision: u64,
}

/// What a token is bound to: a token stays valid only while both are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credential {
    /// The auth revision of the user's creation or last password change.
    pub user_revision: u64,
    /// The auth revision at which auth was last enabled.
    pub enabled_revision: u64,
}

/// A user as `UserGet` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    /// Sorted.
    pub roles: Vec<String>,
    pub has_password: bool,
}

/// The replicated auth state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    enabled_revision: u64,
    users: BTreeMap<String, User>,
    /// Each role's permissions, sorted by key and range end (at most one per key range).
    roles: BTreeMap<String, Vec<Permission>>,
}

impl AuthState {
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Counts the changes applied so far (etcd's auth revision).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// User names, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Role names, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    pub fn user(&self, name: &str) -> Option<UserInfo> {
        self.users.get(name).map(|user| UserInfo {
            name: name.to_owned(),
            roles: user.roles.iter().cloned().collect(),
            has_password: user.password_hash.is_some(),
        })
    }

    /// The stored hash of the user's password (a PHC string), for verifying a password on
    /// the serving member; `None` for an unknown user or one without a password.
    pub fn password_hash(&self, name: &str) -> Option<&str> {
        self.users.get(name)?.password_hash.as_deref()
    }

    /// What a token for `name` issued now is bound to; `None` for an unknown user.
    pub fn credential(&self, name: &str) -> Option<Credential> {
        let user = self.users.get(name)?;
        Some(Credential {
            user_revision: user.credential_revision,
            enabled_revision: self.enabled_revision,
        })
    }

    /// A role's permissions (the root role's: everything); `None` for an unknown role.
    pub fn role(&self, name: &str) -> Option<Vec<Permission>> {
        let permissions = self.roles.get(name)?;
        if name == ROOT_ROLE {
            return Some(vec![Permission::new(
                crate::auth_perm::PermType::ReadWrite,
                Bytes::new(),
                Bytes::from_static(b"\0"),
            )]);
        }
        Some(permissions.clone())
    }

    /// Whether the user holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(ROOT_ROLE))
    }

    /// Whether `user` may access every key in `key`/`range_end`: always while auth is off;
    /// otherwise when the user holds the root role or the union of its roles' permissions of
    /// the right kind covers the range.
    pub fn check(
        &self,
        user: &str,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let Some(record) = self.users.get(user) else { return Err(AuthError::PermissionDenied) };
        if record.roles.contains(ROOT_ROLE) {
            return Ok(());
        }
        let permissions = record.roles.iter().filter_map(|role| self.roles.get(role)).flatten();
        if permits(permissions, access, key, range_end) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Applies one command; a refused command changes nothing. Returns the auth revision
    /// after it.
    pub(crate) fn apply(&mut self, command: &AuthCommand) -> Result<u64, AuthError> {
        let changed = self.try_apply(command)?;
        if changed {
            self.revision += 1;
            if matches!(command, AuthCommand::Enable) {
                self.enabled_revision = self.revision;
            }
            if let AuthCommand::UserAdd { name, .. } | AuthCommand::UserChangePassword { name, .. } =
                command
                && let Some(user) = self.users.get_mut(name)
            {
                user.credential_revision = self.revision;
            }
        }
        Ok(self.revision)
    }

    /// Checks and applies; `Ok(false)` when the command was accepted but changed nothing.
    fn try_apply(&mut self, command: &AuthCommand) -> Result<bool, AuthError> {
        match command {
            AuthCommand::Enable => {
                if self.enabled {
                    return Ok(false);
                }
                let root = self.users.get(ROOT_USER).ok_or(AuthError::RootUserNotExist)?;
                if !root.roles.contains(ROOT_ROLE) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
                Ok(true)
            }
            AuthCommand::Disable => {
                let was = std::mem::replace(&mut self.enabled, false);
                Ok(was)
            }
            AuthCommand::UserAdd { name, password_hash } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                let user = User {
                    password_hash: password_hash.clone(),
                    roles: BTreeSet::new(),
                    credential_revision: 0,
                };
                self.users.insert(name.clone(), user);
                Ok(true)
            }
            AuthCommand::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                Ok(true)
            }
            AuthCommand::UserChangePassword { name, password_hash } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.password_hash = Some(password_hash.clone());
                Ok(true)
            }
            AuthCommand::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(AuthError::UserNotFound);
                }
                if role != ROOT_ROLE && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                let record = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                Ok(record.roles.insert(role.clone()))
            }
            AuthCommand::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let record = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                if !record.roles.remove(role) {
                    return Err(AuthError::RoleNotGranted);
                }
                Ok(true)
            }
            AuthCommand::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Vec::new());
                Ok(true)
            }
            AuthCommand::RoleDelete { name } => {
                if self.enabled && name == ROOT_ROLE {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
                for user in self.users.values_mut() {
                    user.roles.remove(name);
                }
                Ok(true)
            }
            AuthCommand::RoleGrantPermission { role, permission } => {
                let permissions = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let position = permissions.binary_search_by(|p| {
                    (&p.key, &p.range_end).cmp(&(&permission.key, &permission.range_end))
                });
                match position {
                    Ok(at) if permissions[at].perm_type == permission.perm_type => Ok(false),
                    Ok(at) => {
                        permissions[at].perm_type = permission.perm_type;
                        Ok(true)
                    }
                    Err(at) => {
                        permissions.insert(at, permission.clone());
                        Ok(true)
                    }
                }
            }
            AuthCommand::RoleRevokePermission { role, key, range_end } => {
                let permissions = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
                let before = permissions.len();
                permissions.retain(|p| !p.same_keys(key, range_end));
                if permissions.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth_perm::PermType;
    use crate::prefix_range_end;

    fn add_user(state: &mut AuthState, name: &str) {
        let command =
            AuthCommand::UserAdd { name: name.into(), password_hash: Some(format!("$h${name}")) };
        state.apply(&command).unwrap();
    }

    fn grant(state: &mut AuthState, user: &str, role: &str) -> Result<u64, AuthError> {
        state.apply(&AuthCommand::UserGrantRole { user: user.into(), role: role.into() })
    }

    fn with_root() -> AuthState {
        let mut state = AuthState::default();
        add_user(&mut state, ROOT_USER);
        grant(&mut state, ROOT_USER, ROOT_ROLE).unwrap();
        state
    }

    #[test]
    fn enable_needs_root_user_with_root_role() {
        let mut state = AuthState::default();
        assert_eq!(state.apply(&AuthCommand::Enable), Err(AuthError::RootUserNotExist));
        add_user(&mut state, ROOT_USER);
        assert_eq!(state.apply(&AuthCommand::Enable), Err(AuthError::RootRoleNotExist));
        // The root role need not be created to be granted.
        grant(&mut state, ROOT_USER, ROOT_ROLE).unwrap();
        let revision = state.apply(&AuthCommand::Enable).unwrap();
        assert!(state.is_enabled());
        assert_eq!(revision, 3);
        // Enabling twice changes nothing.
        assert_eq!(state.apply(&AuthCommand::Enable), Ok(3));
        assert_eq!(state.apply(&AuthCommand::Disable), Ok(4));
        assert_eq!(state.apply(&AuthCommand::Disable), Ok(4));
    }

    #[test]
    fn root_is_protected_while_enabled() {
        let mut state = with_root();
        state.apply(&AuthCommand::RoleAdd { name: ROOT_ROLE.into() }).unwrap();
        state.apply(&AuthCommand::Enable).unwrap();
        let delete = AuthCommand::UserDelete { name: ROOT_USER.into() };
        assert_eq!(state.apply(&delete), Err(AuthError::InvalidAuthMgmt));
        let revoke = AuthCommand::UserRevokeRole { user: ROOT_USER.into(), role: ROOT_ROLE.into() };
        assert_eq!(state.apply(&revoke), Err(AuthError::InvalidAuthMgmt));
        let delete_role = AuthCommand::RoleDelete { name: ROOT_ROLE.into() };
        assert_eq!(state.apply(&delete_role), Err(AuthError::InvalidAuthMgmt));
        state.apply(&AuthCommand::Disable).unwrap();
        assert!(state.apply(&revoke).is_ok());
        assert!(state.apply(&delete).is_ok());
    }

    #[test]
    fn user_and_role_errors_follow_etcd() {
        let mut state = AuthState::default();
        let empty = AuthCommand::UserAdd { name: String::new(), password_hash: None };
        assert_eq!(state.apply(&empty), Err(AuthError::UserEmpty));
        add_user(&mut state, "alice");
        let again = AuthCommand::UserAdd { name: "alice".into(), password_hash: None };
        assert_eq!(state.apply(&again), Err(AuthError::UserAlreadyExist));
        assert_eq!(grant(&mut state, "bob", "r"), Err(AuthError::UserNotFound));
        assert_eq!(grant(&mut state, "alice", "r"), Err(AuthError::RoleNotFound));
        assert_eq!(
            state.apply(&AuthCommand::RoleAdd { name: String::new() }),
            Err(AuthError::RoleEmpty)
        );
        state.apply(&AuthCommand::RoleAdd { name: "r".into() }).unwrap();
        assert_eq!(
            state.apply(&AuthCommand::RoleAdd { name: "r".into() }),
            Err(AuthError::RoleAlreadyExist)
        );
        let revoke = AuthCommand::UserRevokeRole { user: "alice".into(), role: "r".into() };
        assert_eq!(state.apply(&revoke), Err(AuthError::RoleNotGranted));
        let before = state.revision();
        // Granting a role twice is accepted and changes nothing (etcd ignores it).
        grant(&mut state, "alice", "r").unwrap();
        assert_eq!(grant(&mut state, "alice", "r"), Ok(before + 1));
        let unrevoke = AuthCommand::RoleRevokePermission {
            role: "r".into(),
            key: Bytes::from_static(b"k"),
            range_end: Bytes::new(),
        };
        assert_eq!(state.apply(&unrevoke), Err(AuthError::PermissionNotGranted));
        let gone = AuthCommand::UserDelete { name: "nobody".into() };
        assert_eq!(state.apply(&gone), Err(AuthError::UserNotFound));
        // Deleting a role takes it from its users.
        state.apply(&AuthCommand::RoleDelete { name: "r".into() }).unwrap();
        assert!(state.user("alice").unwrap().roles.is_empty());
    }

    #[test]
    fn checks_follow_roles_and_permissions() {
        let mut state = with_root();
        add_user(&mut state, "reader");
        add_user(&mut state, "writer");
        state.apply(&AuthCommand::RoleAdd { name: "ro".into() }).unwrap();
        state.apply(&AuthCommand::RoleAdd { name: "rw".into() }).unwrap();
        let on = |t| Permission::new(t, Bytes::from_static(b"app/"), prefix_range_end(b"app/"));
        let ro =
            AuthCommand::RoleGrantPermission { role: "ro".into(), permission: on(PermType::Read) };
        state.apply(&ro).unwrap();
        let rw = AuthCommand::RoleGrantPermission {
            role: "rw".into(),
            permission: on(PermType::ReadWrite),
        };
        state.apply(&rw).unwrap();
        grant(&mut state, "reader", "ro").unwrap();
        grant(&mut state, "writer", "rw").unwrap();
        // Everything is allowed while auth is off.
        assert_eq!(state.check("", Access::Write, b"x", b""), Ok(()));
        state.apply(&AuthCommand::Enable).unwrap();
        assert_eq!(state.check("", Access::Read, b"app/a", b""), Err(AuthError::UserEmpty));
        assert_eq!(state.check("reader", Access::Read, b"app/a", b""), Ok(()));
        let denied = Err(AuthError::PermissionDenied);
        assert_eq!(state.check("reader", Access::Write, b"app/a", b""), denied);
        assert_eq!(state.check("writer", Access::Write, b"app/a", b""), Ok(()));
        assert_eq!(state.check("writer", Access::Write, b"other", b""), denied);
        assert_eq!(state.check("root", Access::Write, b"other", b"\0"), Ok(()));
        assert_eq!(state.check("ghost", Access::Read, b"app/a", b""), denied);
        // Granting the same keys again changes the type in place.
        let upgrade = AuthCommand::RoleGrantPermission {
            role: "ro".into(),
            permission: on(PermType::ReadWrite),
        };
        state.apply(&upgrade).unwrap();
        assert_eq!(state.role("ro").unwrap().len(), 1);
        assert_eq!(state.check("reader", Access::Write, b"app/a", b""), Ok(()));
        let revoke = AuthCommand::RoleRevokePermission {
            role: "ro".into(),
            key: Bytes::from_static(b"app/"),
            range_end: prefix_range_end(b"app/"),
        };
        state.apply(&revoke).unwrap();
        assert_eq!(state.check("reader", Access::Read, b"app/a", b""), denied);
    }

    #[test]
    fn credentials_change_with_password_and_enable() {
        let mut state = with_root();
        let before = state.credential(ROOT_USER).unwrap();
        let change = AuthCommand::UserChangePassword {
            name: ROOT_USER.into(),
            password_hash: "$new".into(),
        };
        state.apply(&change).unwrap();
        let after = state.credential(ROOT_USER).unwrap();
        assert_ne!(before, after);
        assert_eq!(state.password_hash(ROOT_USER), Some("$new"));
        state.apply(&AuthCommand::Enable).unwrap();
        assert_ne!(state.credential(ROOT_USER).unwrap(), after);
        assert_eq!(state.credential("nobody"), None);
    }
}
