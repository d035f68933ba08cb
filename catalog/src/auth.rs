//! Accounts' secrets: password hashing (Argon2id PHC strings), session tokens, and
//! the login rate limiter.
//!
//! Hashing is CPU- and memory-heavy by design, so it runs on blocking threads, at
//! most one per core at a time. A login for an unknown user verifies the password
//! against a dummy hash made with the current parameters, so it takes as long as a
//! wrong password for a real user and does not reveal which usernames exist.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

/// The longest password accepted, in bytes: it bounds the work one request causes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A hashing failure (never a wrong password: that is [`Verified::Wrong`]).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// What checking a password found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `rehash` is a new hash to store when the stored one
    /// uses other parameters than the configured ones.
    Ok { rehash: Option<String> },
    /// Wrong password, or no such user.
    Wrong,
}

/// Hashes and verifies passwords with Argon2id.
#[derive(Debug)]
pub struct Passwords {
    params: Params,
    dummy: OnceCell<String>,
    permits: Semaphore,
}

impl Passwords {
    /// Hashing with these parameters for new hashes.
    pub fn new(params: Params) -> Passwords {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            params,
            dummy: OnceCell::new(),
            permits: Semaphore::new(cores),
        }
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashError(e.to_string()))
    }

    /// A PHC string for `password` with a fresh salt and the configured parameters.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.blocking(move || hash_with(params, &password)).await?
    }

    /// Checks `password` against `stored` (a PHC string), or against the dummy hash
    /// when there is no such user, in the same time.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let stored = match stored {
            Some(s) => s,
            None => self.dummy().await?.to_string(),
        };
        let params = self.params.clone();
        let verified = self
            .blocking(move || -> Result<Verified, HashError> {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Ok(Verified::Wrong);
                };
                if Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_err()
                {
                    return Ok(Verified::Wrong);
                }
                let rehash = if needs_rehash(&parsed, &params) {
                    Some(hash_with(params, &password)?)
                } else {
                    None
                };
                Ok(Verified::Ok { rehash })
            })
            .await??;
        Ok(if known { verified } else { Verified::Wrong })
    }

    async fn dummy(&self) -> Result<&str, HashError> {
        let params = self.params.clone();
        self.dummy
            .get_or_try_init(|| async {
                self.blocking(move || hash_with(params, "not a password of anyone"))
                    .await?
            })
            .await
            .map(String::as_str)
    }
}

fn hash_with(params: Params, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Passwords::argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether a stored hash was made with another algorithm, version or parameters
/// than the configured ones.
fn needs_rehash(hash: &PasswordHash<'_>, params: &Params) -> bool {
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    if hash.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(hash) {
        Ok(p) => {
            p.m_cost() != params.m_cost()
                || p.t_cost() != params.t_cost()
                || p.p_cost() != params.p_cost()
        }
        Err(_) => true,
    }
}

/// A new session token (64 hex digits, 256 random bits) and the hash it is stored
/// under.
pub fn new_session_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The hash a session token is stored under (SHA-256, hex): a leaked database does
/// not leak usable tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` looks like a session token (64 lowercase hex digits); anything
/// else is refused without a database lookup.
pub fn well_formed_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[derive(Debug)]
struct Window {
    start: tokio::time::Instant,
    count: u32,
}

/// Fixed-window counters of login attempts per username and per client address,
/// in memory (a moka cache bounds how many keys are kept).
#[derive(Debug)]
pub struct LoginLimiter {
    per_user: u32,
    per_client: u32,
    window: Duration,
    windows: moka::sync::Cache<String, Arc<Mutex<Window>>>,
}

impl LoginLimiter {
    /// A limiter allowing `per_user` and `per_client` attempts per `window`.
    pub fn new(per_user: u32, per_client: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            per_user,
            per_client,
            window,
            windows: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(window)
                .build(),
        }
    }

    fn window(&self, key: &str) -> Arc<Mutex<Window>> {
        self.windows.get_with(key.to_string(), || {
            Arc::new(Mutex::new(Window {
                start: tokio::time::Instant::now(),
                count: 0,
            }))
        })
    }

    /// Counts an attempt by `username` from `client`, or refuses it with how long
    /// to wait when either has used up its window.
    pub fn attempt(&self, username: &str, client: IpAddr) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let keys = [
            (format!("u:{username}"), self.per_user),
            (format!("c:{client}"), self.per_client),
        ];
        let windows: Vec<_> = keys.iter().map(|(k, l)| (self.window(k), *l)).collect();
        let mut wait = Duration::ZERO;
        for (w, limit) in &windows {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(w.start) >= self.window {
                w.start = now;
                w.count = 0;
            }
            if w.count >= *limit {
                wait = wait.max(self.window - now.duration_since(w.start));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (w, _) in &windows {
            w.lock().unwrap_or_else(|p| p.into_inner()).count += 1;
        }
        Ok(())
    }

    /// Forgets a username's failed attempts (after a successful login).
    pub fn succeeded(&self, username: &str) {
        self.windows.invalidate(&format!("u:{username}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Params {
        Params::new(64, 1, 1, None).expect("params")
    }

    #[tokio::test]
    async fn hashes_verify_and_rehash_when_parameters_change() {
        let p = Passwords::new(tiny());
        let h = p.hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert_eq!(
            p.verify(Some(h.clone()), "correct horse".into())
                .await
                .expect("verify"),
            Verified::Ok { rehash: None }
        );
        assert_eq!(
            p.verify(Some(h.clone()), "wrong horse".into())
                .await
                .expect("verify"),
            Verified::Wrong
        );
        assert_eq!(
            p.verify(None, "not a password of anyone".into())
                .await
                .expect("verify"),
            Verified::Wrong,
            "the dummy hash never lets anyone in"
        );
        let stronger = Passwords::new(Params::new(128, 2, 1, None).expect("params"));
        match stronger
            .verify(Some(h), "correct horse".into())
            .await
            .expect("verify")
        {
            Verified::Ok { rehash: Some(new) } => {
                assert!(new.starts_with("$argon2id$v=19$m=128,t=2,p=1$"), "{new}")
            }
            other => panic!("expected a rehash, got {other:?}"),
        }
        assert_eq!(
            p.verify(Some("garbage".into()), "x".into())
                .await
                .expect("verify"),
            Verified::Wrong
        );
    }

    #[test]
    fn session_tokens_are_256_bits_stored_hashed() {
        let (t, h) = new_session_token();
        assert!(well_formed_token(&t));
        assert_eq!(h, token_hash(&t));
        assert_ne!(t, h);
        assert!(!well_formed_token("ABC"));
        assert!(!well_formed_token(&"G".repeat(64)));
        assert!(secrets_equal("a", "a") && !secrets_equal("a", "b"));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_counts_per_user_and_per_client_and_windows_reset() {
        let l = LoginLimiter::new(2, 3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(l.attempt("ann", a).is_ok());
        assert!(l.attempt("ann", b).is_ok());
        let wait = l.attempt("ann", a).expect_err("user limit");
        assert_eq!(wait, Duration::from_secs(60));
        assert!(l.attempt("bob", a).is_ok());
        assert!(l.attempt("cat", a).is_ok());
        assert!(l.attempt("dan", a).expect_err("client limit") > Duration::ZERO);
        l.succeeded("ann");
        assert!(l.attempt("ann", b).is_ok(), "success resets the user count");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.attempt("dan", a).is_ok(), "a new window");
    }
}
