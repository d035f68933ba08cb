//! `Cache-Control` (and targeted fields such as `CDN-Cache-Control`, RFC 9213)
//! parsed into the directives this shared cache obeys, for responses and requests.
//!
//! `Cache-Control` is parsed leniently, as RFC 9111 §5.2 is written (a directive
//! this cache does not know is skipped). A targeted field is a Structured Field
//! Dictionary (RFC 9213 §2.2, RFC 8941 §3.2), parsed by `sfv`: one syntax error
//! anywhere and the whole field is ignored, as if it were absent.

use http::{header, HeaderMap, HeaderName};

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
    /// Store only if the status's caching rules are understood, and then
    /// regardless of `no-store` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
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
            must_understand: has("must-understand"),
            stale_while_revalidate,
            stale_if_error,
            invalid,
            targeted: false,
        }
    }

    /// The directives this cache obeys: those of the first targeted field in
    /// `targeted` (e.g. `cdn-cache-control`) that is present, a valid Dictionary,
    /// not empty and whose delta-seconds values are Integers; else
    /// `Cache-Control`'s (RFC 9213 §2.1). When a targeted field applies,
    /// `Cache-Control` and `Expires` are ignored for this cache (`targeted`).
    pub fn for_shared_cache(headers: &HeaderMap, targeted: &[&str]) -> Self {
        for t in targeted {
            let Ok(name) = HeaderName::try_from(*t) else {
                continue;
            };
            let Some(list) = targeted_directives(headers, &name) else {
                continue;
            };
            let mut d = Self::from_list(&list);
            if !d.invalid {
                d.targeted = true;
                return d;
            }
        }
        Self::parse(headers)
    }
}

/// The directives of a targeted field (RFC 9213 §2.2): its field lines joined
/// and parsed as one Dictionary. `None` when the field is absent, empty or not a
/// valid Dictionary. Parameters are ignored; a member that is `?0` is absent
/// (no directive takes false); values a directive cannot take (a String or a
/// Decimal where delta-seconds need an Integer) are kept so that `seconds`
/// refuses them.
fn targeted_directives(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Option<Vec<(String, Option<String>)>> {
    use sfv::{BareItem, ListEntry};
    let lines: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(&b", "[..]);
    let dict: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
    if dict.is_empty() {
        return None;
    }
    let list = dict
        .iter()
        .filter_map(|(key, member)| {
            let value = match member {
                ListEntry::Item(item) => match &item.bare_item {
                    BareItem::Boolean(true) => None,
                    BareItem::Boolean(false) => return None,
                    BareItem::Integer(n) => Some(n.to_string()),
                    BareItem::Token(t) => Some(t.as_str().to_string()),
                    // `no-cache="a, b"`; as delta-seconds, a String is refused.
                    BareItem::String(s) => Some(format!("\"{}\"", s.as_str())),
                    BareItem::Decimal(d) => Some(d.to_string()),
                    _ => Some(String::from("?")),
                },
                ListEntry::InnerList(_) => Some(String::from("()")),
            };
            Some((key.as_str().to_string(), value))
        })
        .collect();
    Some(list)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::freshness_lifetime;
    use crate::policy::test_support::hm;
    use http::StatusCode;
    use std::time::Duration;

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

    // RFC 9213 §2.2: a targeted field is a Structured Field Dictionary; a field
    // that does not parse as one is ignored as a whole, and Cache-Control applies.
    #[test]
    fn targeted_fields_are_dictionaries_or_nothing() {
        let cdn = |v: &str| {
            ResponseDirectives::for_shared_cache(
                &hm(&[("cache-control", "no-store"), ("cdn-cache-control", v)]),
                &["cdn-cache-control"],
            )
        };
        for bad in [
            "max-age=10000, &&&&&",
            "max-age=60,",
            "max-age=60;",
            "Max-Age=60",
            "max-age=\"60",
            "max-age=60 no-store",
            "max-age = 60",
            "",
            " , ",
        ] {
            let d = cdn(bad);
            assert!(!d.targeted && d.no_store, "{bad:?} was used: {d:?}");
        }
        for (good, max_age) in [
            ("max-age=60", 60),
            ("max-age=60, stale-if-error=30", 60),
            ("max-age=60;a=b", 60),
            ("no-cache=\"set-cookie\", max-age=60", 60),
            ("max-age=1, max-age=60", 60),
            ("must-revalidate, max-age=60, unknown-ext=(a b)", 60),
        ] {
            let d = cdn(good);
            assert!(d.targeted && !d.no_store, "{good:?} was not used: {d:?}");
            assert_eq!(d.max_age, Some(max_age), "{good:?}");
        }
        assert!(cdn("no-cache=\"set-cookie\", max-age=60").no_cache);
        assert!(cdn("private, max-age=60").private);
        // Directives that take no value are absent when false.
        let d = cdn("max-age=60, must-revalidate=?0");
        assert!(d.targeted && !d.must_revalidate);
        // Delta-seconds must be Integers: a String, Decimal, Token or negative
        // number cannot be used, and Cache-Control applies.
        for wrong in [
            "max-age=\"60\"",
            "max-age=6.5",
            "max-age=soon",
            "max-age=-1",
        ] {
            let d = cdn(wrong);
            assert!(!d.targeted && d.no_store, "{wrong:?} was used: {d:?}");
        }
        // Several field lines are one Dictionary.
        let two = hm(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "stale-while-revalidate=5"),
        ]);
        let d = ResponseDirectives::for_shared_cache(&two, &["cdn-cache-control"]);
        assert_eq!((d.max_age, d.stale_while_revalidate), (Some(60), Some(5)));
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
}
