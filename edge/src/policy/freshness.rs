//! Freshness lifetime, age, and the serve/revalidate decision (RFC 9111 §4.2,
//! RFC 5861 stale-while-revalidate and stale-if-error).

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{heuristic_status, RequestDirectives, ResponseDirectives};

/// Heuristic freshness is capped at this (§4.2.2 suggests a fraction of the
/// time since modification; caches commonly cap it).
pub const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

fn date(h: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(h.get(name)?.to_str().ok()?.trim()).ok()
}

/// The freshness lifetime (RFC 9111 §4.2.1): s-maxage, max-age, Expires − Date,
/// then heuristic freshness where allowed. None when nothing gives one.
pub fn freshness_lifetime(
    resp: &HeaderMap,
    dirs: &ResponseDirectives,
    status: StatusCode,
) -> Option<Duration> {
    if dirs.invalid {
        return Some(Duration::ZERO);
    }
    if let Some(s) = dirs.s_maxage {
        return Some(Duration::from_secs(s));
    }
    if let Some(m) = dirs.max_age {
        return Some(Duration::from_secs(m));
    }
    // A targeted field that applies replaces Expires too (RFC 9213 §2.1).
    if !dirs.targeted && resp.contains_key(header::EXPIRES) {
        let expires = date(resp, header::EXPIRES);
        let base = date(resp, header::DATE);
        return Some(match (expires, base) {
            (Some(e), Some(d)) => e.duration_since(d).unwrap_or(Duration::ZERO),
            // An invalid Expires (e.g. "0") means already expired.
            _ => Duration::ZERO,
        });
    }
    if heuristic_status(status) || dirs.public {
        if let (Some(lm), Some(d)) = (date(resp, header::LAST_MODIFIED), date(resp, header::DATE)) {
            if let Ok(since) = d.duration_since(lm) {
                return Some((since / 10).min(HEURISTIC_CAP));
            }
        }
    }
    None
}

/// The greatest delta-seconds value this cache represents: a larger one counts as
/// 2^31 (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// A delta-seconds value (`1*DIGIT`), capped at [`DELTA_SECONDS_MAX`]: one too
/// large to represent is 2^31, never dropped (an `Age` of 10^20 is old, not 0).
pub fn delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

/// The current age of a stored response (RFC 9111 §4.2.3).
pub fn current_age(
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let age_value = resp
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| delta_seconds(v.trim()))
        .map(Duration::from_secs)
        .unwrap_or_default();
    let apparent_age = date(resp, header::DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or_default();
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    let corrected_age_value = age_value + response_delay;
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now.duration_since(response_time).unwrap_or_default();
    corrected_initial_age + resident_time
}

/// The `Age` header for an age (seconds, capped at 2^31 as §5.1 asks).
pub fn age_header_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs().min(DELTA_SECONDS_MAX))
}

/// What to do with a stored response for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Fresh,
    /// Stale: serve it only if `serve_while_revalidate` (and revalidate in the
    /// background), else revalidate first.
    Stale { serve_while_revalidate: bool },
    /// Revalidate before serving.
    MustRevalidate,
}

/// Decides whether a stored response may be served (RFC 9111 §4.2, §5.2.1,
/// RFC 5861 stale-while-revalidate).
pub fn decide(
    lifetime: Duration,
    age: Duration,
    resp: &ResponseDirectives,
    req: &RequestDirectives,
) -> Decision {
    if resp.no_cache || req.no_cache {
        return Decision::MustRevalidate;
    }
    // Windows are compared at full precision: truncating to whole seconds would
    // stretch every one of them by up to a second.
    let secs = Duration::from_secs;
    if req.max_age.is_some_and(|m| age > secs(m)) {
        return Decision::MustRevalidate;
    }
    let fresh = age < lifetime;
    if fresh {
        let left = lifetime - age;
        if req.min_fresh.is_some_and(|m| left < secs(m)) {
            return Decision::MustRevalidate;
        }
        return Decision::Fresh;
    }
    // Stale from here on.
    if resp.must_revalidate || resp.proxy_revalidate || resp.s_maxage.is_some() {
        return Decision::MustRevalidate;
    }
    let staleness = age - lifetime;
    match req.max_stale {
        Some(None) => return Decision::Fresh,
        Some(Some(n)) if staleness <= secs(n) => return Decision::Fresh,
        _ => {}
    }
    if resp
        .stale_while_revalidate
        .is_some_and(|w| staleness <= secs(w))
    {
        return Decision::Stale {
            serve_while_revalidate: true,
        };
    }
    Decision::Stale {
        serve_while_revalidate: false,
    }
}

