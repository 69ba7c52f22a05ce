//! Simple tokens, as etcd's `--auth-token=simple`: random strings that this member maps to a
//! user, held in memory only, each expiring after `auth_token_ttl_secs` without use (every use
//! renews it).
//!
//! Tokens are per member: a client that moves to another member authenticates again there
//! (etcdctl and clientv3 authenticate on every connection). A token is bound to the user's
//! [`Credential`] — the auth revisions of the user's creation or last password change and of
//! the last `auth enable` — so changing the password, deleting (and re-adding) the user, or
//! disabling auth voids it on every member at once, without any member keeping a list.

use conclave_kv::Credential;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Random characters in a token, before its `.` and sequence number.
const TOKEN_RANDOM_CHARS: usize = 32;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenOwner {
    pub user: String,
    pub credential: Credential,
}

#[derive(Debug)]
struct Entry {
    owner: TokenOwner,
    expires: Instant,
}

/// The tokens this member issued.
#[derive(Debug)]
pub(crate) struct TokenStore {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Entry>>,
    issued: AtomicU64,
}

impl TokenStore {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, tokens: Mutex::new(HashMap::new()), issued: AtomicU64::new(0) }
    }

    /// A fresh token for `owner`. Expired tokens are swept out first, so the map holds only
    /// tokens used within the last TTL.
    pub fn issue(&self, owner: TokenOwner, now: Instant) -> Result<String, String> {
        let mut random = [0u8; TOKEN_RANDOM_CHARS];
        getrandom::fill(&mut random).map_err(|e| format!("no OS randomness for a token: {e}"))?;
        let mut token: String =
            random.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect();
        let sequence = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        token.push('.');
        token.push_str(&sequence.to_string());
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, entry| entry.expires > now);
        tokens.insert(token.clone(), Entry { owner, expires: now + self.ttl });
        Ok(token)
    }

    /// The owner of a live token, renewing it; `None` (and the token forgotten) once expired.
    pub fn lookup(&self, token: &str, now: Instant) -> Option<TokenOwner> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = tokens.get_mut(token)?;
        if entry.expires <= now {
            tokens.remove(token);
            return None;
        }
        entry.expires = now + self.ttl;
        Some(entry.owner.clone())
    }

    /// Forgets a token that no longer matches its user's credential.
    pub fn revoke(&self, token: &str) {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
    }

    /// Tokens currently held (expired ones included until the next sweep).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(user: &str) -> TokenOwner {
        TokenOwner {
            user: user.into(),
            credential: Credential { user_revision: 1, enabled_revision: 2 },
        }
    }

    #[test]
    fn tokens_are_random_and_map_to_their_owner() {
        let store = TokenStore::new(Duration::from_secs(300));
        let now = Instant::now();
        let a = store.issue(owner("alice"), now).unwrap();
        let b = store.issue(owner("alice"), now).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.split('.').next().unwrap().len(), TOKEN_RANDOM_CHARS);
        assert_eq!(store.lookup(&a, now), Some(owner("alice")));
        assert_eq!(store.lookup("made.up", now), None);
        store.revoke(&a);
        assert_eq!(store.lookup(&a, now), None);
        assert!(store.lookup(&b, now).is_some());
    }

    #[test]
    fn tokens_expire_unless_used_and_use_renews_them() {
        let ttl = Duration::from_secs(10);
        let store = TokenStore::new(ttl);
        let start = Instant::now();
        let used = store.issue(owner("a"), start).unwrap();
        let idle = store.issue(owner("b"), start).unwrap();
        let later = start + Duration::from_secs(8);
        assert!(store.lookup(&used, later).is_some());
        // 16 s after issue, 8 s after the last use: the used token lives, the idle one not.
        let much_later = start + Duration::from_secs(16);
        assert!(store.lookup(&used, much_later).is_some());
        assert_eq!(store.lookup(&idle, much_later), None);
        // Issuing sweeps expired tokens out.
        let _ = store.issue(owner("c"), much_later + ttl + ttl).unwrap();
        assert_eq!(store.len(), 1);
    }
}
