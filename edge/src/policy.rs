//! RFC 9111 shared-cache policy as pure functions: directives, storability,
//! freshness, age, the serve/revalidate decision, stale-on-error, 304 merging,
//! invalidation, hop-by-hop headers and `Cache-Status` (RFC 9211).
//!
//! No I/O and no clock: every function takes the times it needs. The edge is a
//! *shared* cache, so shared-cache rules apply (`s-maxage`, `private`,
//! `proxy-revalidate`, `Authorization`). `CDN-Cache-Control` (RFC 9213), when
//! present and valid, replaces `Cache-Control` for this cache's decisions.
//!
//! Choices where the RFC allows several: a directive given twice with different
//! values makes the response stale (§4.2.1); a qualified `no-cache="field"` is
//! treated like a bare `no-cache` (always revalidate), and a qualified `private`
//! like a bare one (not stored) — both stricter than required, never looser.
//! A response that sets a cookie is not stored, and a 304 never adds a cookie to a
//! stored response: RFC 9111 lets a shared cache store `Set-Cookie`, but serving one
//! client's cookie to every other is the classic way a CDN leaks sessions, so
//! Keyframe does as Varnish's and nginx's defaults do (the origin should not set
//! cookies on media it wants cached).

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Heuristic freshness is capped at this (§4.2.2 suggests a fraction of the
/// time since modification; caches commonly cap it).
pub const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

/// One parsed directive: name (lowercased) and optional value (unquoted).
fn directives(headers: &HeaderMap, name: &HeaderName) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        let s = String::from_utf8_lossy(v.as_bytes());
        let mut cur = String::new();
        let mut quoted = false;
        let mut parts = Vec::new();
        for c in s.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ',' if !quoted => parts.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        parts.push(cur);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .unwrap_or(v);
                    (n.trim().to_ascii_lowercase(), Some(v.to_string()))
                }
                None => (p.to_ascii_lowercase(), None),
            };
            out.push((n, v));
        }
    }
    out
}

/// A delta-seconds value: `Ok(None)` when absent, `Err` when given twice with
/// different values or not a number (the response is then treated as stale).
fn seconds(list: &[(String, Option<String>)], name: &str) -> Result<Option<u64>, ()> {
    let mut found: Option<u64> = None;
    for (n, v) in list {
        if n == name {
            let parsed = v
                .as_deref()
                .and_then(|v| {
                    v.parse::<u64>()
                        .ok()
                        .or_else(|| v.chars().all(|c| c.is_ascii_digit()).then_some(u64::MAX))
                })
                .ok_or(())?;
            match found {
                Some(prev) if prev != parsed => return Err(()),
                _ => found = Some(parsed),
            }
        }
    }
    Ok(found)
}

/// Response directives, as this shared cache reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub immutable: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// A freshness directive was malformed or conflicting: treat as stale.
    pub invalid: bool,
    /// Directives came from a targeted field (CDN-Cache-Control), not Cache-Control.
    pub targeted: bool,
}

impl ResponseDirectives {
    /// Parses the `Cache-Control` of a response.
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::from_list(&directives(headers, &header::CACHE_CONTROL))
    }

    fn from_list(list: &[(String, Option<String>)]) -> Self {
        let has = |n: &str| list.iter().any(|(k, _)| k == n);
        let mut invalid = false;
        let mut secs = |n: &str| match seconds(list, n) {
            Ok(v) => v,
            Err(()) => {
                invalid = true;
                None
            }
        };
        let max_age = secs("max-age");
        let s_maxage = secs("s-maxage");
        let stale_while_revalidate = secs("stale-while-revalidate");
        let stale_if_error = secs("stale-if-error");
        ResponseDirectives {
            max_age,
            s_maxage,
            no_store: has("no-store"),
            no_cache: has("no-cache"),
            private: has("private"),
            public: has("public"),
            must_revalidate: has("must-revalidate"),
            proxy_revalidate: has("proxy-revalidate"),
            immutable: has("immutable"),
            stale_while_revalidate,
            stale_if_error,
            invalid,
            targeted: false,
        }
    }

    /// The directives this cache obeys: those of the first targeted field in
    /// `targeted` (e.g. `cdn-cache-control`) that is present and parses, else
    /// `Cache-Control`'s (RFC 9213 §2.1).
    pub fn for_shared_cache(headers: &HeaderMap, targeted: &[&str]) -> Self {
        for t in targeted {
            let Ok(name) = HeaderName::try_from(*t) else {
                continue;
            };
            if !headers.contains_key(&name) {
                continue;
            }
            let list = directives(headers, &name);
            if list.is_empty() {
                continue;
            }
            let mut d = Self::from_list(&list);
            if !d.invalid {
                d.targeted = true;
                return d;
            }
        }
        Self::parse(headers)
    }
}

