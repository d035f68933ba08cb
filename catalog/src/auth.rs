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

/// How a [`LoginLimiter`] is tuned.
#[derive(Debug, Clone, Copy)]
pub struct LimiterParams {
    /// Failures of one (username, address) pair (or one known device) before
    /// each further attempt waits.
    pub free_failures: u32,
    /// The longest wait between attempts of one pair.
    pub max_delay: Duration,
    /// Failed sign-ins one address may make per `window`, whatever the usernames.
    pub per_client: u32,
    /// The per-address window, and how long a quiet pair is remembered.
    pub window: Duration,
}

/// Failures of one (username, address) pair and when it may try again.
#[derive(Debug)]
struct Pair {
    failures: u32,
    next: tokio::time::Instant,
}

/// Failures of one address in the current fixed window.
#[derive(Debug)]
struct Window {
    start: tokio::time::Instant,
    count: u32,
}

/// Why a sign-in attempt was refused, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This (username, address) pair or device failed too often: growing delays.
    Pair(Duration),
    /// This address failed too often across usernames (password spraying).
    Client(Duration),
}

impl Refused {
    /// How long until the next attempt may succeed.
    pub fn wait(self) -> Duration {
        match self {
            Refused::Pair(d) | Refused::Client(d) => d,
        }
    }
}

/// The login throttle, after OWASP's advice on brute force: failures are counted
/// per (username, address) pair, and past `free_failures` each further attempt of
/// that pair waits twice as long as the last (1 s, 2 s, 4 s … `max_delay`), so one
/// attacker's guesses never lock the owner out from elsewhere. An address also has
/// a ceiling of failures per window across usernames (password spraying); a browser
/// holding a device cookie from an earlier sign-in of that username is exempt from
/// it and throttled per device instead, so people behind a shared address are not
/// locked out by someone else's guesses either. In memory, per process (moka caches
/// bound how many keys are kept); an attempt counts as a failure until it succeeds,
/// so concurrent guesses cannot slip past the count.
#[derive(Debug)]
pub struct LoginLimiter {
    params: LimiterParams,
    pairs: moka::sync::Cache<String, Arc<Mutex<Pair>>>,
    clients: moka::sync::Cache<IpAddr, Arc<Mutex<Window>>>,
    /// Device cookie → the username it signed in (lower-case).
    devices: moka::sync::Cache<String, String>,
}

