//! Upstreams: which origin serves an object, and what to do when it fails.
//!
//! Each object goes to one upstream by rendezvous (highest random weight) hashing
//! of its cache key, so each origin's page cache holds its own share and adding or
//! removing an origin moves only that origin's share. The other upstreams, in hash
//! order, are failovers.
//!
//! What counts as alive: an upstream leaves rotation when it cannot be reached
//! (connection refused or reset, timeouts) — one failed probe, or
//! `BREAKER_THRESHOLD` failed requests in a row — or when real requests get 5xx
//! answers `BREAKER_THRESHOLD` times in a row. Any HTTP answer to the probe shows
//! the server is up (a generic origin answers its health path 404): it brings
//! back an upstream that was unreachable, but not one that fails real requests,
//! which comes back when a real request succeeds (after `BREAKER_COOLDOWN`, one
//! request tries it). With `health_check_strict`, a 5xx answer to the probe also
//! takes it out, and a 2xx-4xx one brings it back. Each transition is logged
//! once: WARN with why on the way out, INFO on the way back.
//!
//! `connect` builds the HTTP(S) connector, `send` sends a request with failover,
//! `health` runs the active health checks.

mod connect;
mod health;
mod send;

pub use connect::parse_upstream;
pub(crate) use connect::upstream_connector;
pub(crate) use health::health_paths;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{StatusCode, Uri};
use sha2::{Digest, Sha256};

/// Consecutive failures that open an upstream's breaker.
pub const BREAKER_THRESHOLD: u32 = 3;

/// How long an open breaker keeps an upstream out of rotation.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

/// The path an upstream's health is probed at unless configured otherwise.
pub const DEFAULT_HEALTH_PATH: &str = "/_keyframe/healthz";

/// In rotation.
const IN: u8 = 0;
/// Out: connections fail or time out.
const UNREACHABLE: u8 = 1;
/// Out: it answers, with 5xx.
const FAILING: u8 = 2;

/// Why a request to (or a probe of) an upstream failed.
#[derive(Clone, Debug)]
pub enum Failure {
    /// No answer: connection refused or reset, a timeout, a body cut short.
    Unreachable(String),
    /// An answer with this (5xx) status.
    Status(StatusCode),
}

impl Failure {
    fn state(&self) -> u8 {
        match self {
            Failure::Unreachable(_) => UNREACHABLE,
            Failure::Status(_) => FAILING,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable: {why}"),
            Failure::Status(s) => write!(f, "answered {}", s.as_u16()),
        }
    }
}

/// One upstream origin (or parent edge).
#[derive(Debug)]
pub struct Upstream {
    /// Base URL: scheme, authority, optional path prefix.
    pub base: Uri,
    /// The authority as text, hashed for rendezvous.
    pub name: String,
    /// The path (after the base's prefix) its health is probed at.
    pub health_path: String,
    failures: AtomicU32,
    /// Unix millis until which the breaker is open (0: closed).
    open_until: AtomicU64,
    /// `IN` rotation, or why not (`UNREACHABLE`, `FAILING`).
    state: AtomicU8,
}