/// Request directives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<u64>,
    /// `Some(None)`: any staleness; `Some(Some(n))`: at most n seconds stale.
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
    pub stale_if_error: Option<u64>,
}

impl RequestDirectives {
    /// Parses a request's `Cache-Control` (and `Pragma: no-cache` when there is
    /// no `Cache-Control`, RFC 9111 §5.4).
    pub fn parse(headers: &HeaderMap) -> Self {
        let list = directives(headers, &header::CACHE_CONTROL);
        let has = |n: &str| list.iter().any(|(k, _)| k == n);
        let pragma_no_cache = !headers.contains_key(header::CACHE_CONTROL)
            && directives(headers, &header::PRAGMA)
                .iter()
                .any(|(k, _)| k == "no-cache");
        let max_stale = list
            .iter()
            .find(|(k, _)| k == "max-stale")
            .map(|(_, v)| v.as_deref().and_then(|v| v.parse::<u64>().ok()));
        RequestDirectives {
            no_cache: has("no-cache") || pragma_no_cache,
            no_store: has("no-store"),
            // An invalid max-age in a request is read as 0 (revalidate): safe.
            max_age: seconds(&list, "max-age").unwrap_or(Some(0)),
            max_stale,
            min_fresh: seconds(&list, "min-fresh").unwrap_or(None),
            only_if_cached: has("only-if-cached"),
            stale_if_error: seconds(&list, "stale-if-error").unwrap_or(None),
        }
    }
}

/// Why a response may not be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    RequestNoStore,
    NoStore,
    Private,
    SetCookie,
    Authorization,
    VaryStar,
    NoFreshnessNoValidator,
}

/// Statuses that are heuristically cacheable (RFC 9110 §15.1).
pub fn heuristic_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether a shared cache may store this response (RFC 9111 §3, §3.5).
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    dirs: &ResponseDirectives,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    if status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    if RequestDirectives::parse(req).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    if dirs.no_store {
        return Err(NotStorable::NoStore);
    }
    if dirs.private {
        return Err(NotStorable::Private);
    }
    if resp.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if req.contains_key(header::AUTHORIZATION)
        && !(dirs.public || dirs.s_maxage.is_some() || dirs.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if resp
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "*"))
    {
        return Err(NotStorable::VaryStar);
    }
    let explicit =
        dirs.max_age.is_some() || dirs.s_maxage.is_some() || resp.contains_key(header::EXPIRES);
    let validator = resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    if !(explicit || validator) {
        return Err(NotStorable::NoFreshnessNoValidator);
    }
    if !explicit && !heuristic_status(status) && !dirs.public {
        return Err(NotStorable::Status);
    }
    Ok(())
}

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
    if resp.contains_key(header::EXPIRES) {
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
        .and_then(|v| v.trim().parse::<u64>().ok())
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
    HeaderValue::from(age.as_secs().min(1 << 31))
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
    let age_s = age.as_secs();
    if req.max_age.is_some_and(|m| age_s > m) {
        return Decision::MustRevalidate;
    }
    let fresh = age < lifetime;
    if fresh {
        let left = (lifetime - age).as_secs();
        if req.min_fresh.is_some_and(|m| left < m) {
            return Decision::MustRevalidate;
        }
        return Decision::Fresh;
    }
    // Stale from here on.
    if resp.must_revalidate || resp.proxy_revalidate || resp.s_maxage.is_some() {
        return Decision::MustRevalidate;
    }
    let staleness = (age - lifetime).as_secs();
    match req.max_stale {
        Some(None) => return Decision::Fresh,
        Some(Some(n)) if staleness <= n => return Decision::Fresh,
        _ => {}
    }
    if resp.stale_while_revalidate.is_some_and(|w| staleness <= w) {
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
    let staleness = age.saturating_sub(lifetime).as_secs();
    resp.stale_if_error.is_some_and(|w| staleness <= w)
        || req.stale_if_error.is_some_and(|w| staleness <= w)
}

/// Updates stored headers from a 304 (RFC 9111 §3.2, §4.3.4): every field of the
/// 304 replaces the stored one, except hop-by-hop fields and those the stored
/// body depends on.
pub fn merge_not_modified(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let mut fresh = not_modified.clone();
    strip_hop_by_hop(&mut fresh);
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::SET_COOKIE,
    ] {
        fresh.remove(name);
    }
    let names: Vec<HeaderName> = fresh.keys().cloned().collect();
    for n in names {
        stored.remove(&n);
        for v in fresh.get_all(&n) {
            stored.append(n.clone(), v.clone());
        }
    }
}

