//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since` and `If-Range`, evaluated in the
//! order of §13.2.2. Pure functions over headers.
//!
//! Dates in the future and dates that do not parse are ignored (the condition is
//! treated as absent), as §13.1.3 and §13.1.4 ask.

use std::time::SystemTime;

use http::{header, HeaderMap, Method};

/// The validators of the selected representation.
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    /// The entity tag with its quotes (`"abc"` or `W/"abc"`); empty when none.
    pub etag: &'a str,
    /// Last modification, to the second.
    pub last_modified: Option<SystemTime>,
}

/// What the preconditions say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Go on and answer normally.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

fn opaque(tag: &str) -> Option<(bool, &str)> {
    let t = tag.trim();
    let (weak, rest) = match t.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, t),
    };
    (rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"')).then_some((weak, rest))
}

/// The tags listed in every line of a header; `None` for `*`.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in headers.get_all(name).iter() {
        let s = String::from_utf8_lossy(v.as_bytes());
        // Split on commas outside quotes.
        let mut cur = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ',' if !quoted => {
                    out.push(std::mem::take(&mut cur).trim().to_string());
                }
                _ => cur.push(c),
            }
        }
        out.push(cur.trim().to_string());
    }
    out.retain(|t| !t.is_empty());
    if out.iter().any(|t| t == "*") {
        return None;
    }
    Some(out)
}

/// Strong comparison (§8.8.3.2): both strong and the same opaque tag.
pub fn strong_eq(a: &str, b: &str) -> bool {
    matches!((opaque(a), opaque(b)), (Some((false, x)), Some((false, y))) if x == y)
}

