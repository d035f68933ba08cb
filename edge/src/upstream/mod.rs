//! Upstreams: which origin serves an object, and what to do when it fails.
//!
//! Each object goes to one upstream by rendezvous (highest random weight) hashing
//! of its cache key, so each origin's page cache holds its own share and adding or
//! removing an origin moves only that origin's share. The other upstreams, in hash
//! order, are failovers. A circuit breaker stops sending to an upstream after
//! repeated failures until a cool-down passes or an active health check finds it
//! healthy again.
//!
//! `connect` builds the HTTP(S) connector, `send` sends a request with failover,
//! `health` runs the active health checks.

mod connect;
mod health;
mod send;

pub use connect::parse_upstream;
pub(crate) use connect::upstream_connector;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Uri;
use sha2::{Digest, Sha256};

/// Consecutive failures that open an upstream's breaker.
pub const BREAKER_THRESHOLD: u32 = 3;

/// How long an open breaker keeps an upstream out of rotation.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

/// One upstream origin (or parent edge).
#[derive(Debug)]
pub struct Upstream {
    /// Base URL: scheme, authority, optional path prefix.
    pub base: Uri,
    /// The authority as text, hashed for rendezvous.
    pub name: String,
    failures: AtomicU32,
    /// Unix millis until which the breaker is open (0: closed).
    open_until: AtomicU64,
}

impl Upstream {
    /// A new upstream with a closed breaker.
    pub fn new(base: Uri) -> Self {
        let name = base.to_string();
        Upstream {
            base,
            name,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    /// Whether the breaker lets requests through at `now`.
    pub fn available(&self, now: SystemTime) -> bool {
        self.open_until.load(Ordering::Relaxed) <= millis(now)
    }

    /// Records a success: the breaker closes.
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until.store(0, Ordering::Relaxed);
    }

    /// Records a failure; returns true when this one opened the breaker.
    pub fn failed(&self, now: SystemTime) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            let until = millis(now + BREAKER_COOLDOWN);
            let prev = self.open_until.swap(until, Ordering::Relaxed);
            return prev <= millis(now);
        }
        false
    }

    /// Records a failed active health check: the upstream stays out of rotation
    /// (a last resort only) for `hold`, or until a check or a request succeeds.
    pub fn check_failed(&self, now: SystemTime, hold: Duration) {
        self.failures
            .fetch_max(BREAKER_THRESHOLD, Ordering::Relaxed);
        self.open_until
            .fetch_max(millis(now + hold.max(BREAKER_COOLDOWN)), Ordering::Relaxed);
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
    fn uris_keep_the_base_prefix() {
        let u = Upstream::new("http://h:1/base/".parse().expect("uri"));
        assert_eq!(
            u.uri_for("/v1/objects/a?x=1").expect("uri").to_string(),
            "http://h:1/base/v1/objects/a?x=1"
        );
    }
}