impl Upstream {
    /// A new upstream with a closed breaker, probed at [`DEFAULT_HEALTH_PATH`].
    pub fn new(base: Uri) -> Self {
        let name = base.to_string();
        Upstream {
            base,
            name,
            health_path: DEFAULT_HEALTH_PATH.to_string(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            state: AtomicU8::new(IN),
        }
    }

    /// This upstream, probed at `path` instead.
    pub fn with_health_path(mut self, path: &str) -> Self {
        self.health_path = path.to_string();
        self
    }

    /// Whether the breaker lets requests through at `now` (an upstream out of
    /// rotation gets one trial request once its cool-down has passed).
    pub fn available(&self, now: SystemTime) -> bool {
        self.open_until.load(Ordering::Relaxed) <= millis(now)
    }

    /// Whether it is in rotation (no failure since its last success).
    pub fn in_rotation(&self) -> bool {
        self.state.load(Ordering::Relaxed) == IN
    }

    /// Records a success: the breaker closes. True when this brought the
    /// upstream back into rotation (logged, once).
    pub fn succeeded(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until.store(0, Ordering::Relaxed);
        let back = self.state.swap(IN, Ordering::Relaxed) != IN;
        if back {
            tracing::info!(upstream = %self.name, "upstream back in rotation");
        }
        back
    }

    /// Records a failure with no more detail (a response body cut short);
    /// returns true when this one took the upstream out of rotation.
    pub fn failed(&self, now: SystemTime) -> bool {
        self.failed_because(now, Failure::Unreachable("a response body failed".into()))
    }

    /// Records a failed request; returns true when this one took the upstream
    /// out of rotation (logged, once, with `why`).
    pub fn failed_because(&self, now: SystemTime, why: Failure) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            self.open_until
                .store(millis(now + BREAKER_COOLDOWN), Ordering::Relaxed);
            return self.leave(&why, n);
        }
        false
    }

    /// Records the result of an active health check: the status it was
    /// answered with, or why there was no answer. `hold`: how long a failed
    /// check keeps the upstream out (until then it is a last resort only),
    /// unless a check or a request succeeds first. True when the upstream
    /// changed rotation.
    pub fn checked(
        &self,
        now: SystemTime,
        hold: Duration,
        result: Result<StatusCode, String>,
        strict: bool,
    ) -> bool {
        let failure = match result {
            Err(why) => Failure::Unreachable(why),
            Ok(status) if strict && status.is_server_error() => Failure::Status(status),
            Ok(_) => {
                // An answer shows the server is up; whether it serves, only real
                // requests (or a strict probe) tell. So it brings back an
                // unreachable upstream, and leaves the count of failed requests
                // of one in rotation alone.
                let back = match self.state.load(Ordering::Relaxed) {
                    IN => false,
                    UNREACHABLE => true,
                    _ => strict,
                };
                return back && self.succeeded();
            }
        };
        self.failures
            .fetch_max(BREAKER_THRESHOLD, Ordering::Relaxed);
        self.open_until
            .fetch_max(millis(now + hold.max(BREAKER_COOLDOWN)), Ordering::Relaxed);
        self.leave(&failure, BREAKER_THRESHOLD)
    }

    /// Marks the upstream out of rotation for `why`; logs and returns true if
    /// it was in.
    fn leave(&self, why: &Failure, failures: u32) -> bool {
        let was = self.state.swap(why.state(), Ordering::Relaxed);
        if was == IN {
            tracing::warn!(
                upstream = %self.name,
                why = %why,
                failures,
                "upstream out of rotation"
            );
        }
        was == IN
    }

    /// The full URI of `path_and_query` on this upstream.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let prefix = self.base.path().trim_end_matches('/');
        Uri::builder()
            .scheme(self.base.scheme_str().unwrap_or("http"))
            .authority(
                self.base
                    .authority()
                    .map(|a| a.as_str())
                    .unwrap_or_default(),
            )
            .path_and_query(format!("{prefix}{path_and_query}"))
            .build()
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The weight of `upstream` for `key` in rendezvous hashing.
pub fn rendezvous_weight(key: &str, upstream: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(upstream.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// A set of upstreams.
#[derive(Debug, Clone)]
pub struct Upstreams {
    all: Arc<Vec<Arc<Upstream>>>,
    /// The first upstream always comes first while available (a shield parent),
    /// the rest are failovers in rendezvous order.
    preferred: bool,
}

impl Upstreams {
    /// Upstreams from base URIs.
    pub fn new(bases: Vec<Uri>) -> Self {
        Upstreams {
            all: Arc::new(
                bases
                    .into_iter()
                    .map(|b| Arc::new(Upstream::new(b)))
                    .collect(),
            ),
            preferred: false,
        }
    }

    /// Upstreams already built (with their health paths); with `preferred`, the
    /// first (a parent edge) is always tried first.
    pub fn of(upstreams: Vec<Upstream>, preferred: bool) -> Self {
        Upstreams {
            all: Arc::new(upstreams.into_iter().map(Arc::new).collect()),
            preferred,
        }
    }

    /// Upstreams where the first (a parent edge) is always tried first.
    pub fn with_preferred(bases: Vec<Uri>) -> Self {
        Upstreams {
            preferred: true,
            ..Upstreams::new(bases)
        }
    }

    /// Every upstream, in configuration order.
    pub fn all(&self) -> &[Arc<Upstream>] {
        &self.all
    }

    /// The upstreams to try for `key`, best first: available ones in rendezvous
    /// order, then (as a last resort) the ones whose breaker is open.
    pub fn order(&self, key: &str, now: SystemTime) -> Vec<Arc<Upstream>> {
        let mut v: Vec<_> = self
            .all
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let w = if self.preferred && i == 0 {
                    u64::MAX
                } else {
                    rendezvous_weight(key, &u.name)
                };
                (u.available(now), w, u.clone())
            })
            .collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        v.into_iter().map(|(_, _, u)| u).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(n: usize) -> Upstreams {
        Upstreams::new(
            (0..n)
                .map(|i| format!("http://10.0.0.{i}:80").parse().expect("uri"))
                .collect(),
        )
    }

    #[test]
    fn rendezvous_spreads_keys_and_is_stable() {
        let u = ups(3);
        let now = SystemTime::now();
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let key = format!("/v1/objects/{i}");
            let first = u.order(&key, now)[0].clone();
            assert_eq!(u.order(&key, now)[0].name, first.name, "stable");
            let idx = u
                .all()
                .iter()
                .position(|x| x.name == first.name)
                .expect("known");
            counts[idx] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn removing_an_upstream_moves_only_its_share() {
        let three = ups(3);
        let two = Upstreams::new(three.all()[..2].iter().map(|u| u.base.clone()).collect());
        let now = SystemTime::now();
        for i in 0..1000 {
            let key = format!("k{i}");
            let before = three.order(&key, now)[0].name.clone();
            let after = two.order(&key, now)[0].name.clone();
            if before != three.all()[2].name {
                assert_eq!(before, after, "key {key} moved needlessly");
            }
        }
    }

    #[test]
    fn breaker_opens_after_threshold_and_demotes() {
        let u = ups(2);
        let now = SystemTime::now();
        let key = "some-key";
        let first = u.order(key, now)[0].clone();
        assert!(!first.failed(now));
        assert!(!first.failed(now));
        assert!(first.failed(now), "third failure opens the breaker");
        assert!(!first.available(now));
        assert_ne!(u.order(key, now)[0].name, first.name, "demoted");
        assert_eq!(u.order(key, now).len(), 2, "still a last resort");
        assert!(first.available(now + BREAKER_COOLDOWN + Duration::from_millis(1)));
        first.succeeded();
        assert_eq!(u.order(key, now)[0].name, first.name);
    }

    #[test]
    fn transitions_happen_once_each_way() {
        let u = Upstream::new("http://h:1".parse().expect("uri"));
        let now = SystemTime::now();
        let refused = || Failure::Unreachable("connection refused".into());
        assert!(!u.failed_because(now, refused()));
        assert!(!u.failed_because(now, refused()));
        assert!(u.failed_because(now, refused()), "the third takes it out");
        assert!(!u.in_rotation());
        for _ in 0..5 {
            assert!(!u.failed_because(now, refused()), "already out");
        }
        let hold = Duration::from_secs(10);
        assert!(!u.checked(now, hold, Err("refused".into()), false));
        // Any answer to the probe brings back an unreachable upstream.
        assert!(u.checked(now, hold, Ok(StatusCode::NOT_FOUND), false));
        assert!(u.in_rotation() && u.available(now));
        assert!(!u.succeeded(), "already in");
        // A failed probe takes it out at once.
        assert!(u.checked(now, hold, Err("timed out".into()), false));
        assert!(!u.available(now + BREAKER_COOLDOWN));
        assert!(u.succeeded(), "a real request that succeeds brings it back");
    }

    #[test]
    fn a_probe_answer_does_not_bring_back_an_upstream_failing_real_requests() {
        let u = Upstream::new("http://h:1".parse().expect("uri"));
        let now = SystemTime::now();
        let hold = Duration::from_secs(2);
        for _ in 0..3 {
            u.failed_because(now, Failure::Status(StatusCode::SERVICE_UNAVAILABLE));
        }
        assert!(!u.in_rotation());
        // Lenient: the probe's 200 (or 500) only shows it is up.
        assert!(!u.checked(now, hold, Ok(StatusCode::OK), false));
        assert!(!u.checked(now, hold, Ok(StatusCode::INTERNAL_SERVER_ERROR), false));
        assert!(!u.in_rotation() && !u.available(now));
        // After the cool-down one request may try it.
        assert!(u.available(now + BREAKER_COOLDOWN + Duration::from_millis(1)));
        // Strict: a 2xx probe is believed, a 5xx one takes it out.
        assert!(u.checked(now, hold, Ok(StatusCode::OK), true));
        assert!(u.checked(now, hold, Ok(StatusCode::SERVICE_UNAVAILABLE), true));
        assert!(!u.in_rotation());
        // Lenient probes answered 5xx keep a live upstream in.
        let v = Upstream::new("http://h:2".parse().expect("uri"));
        assert!(!v.checked(now, hold, Ok(StatusCode::INTERNAL_SERVER_ERROR), false));
        assert!(v.in_rotation());
        // ... and do not reset the count of its failed requests: the third in a
        // row takes it out, probes or not.
        let failing = || Failure::Status(StatusCode::BAD_GATEWAY);
        assert!(!v.failed_because(now, failing()));
        assert!(!v.failed_because(now, failing()));
        assert!(!v.checked(now, hold, Ok(StatusCode::OK), false));
        assert!(!v.checked(now, hold, Ok(StatusCode::OK), true));
        assert!(v.failed_because(now, failing()));
    }

    #[test]
    fn uris_keep_the_base_prefix() {
        let u = Upstream::new("http://h:1/base/".parse().expect("uri"));
        assert_eq!(
            u.uri_for("/v1/objects/a?x=1").expect("uri").to_string(),
            "http://h:1/base/v1/objects/a?x=1"
        );
    }
}
