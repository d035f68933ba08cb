//! Header rules: what a 304 updates in a stored response, what a 304 sent to a
//! client carries, and the hop-by-hop fields that never cross the cache.

use http::{header, HeaderMap, HeaderName};

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

/// Trims stored headers to what a 304 carries (RFC 9110 §15.4.5).
pub fn retain_not_modified(h: &mut HeaderMap) {
    const KEEP: [HeaderName; 8] = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
        header::AGE,
    ];
    let names: Vec<HeaderName> = h.keys().cloned().collect();
    for n in names {
        if !KEEP.contains(&n) {
            h.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::hm;

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
}