/// Whether a stale response may be served because revalidation failed
/// (RFC 5861 §4 stale-if-error; never with must-revalidate, proxy-revalidate or
/// s-maxage, RFC 9111 §4.2.4).
pub fn may_serve_stale_on_error(
    lifetime: Duration,
    age: Duration,
    resp: &ResponseDirectives,
    req: &RequestDirectives,
) -> bool {
    if resp.must_revalidate || resp.proxy_revalidate || resp.s_maxage.is_some() || resp.no_cache {
        return false;
    }
    let staleness = age.saturating_sub(lifetime);
    let within = |w: u64| staleness <= Duration::from_secs(w);
    resp.stale_if_error.is_some_and(within) || req.stale_if_error.is_some_and(within)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::hm;
    use proptest::prelude::*;
    use std::time::Duration;

    // RFC 9213 §2.1: when a targeted field applies, Cache-Control *and* Expires
    // are ignored; without one, Expires gives the lifetime.
    #[test]
    fn a_targeted_field_replaces_expires() {
        use crate::policy::ResponseDirectives;
        let h = hm(&[
            ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ("expires", "Mon, 07 Dec 2026 11:00:00 GMT"),
            ("cdn-cache-control", "must-revalidate"),
        ]);
        let d = ResponseDirectives::for_shared_cache(&h, &["cdn-cache-control"]);
        assert!(d.targeted);
        assert_eq!(freshness_lifetime(&h, &d, StatusCode::OK), None);
        let d = ResponseDirectives::for_shared_cache(&h, &[]);
        assert_eq!(
            freshness_lifetime(&h, &d, StatusCode::OK),
            Some(Duration::from_secs(3600))
        );
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    // §4.2.1 and §4.2.2: freshness lifetime.
    #[test]
    fn lifetimes() {
        let f = |pairs: &[(&str, &str)], st: u16| {
            let h = hm(pairs);
            freshness_lifetime(
                &h,
                &ResponseDirectives::parse(&h),
                StatusCode::from_u16(st).expect("status"),
            )
        };
        assert_eq!(
            f(&[("cache-control", "max-age=60, s-maxage=5")], 200),
            Some(S(5))
        );
        assert_eq!(f(&[("cache-control", "max-age=60")], 200), Some(S(60)));
        assert_eq!(
            f(
                &[
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("expires", "Sun, 06 Nov 1994 09:49:37 GMT")
                ],
                200
            ),
            Some(S(3600))
        );
        assert_eq!(
            f(
                &[("date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("expires", "0")],
                200
            ),
            Some(Duration::ZERO)
        );
        // Heuristic: 10% of Date − Last-Modified (10 days → 1 day, the cap).
        assert_eq!(
            f(
                &[
                    ("date", "Wed, 16 Nov 1994 08:49:37 GMT"),
                    ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
                ],
                200
            ),
            Some(HEURISTIC_CAP)
        );
        assert_eq!(
            f(
                &[
                    ("date", "Sun, 06 Nov 1994 18:49:37 GMT"),
                    ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
                ],
                200
            ),
            Some(S(3600))
        );
        // Not for statuses that aren't heuristically cacheable, unless public.
        assert_eq!(
            f(
                &[
                    ("date", "Sun, 06 Nov 1994 18:49:37 GMT"),
                    ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
                ],
                201
            ),
            None
        );
        assert_eq!(f(&[], 200), None);
    }

    // §4.2.3: the age calculation with concrete numbers.
    #[test]
    fn delta_seconds_too_large_count_as_two_to_the_31() {
        assert_eq!(
            delta_seconds("99999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(delta_seconds("4294967296"), Some(DELTA_SECONDS_MAX));
        assert_eq!(delta_seconds("100"), Some(100));
        assert_eq!(delta_seconds("-1"), None);
        assert_eq!(delta_seconds("1.5"), None);
        assert_eq!(delta_seconds(""), None);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = hm(&[("age", "99999999999999999999")]);
        assert_eq!(
            current_age(&h, t, t, t),
            Duration::from_secs(DELTA_SECONDS_MAX)
        );
    }

    // A window of N seconds ends N seconds after the response went stale, not at the
    // next whole second: 1.6 s past a 1 s lifetime with stale-while-revalidate=1 is
    // past the window (it counted as 1 s, so a client got the stale answer).
    #[test]
    fn stale_windows_are_not_stretched_to_the_next_second() {
        let h = hm(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=1, stale-if-error=1",
        )]);
        let resp = ResponseDirectives::parse(&h);
        let req = RequestDirectives::default();
        let life = Duration::from_secs(1);
        assert_eq!(
            decide(life, Duration::from_millis(1900), &resp, &req),
            Decision::Stale {
                serve_while_revalidate: true
            }
        );
        assert_eq!(
            decide(life, Duration::from_millis(2600), &resp, &req),
            Decision::Stale {
                serve_while_revalidate: false
            }
        );
        assert!(may_serve_stale_on_error(
            life,
            Duration::from_millis(1900),
            &resp,
            &req
        ));
        assert!(!may_serve_stale_on_error(
            life,
            Duration::from_millis(2600),
            &resp,
            &req
        ));
        let max_age_1 = RequestDirectives {
            max_age: Some(1),
            ..RequestDirectives::default()
        };
        assert_eq!(
            decide(
                Duration::from_secs(60),
                Duration::from_millis(1500),
                &resp,
                &max_age_1
            ),
            Decision::MustRevalidate
        );
    }

    #[test]
    fn age_calculation() {
        let t0 = SystemTime::UNIX_EPOCH + S(1_000_000);
        let h = hm(&[("date", &httpdate::fmt_http_date(t0)), ("age", "10")]);
        // request at t0-2, response at t0+3 (so apparent age 3, delay 5), now t0+100.
        let age = current_age(&h, t0 - S(2), t0 + S(3), t0 + S(100));
        // corrected_age_value = 10 + 5 = 15 > apparent 3; resident 97 → 112.
        assert_eq!(age, S(112));
        let h = hm(&[("date", &httpdate::fmt_http_date(t0 - S(50)))]);
        assert_eq!(current_age(&h, t0, t0, t0 + S(1)), S(51));
        assert_eq!(age_header_value(S(5)), HeaderValue::from(5u64));
        assert_eq!(
            age_header_value(S(u64::MAX / 2)),
            HeaderValue::from(1u64 << 31)
        );
    }

    // §4.2, §5.2.1, §5.2.2, RFC 5861.
    #[test]
    fn decisions() {
        let r = |s: &str| ResponseDirectives::parse(&hm(&[("cache-control", s)]));
        let q = |s: &str| RequestDirectives::parse(&hm(&[("cache-control", s)]));
        let none = RequestDirectives::default();
        assert_eq!(
            decide(S(60), S(10), &r("max-age=60"), &none),
            Decision::Fresh
        );
        assert_eq!(
            decide(S(60), S(60), &r("max-age=60"), &none),
            Decision::Stale {
                serve_while_revalidate: false
            }
        );
        assert_eq!(
            decide(S(60), S(10), &r("no-cache"), &none),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(S(60), S(10), &r("max-age=60"), &q("no-cache")),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(S(60), S(10), &r("max-age=60"), &q("max-age=5")),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(S(60), S(55), &r("max-age=60"), &q("min-fresh=10")),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(S(60), S(70), &r("max-age=60"), &q("max-stale")),
            Decision::Fresh
        );
        assert_eq!(
            decide(S(60), S(70), &r("max-age=60"), &q("max-stale=5")),
            Decision::Stale {
                serve_while_revalidate: false
            }
        );
        assert_eq!(
            decide(
                S(60),
                S(70),
                &r("max-age=60, must-revalidate"),
                &q("max-stale")
            ),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(S(60), S(70), &r("s-maxage=60"), &q("max-stale")),
            Decision::MustRevalidate
        );
        assert_eq!(
            decide(
                S(60),
                S(70),
                &r("max-age=60, stale-while-revalidate=30"),
                &none
            ),
            Decision::Stale {
                serve_while_revalidate: true
            }
        );
        assert_eq!(
            decide(
                S(60),
                S(100),
                &r("max-age=60, stale-while-revalidate=30"),
                &none
            ),
            Decision::Stale {
                serve_while_revalidate: false
            }
        );
    }

    #[test]
    fn stale_on_error() {
        let r = |s: &str| ResponseDirectives::parse(&hm(&[("cache-control", s)]));
        let none = RequestDirectives::default();
        assert!(may_serve_stale_on_error(
            S(60),
            S(100),
            &r("max-age=60, stale-if-error=60"),
            &none
        ));
        assert!(!may_serve_stale_on_error(
            S(60),
            S(200),
            &r("max-age=60, stale-if-error=60"),
            &none
        ));
        assert!(!may_serve_stale_on_error(
            S(60),
            S(100),
            &r("max-age=60, stale-if-error=60, must-revalidate"),
            &none
        ));
        let q = RequestDirectives::parse(&hm(&[("cache-control", "stale-if-error=1000")]));
        assert!(may_serve_stale_on_error(
            S(60),
            S(100),
            &r("max-age=60"),
            &q
        ));
        assert!(!may_serve_stale_on_error(
            S(60),
            S(100),
            &r("max-age=60"),
            &none
        ));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(v in "[ -~]{0,80}") {
            if let Ok(val) = HeaderValue::from_str(&v) {
                let mut h = HeaderMap::new();
                h.insert(header::CACHE_CONTROL, val.clone());
                h.insert(header::EXPIRES, val.clone());
                h.insert(header::AGE, val);
                let d = ResponseDirectives::parse(&h);
                let _ = RequestDirectives::parse(&h);
                let _ = freshness_lifetime(&h, &d, StatusCode::OK);
                let _ = current_age(&h, SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH, SystemTime::now());
            }
        }

        #[test]
        fn never_fresh_past_the_lifetime_without_max_stale(life in 0u64..1000, age in 0u64..2000, swr in proptest::option::of(0u64..100)) {
            prop_assume!(age >= life);
            let resp = ResponseDirectives { max_age: Some(life), stale_while_revalidate: swr, ..Default::default() };
            prop_assert_ne!(decide(S(life), S(age), &resp, &RequestDirectives::default()), Decision::Fresh);
        }
    }
}
