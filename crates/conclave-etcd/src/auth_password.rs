//! Password hashing for etcd auth: Argon2id (memory-hard), a random 16-byte salt per hash from
//! the OS, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the
//! parameters travel with each hash and can be raised later without breaking old ones.
//!
//! Hashing and verifying take tens of milliseconds of CPU and 19 MiB each, on purpose. They
//! run on tokio's blocking pool, at most [`MAX_CONCURRENT`] at a time per member, so a flood of
//! `Authenticate` calls queues instead of starving the rest of the server.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::Status;

/// Hashes or verifications running at once on one member.
pub const MAX_CONCURRENT: usize = 2;

/// OWASP's recommended Argon2id setting: 19 MiB, two passes, one lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt; the PHC string.
pub(crate) fn hash(password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no OS randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2().hash_password(password, &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed hash matches nothing.
pub(crate) fn verify(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    // The parameters come from the stored hash, not from `argon2()`'s defaults.
    Argon2::default().verify_password(password, &parsed).is_ok()
}

/// Runs hashes and verifications on the blocking pool, a bounded number at a time.
#[derive(Debug, Clone)]
pub(crate) struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self { permits: Arc::new(Semaphore::new(MAX_CONCURRENT)) }
    }
}

impl Hasher {
    pub async fn hash(&self, password: String) -> Result<String, Status> {
        let _permit = self.permits.acquire().await.map_err(|_| stopped())?;
        tokio::task::spawn_blocking(move || hash(password.as_bytes()))
            .await
            .map_err(|_| stopped())?
            .map_err(|reason| Status::internal(format!("etcdserver: hashing failed: {reason}")))
    }

    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Status> {
        let _permit = self.permits.acquire().await.map_err(|_| stopped())?;
        tokio::task::spawn_blocking(move || verify(password.as_bytes(), &phc))
            .await
            .map_err(|_| stopped())
    }
}

fn stopped() -> Status {
    Status::unavailable(crate::error::SERVER_STOPPED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_phc_strings_that_verify() {
        let a = hash(b"s3cret").unwrap();
        let b = hash(b"s3cret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(!a.contains("s3cret"));
        assert!(verify(b"s3cret", &a));
        assert!(verify(b"s3cret", &b));
        assert!(!verify(b"s3cret!", &a));
        assert!(!verify(b"", &a));
        assert!(!verify(b"s3cret", "not a phc string"));
    }
}