/// Weak comparison: the same opaque tag, weakness ignored.
pub fn weak_eq(a: &str, b: &str) -> bool {
    matches!((opaque(a), opaque(b)), (Some((_, x)), Some((_, y))) if x == y)
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v.trim()).ok()?;
    // A date in the future is not a valid condition.
    (t <= SystemTime::now()).then_some(t)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Evaluates the preconditions of a request in RFC 9110 §13.2.2 order.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators<'_>) -> Precondition {
    let has = |n: &header::HeaderName| headers.contains_key(n);
    // 1. If-Match
    if has(&header::IF_MATCH) {
        let ok = match tags(headers, header::IF_MATCH) {
            None => true, // `*`: the representation exists
            Some(list) => !v.etag.is_empty() && list.iter().any(|t| strong_eq(t, v.etag)),
        };
        if !ok {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(lm)) =
        (date(headers, header::IF_UNMODIFIED_SINCE), v.last_modified)
    {
        // 2. If-Unmodified-Since, only without If-Match
        if secs(lm) > secs(since) {
            return Precondition::Failed;
        }
    }
    let read = method == Method::GET || method == Method::HEAD;
    // 3. If-None-Match
    if has(&header::IF_NONE_MATCH) {
        let matched = match tags(headers, header::IF_NONE_MATCH) {
            None => true,
            Some(list) => !v.etag.is_empty() && list.iter().any(|t| weak_eq(t, v.etag)),
        };
        if matched {
            return if read {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if read {
        // 4. If-Modified-Since, only for GET/HEAD without If-None-Match
        if let (Some(since), Some(lm)) = (date(headers, header::IF_MODIFIED_SINCE), v.last_modified)
        {
            if secs(lm) <= secs(since) {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (§13.1.5): yes without
/// If-Range; with an entity tag only on a strong match; with a date only when it
/// equals Last-Modified exactly. Anything unparseable: no (send the whole).
pub fn if_range_allows(headers: &HeaderMap, v: &Validators<'_>) -> bool {
    let Some(ir) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(s) = ir.to_str() else { return false };
    let s = s.trim();
    if s.starts_with('"') || s.starts_with("W/") {
        return !v.etag.is_empty() && strong_eq(s, v.etag);
    }
    match (httpdate::parse_http_date(s), v.last_modified) {
        (Ok(t), Some(lm)) => secs(t) == secs(lm),
        _ => false,
    }
}

/// An HTTP date for `Last-Modified`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        m
    }

    const LM: u64 = 1_700_000_000;

    fn v() -> Validators<'static> {
        Validators {
            etag: "\"abc\"",
            last_modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(LM)),
        }
    }

    fn d(offset: i64) -> String {
        http_date(SystemTime::UNIX_EPOCH + Duration::from_secs((LM as i64 + offset) as u64))
    }

    use Precondition::*;

    #[test]
    fn if_match_is_strong() {
        let get = Method::GET;
        assert_eq!(
            evaluate(&get, &h(&[("if-match", "\"abc\"")]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-match", "\"x\", \"abc\"")]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(
                &get,
                &h(&[("if-match", "\"x\""), ("if-match", "\"abc\"")]),
                &v()
            ),
            Proceed
        );
        assert_eq!(evaluate(&get, &h(&[("if-match", "*")]), &v()), Proceed);
        assert_eq!(
            evaluate(&get, &h(&[("if-match", "W/\"abc\"")]), &v()),
            Failed
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-match", "\"nope\"")]), &v()),
            Failed
        );
        assert_eq!(evaluate(&get, &h(&[("if-match", "garbage")]), &v()), Failed);
    }

    #[test]
    fn if_unmodified_since_only_without_if_match() {
        let get = Method::GET;
        assert_eq!(
            evaluate(&get, &h(&[("if-unmodified-since", &d(-10))]), &v()),
            Failed
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-unmodified-since", &d(0))]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-unmodified-since", "yesterday")]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(
                &get,
                &h(&[("if-match", "\"abc\""), ("if-unmodified-since", &d(-10))]),
                &v()
            ),
            Proceed
        );
    }

    #[test]
    fn if_none_match_is_weak_and_method_aware() {
        assert_eq!(
            evaluate(&Method::GET, &h(&[("if-none-match", "W/\"abc\"")]), &v()),
            NotModified
        );
        assert_eq!(
            evaluate(&Method::HEAD, &h(&[("if-none-match", "*")]), &v()),
            NotModified
        );
        assert_eq!(
            evaluate(&Method::GET, &h(&[("if-none-match", "\"x\", \"y\"")]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-none-match", "\"abc\"")]), &v()),
            Failed
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            evaluate(
                &Method::GET,
                &h(&[("if-none-match", "\"x\""), ("if-modified-since", &d(10))]),
                &v()
            ),
            Proceed
        );
    }

    #[test]
    fn if_modified_since() {
        let get = Method::GET;
        assert_eq!(
            evaluate(&get, &h(&[("if-modified-since", &d(0))]), &v()),
            NotModified
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-modified-since", &d(-1))]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&get, &h(&[("if-modified-since", "not a date")]), &v()),
            Proceed
        );
        let future = http_date(SystemTime::now() + Duration::from_secs(86_400));
        assert_eq!(
            evaluate(&get, &h(&[("if-modified-since", &future)]), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-modified-since", &d(0))]), &v()),
            Proceed
        );
        let no_lm = Validators {
            etag: "\"abc\"",
            last_modified: None,
        };
        assert_eq!(
            evaluate(&get, &h(&[("if-modified-since", &d(0))]), &no_lm),
            Proceed
        );
    }

    #[test]
    fn if_range() {
        assert!(if_range_allows(&h(&[]), &v()));
        assert!(if_range_allows(&h(&[("if-range", "\"abc\"")]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "W/\"abc\"")]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "\"other\"")]), &v()));
        assert!(if_range_allows(&h(&[("if-range", &d(0))]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", &d(-1))]), &v()));
        assert!(!if_range_allows(&h(&[("if-range", "junk")]), &v()));
        let weak = Validators {
            etag: "W/\"abc\"",
            last_modified: None,
        };
        assert!(!if_range_allows(&h(&[("if-range", "W/\"abc\"")]), &weak));
    }

    #[test]
    fn comparisons() {
        assert!(strong_eq("\"a\"", "\"a\""));
        assert!(!strong_eq("W/\"a\"", "\"a\""));
        assert!(weak_eq("W/\"a\"", "\"a\""));
        assert!(!weak_eq("\"a\"", "\"b\""));
        assert!(!weak_eq("a", "a"));
        assert!(weak_eq("\"a,b\"", "\"a,b\""));
    }

    #[test]
    fn lists_with_quoted_commas() {
        let m = h(&[("if-none-match", "\"a,b\", \"c\"")]);
        let e = Validators {
            etag: "\"a,b\"",
            last_modified: None,
        };
        assert_eq!(evaluate(&Method::GET, &m, &e), NotModified);
    }
}