/// How long a device cookie is honoured.
pub const DEVICE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LoginLimiter {
    /// A limiter with these parameters.
    pub fn new(params: LimiterParams) -> LoginLimiter {
        let idle = params.window.max(params.max_delay);
        LoginLimiter {
            params,
            pairs: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(idle)
                .build(),
            clients: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(params.window)
                .build(),
            devices: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(DEVICE_TTL)
                .build(),
        }
    }

    /// The device cookie, if it is one this limiter issued for `username`.
    fn device<'a>(&self, username: &str, device: Option<&'a str>) -> Option<&'a str> {
        let d = device.filter(|d| well_formed_token(d))?;
        let known = self.devices.get(d)?;
        known.eq_ignore_ascii_case(username).then_some(d)
    }

    fn pair_key(username: &str, client: IpAddr, device: Option<&str>) -> String {
        match device {
            Some(d) => format!("d:{d}"),
            None => format!("p:{client}:{}", username.to_lowercase()),
        }
    }

    /// Counts an attempt by `username` from `client` (with the `device` cookie the
    /// browser sent, if any) as a failure until [`succeeded`](Self::succeeded) says
    /// otherwise, or refuses it with how long to wait.
    pub fn attempt(
        &self,
        username: &str,
        client: IpAddr,
        device: Option<&str>,
    ) -> Result<(), Refused> {
        let now = tokio::time::Instant::now();
        let device = self.device(username, device);
        let pair = self
            .pairs
            .get_with(Self::pair_key(username, client, device), || {
                Arc::new(Mutex::new(Pair {
                    failures: 0,
                    next: now,
                }))
            });
        let window = self.clients.get_with(client, || {
            Arc::new(Mutex::new(Window {
                start: now,
                count: 0,
            }))
        });
        let mut pair = lock(&pair);
        if pair.next > now {
            return Err(Refused::Pair(pair.next - now));
        }
        let mut window = lock(&window);
        if now.duration_since(window.start) >= self.params.window {
            window.start = now;
            window.count = 0;
        }
        if device.is_none() && window.count >= self.params.per_client {
            return Err(Refused::Client(
                self.params.window - now.duration_since(window.start),
            ));
        }
        window.count += 1;
        pair.failures += 1;
        if let Some(over) = pair.failures.checked_sub(self.params.free_failures + 1) {
            let delay = Duration::from_secs(1u64 << over.min(30)).min(self.params.max_delay);
            pair.next = now + delay;
        }
        Ok(())
    }

    /// Forgets the failure an attempt counted as (the password was right): the
    /// pair starts afresh and the address's count is given back. Returns a new
    /// device cookie value for the browser, which exempts it from the address
    /// ceiling for this username.
    pub fn succeeded(&self, username: &str, client: IpAddr, device: Option<&str>) -> String {
        let known = self.device(username, device);
        self.forgive(username, client, known);
        if let Some(d) = known {
            return d.to_string();
        }
        let (token, _) = new_session_token();
        self.devices.insert(token.clone(), username.to_lowercase());
        token
    }

    /// Forgets the failure a right password's attempt counted as, without issuing
    /// a device cookie (a signed-in user confirming their password).
    pub fn forgive(&self, username: &str, client: IpAddr, device: Option<&str>) {
        let known = self.device(username, device);
        self.pairs
            .invalidate(&Self::pair_key(username, client, known));
        self.pairs
            .invalidate(&Self::pair_key(username, client, None));
        if let Some(w) = self.clients.get(&client) {
            let mut w = lock(&w);
            w.count = w.count.saturating_sub(1);
        }
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
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_delays_pairs_caps_addresses_and_spares_known_devices() {
        let l = LoginLimiter::new(LimiterParams {
            free_failures: 2,
            max_delay: Duration::from_secs(8),
            per_client: 20,
            window: Duration::from_secs(600),
        });
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        // Two free failures, then waits that double up to the ceiling.
        let mut waits = Vec::new();
        for _ in 0..8 {
            loop {
                match l.attempt("ann", a, None) {
                    Ok(()) => break,
                    Err(Refused::Pair(d)) => {
                        waits.push(d.as_secs());
                        tokio::time::advance(d).await;
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8]);
        // The same username from another address is not slowed down at all.
        assert!(l.attempt("ann", b, None).is_ok());
        let device = l.succeeded("ann", b, None);
        assert!(well_formed_token(&device));

        // Spraying: an address's failures across usernames meet a ceiling.
        let c: IpAddr = "10.0.0.3".parse().expect("ip");
        let device_c = l.succeeded("cat", c, None);
        for i in 0..20 {
            assert!(l.attempt(&format!("user{i}"), c, None).is_ok(), "{i}");
        }
        assert!(matches!(
            l.attempt("user99", c, None),
            Err(Refused::Client(_))
        ));
        assert!(matches!(l.attempt("cat", c, None), Err(Refused::Client(_))));
        // A device cookie from cat's earlier sign-in gets through, for cat only.
        assert!(l.attempt("cat", c, Some(&device_c)).is_ok());
        assert_eq!(l.succeeded("cat", c, Some(&device_c)), device_c);
        assert!(matches!(
            l.attempt("user99", c, Some(&device_c)),
            Err(Refused::Client(_))
        ));
        assert!(matches!(
            l.attempt("cat", c, Some(&"ab".repeat(32))),
            Err(Refused::Client(_))
        ));
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(l.attempt("user99", c, None).is_ok(), "a new window");
    }
}