/// Whether a response to `method` invalidates the stored responses of its target
/// (RFC 9111 §4.4: unsafe methods with a non-error status).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && (status.is_success() || status.is_redirection())
}

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): those named in `Connection`,
/// and Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(n);
    }
}

/// Why a request went forward (RFC 9211 §2.2 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fwd {
    Bypass,
    Method,
    UriMiss,
    VaryMiss,
    Miss,
    Request,
    Stale,
    Partial,
}

impl Fwd {
    fn token(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Partial => "partial",
        }
    }
}

/// One `Cache-Status` entry (RFC 9211).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Fwd>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<String>,
}

fn is_sf_token(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '*')
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}

fn sf_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl CacheStatus {
    /// The header value, e.g. `keyframe; hit; ttl=3599` or
    /// `keyframe; fwd=uri-miss; fwd-status=200; stored`.
    pub fn to_header_value(&self, cache_name: &str) -> HeaderValue {
        let mut s = if is_sf_token(cache_name) {
            cache_name.to_string()
        } else {
            sf_string(cache_name)
        };
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            s.push_str("; fwd=");
            s.push_str(f.token());
        }
        if let Some(st) = self.fwd_status {
            s.push_str(&format!("; fwd-status={st}"));
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!("; ttl={t}"));
        }
        if let Some(d) = &self.detail {
            s.push_str("; detail=");
            s.push_str(&sf_string(d));
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("keyframe"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::try_from(*k).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    // RFC 9111 §5.2.2: response directives.
    #[test]
    fn parses_response_directives() {
        let d = ResponseDirectives::parse(&hm(&[
            ("cache-control", "Public, MAX-AGE=60, s-maxage=\"120\""),
            (
                "cache-control",
                "must-revalidate, stale-while-revalidate=30, stale-if-error=600, immutable",
            ),
        ]));
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(120));
        assert!(d.public && d.must_revalidate && d.immutable);
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert_eq!(d.stale_if_error, Some(600));
        assert!(!d.invalid);
        let d = ResponseDirectives::parse(&hm(&[(
            "cache-control",
            "no-cache=\"set-cookie, x\", private",
        )]));
        assert!(d.no_cache && d.private);
    }

    // §4.2.1: conflicting duplicates and invalid values make the response stale.
    #[test]
    fn conflicting_or_invalid_freshness_is_stale() {
        let h = hm(&[("cache-control", "max-age=60, max-age=120")]);
        let d = ResponseDirectives::parse(&h);
        assert!(d.invalid);
        assert_eq!(
            freshness_lifetime(&h, &d, StatusCode::OK),
            Some(Duration::ZERO)
        );
        let h = hm(&[("cache-control", "max-age=soon")]);
        let d = ResponseDirectives::parse(&h);
        assert_eq!(
            freshness_lifetime(&h, &d, StatusCode::OK),
            Some(Duration::ZERO)
        );
        // The same value twice is fine.
        assert!(
            !ResponseDirectives::parse(&hm(&[("cache-control", "max-age=5, max-age=5")])).invalid
        );
        // Overflowing numbers saturate rather than fail.
        assert_eq!(
            ResponseDirectives::parse(&hm(&[("cache-control", "max-age=99999999999999999999999")]))
                .max_age,
            Some(u64::MAX)
        );
    }

    // RFC 9213: CDN-Cache-Control replaces Cache-Control for this cache.
    #[test]
    fn targeted_fields_win() {
        let h = hm(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
        ]);
        let d = ResponseDirectives::for_shared_cache(&h, &["cdn-cache-control"]);
        assert!(d.targeted && !d.no_store);
        assert_eq!(d.max_age, Some(600));
        let bad = hm(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=x"),
        ]);
        assert_eq!(
            ResponseDirectives::for_shared_cache(&bad, &["cdn-cache-control"]).max_age,
            Some(5)
        );
    }

    // §5.2.1 request directives, §5.4 Pragma.
    #[test]
    fn parses_request_directives() {
        let r = RequestDirectives::parse(&hm(&[(
            "cache-control",
            "max-age=10, max-stale, min-fresh=5, only-if-cached",
        )]));
        assert_eq!(r.max_age, Some(10));
        assert_eq!(r.max_stale, Some(None));
        assert_eq!(r.min_fresh, Some(5));
        assert!(r.only_if_cached);
        assert_eq!(
            RequestDirectives::parse(&hm(&[("cache-control", "max-stale=30")])).max_stale,
            Some(Some(30))
        );
        assert!(RequestDirectives::parse(&hm(&[("pragma", "no-cache")])).no_cache);
        assert!(
            !RequestDirectives::parse(&hm(&[
                ("pragma", "no-cache"),
                ("cache-control", "max-age=5")
            ]))
            .no_cache
        );
    }

    // §3 and §3.5: storing responses.
    #[test]
    fn storability() {
        let ok = hm(&[("cache-control", "max-age=60")]);
        let d = |h: &HeaderMap| ResponseDirectives::parse(h);
        let get = Method::GET;
        let none = HeaderMap::new();
        assert_eq!(storable(&get, &none, StatusCode::OK, &ok, &d(&ok)), Ok(()));
        assert_eq!(
            storable(&Method::POST, &none, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::Method)
        );
        let h = hm(&[("cache-control", "no-store")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::NoStore)
        );
        let h = hm(&[("cache-control", "private, max-age=60")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::Private)
        );
        let req = hm(&[("cache-control", "no-store")]);
        assert_eq!(
            storable(&get, &req, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::RequestNoStore)
        );
        for cc in ["max-age=60", "public, s-maxage=60"] {
            let h = hm(&[("cache-control", cc), ("set-cookie", "session=1")]);
            assert_eq!(
                storable(&get, &none, StatusCode::OK, &h, &d(&h)),
                Err(NotStorable::SetCookie),
                "{cc}"
            );
        }
        let auth = hm(&[("authorization", "Bearer x")]);
        assert_eq!(
            storable(&get, &auth, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::Authorization)
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let h = hm(&[("cache-control", cc)]);
            assert_eq!(
                storable(&get, &auth, StatusCode::OK, &h, &d(&h)),
                Ok(()),
                "{cc}"
            );
        }
        let h = hm(&[("cache-control", "max-age=60"), ("vary", "accept, *")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::VaryStar)
        );
        let bare = HeaderMap::new();
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &bare, &d(&bare)),
            Err(NotStorable::NoFreshnessNoValidator)
        );
        let etag_only = hm(&[("etag", "\"x\"")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &etag_only, &d(&etag_only)),
            Ok(())
        );
        assert_eq!(
            storable(&get, &none, StatusCode::CREATED, &etag_only, &d(&etag_only)),
            Err(NotStorable::Status)
        );
        assert_eq!(
            storable(&get, &none, StatusCode::NOT_MODIFIED, &ok, &d(&ok)),
            Err(NotStorable::Status)
        );
    }

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

    // §3.2 and §4.3.4.
    #[test]
    fn merging_304_headers() {
        let mut stored = hm(&[
            ("etag", "\"a\""),
            ("cache-control", "max-age=1"),
            ("content-length", "100"),
            ("x-old", "1"),
        ]);
        let nm = hm(&[
            ("cache-control", "max-age=600"),
            ("content-length", "0"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("x-new", "2"),
            ("set-cookie", "session=1"),
        ]);
        merge_not_modified(&mut stored, &nm);
        assert!(!stored.contains_key("set-cookie"), "a 304 adds no cookie");
        assert_eq!(stored["cache-control"], "max-age=600");
        assert_eq!(stored["content-length"], "100");
        assert_eq!(stored["x-old"], "1");
        assert_eq!(stored["x-new"], "2");
        assert!(!stored.contains_key("x-hop") && !stored.contains_key("connection"));
    }

    // §4.4.
    #[test]
    fn invalidation() {
        assert!(invalidates(&Method::POST, StatusCode::OK));
        assert!(invalidates(&Method::DELETE, StatusCode::MOVED_PERMANENTLY));
        assert!(!invalidates(
            &Method::POST,
            StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }

    #[test]
    fn hop_by_hop() {
        let mut h = hm(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("etag", "\"x\""),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("etag"));
    }

    // RFC 9211.
    #[test]
    fn cache_status_values() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(3599),
            ..Default::default()
        };
        assert_eq!(hit.to_header_value("keyframe"), "keyframe; hit; ttl=3599");
        let miss = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            fwd_status: Some(200),
            stored: true,
            ..Default::default()
        };
        assert_eq!(
            miss.to_header_value("keyframe"),
            "keyframe; fwd=uri-miss; fwd-status=200; stored"
        );
        let odd = CacheStatus {
            detail: Some("say \"hi\"".into()),
            ..Default::default()
        };
        assert_eq!(
            odd.to_header_value("my cache"),
            "\"my cache\"; detail=\"say \\\"hi\\\"\""
        );
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
