//! The request headers the edge sends upstream: a pass-through forwards the
//! client's end-to-end headers as they are (its `Range` and validators too); a
//! fetch into the cache drops the client's `Range` and validators, the cache
//! setting its own.

use http::{header, HeaderMap, HeaderValue};

use super::strip_hop_by_hop;

/// The request fields that select a part of a representation or make a request
/// conditional: a fetch into the cache sets its own.
pub const RANGE_AND_VALIDATORS: [header::HeaderName; 6] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// The request headers of a fetch into the cache (a miss or a refresh): the
/// client's end-to-end headers without its range and validators.
pub fn upstream_request_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = pass_request_headers(h);
    for name in RANGE_AND_VALIDATORS {
        out.remove(name);
    }
    out
}

/// The request headers of a pass-through: the client's end-to-end headers as
/// they are (its `Range` and validators included), without hop-by-hop fields,
/// `Host` and the token cookie, with `Via`.
pub fn pass_request_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    strip_hop_by_hop(&mut out);
    out.remove(header::HOST);
    // The token never goes upstream, not even as a cookie.
    let cookies: Vec<String> = out
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| {
            c.split(';')
                .map(str::trim)
                .filter(|p| !p.starts_with("__token__="))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|c| !c.is_empty())
        .collect();
    out.remove(header::COOKIE);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            out.append(header::COOKIE, v);
        }
    }
    out.append(header::VIA, HeaderValue::from_static("1.1 keyframe"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_headers_lose_hop_by_hop_ranges_and_token_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __token__=xyz; b=2"),
        );
        h.insert(header::ACCEPT, HeaderValue::from_static("video/*"));
        let out = upstream_request_headers(&h);
        assert!(!out.contains_key("x-secret"));
        assert!(!out.contains_key(header::RANGE));
        assert_eq!(
            out.get(header::COOKIE).and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
        assert_eq!(
            out.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
            Some("video/*")
        );
    }

    // Issue 15, defect 3: a pass-through keeps the client's range and validators.
    #[test]
    fn pass_headers_keep_range_and_validators() {
        let mut h = HeaderMap::new();
        for name in RANGE_AND_VALIDATORS {
            h.insert(name, HeaderValue::from_static("\"x\""));
        }
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::HOST, HeaderValue::from_static("edge"));
        let out = pass_request_headers(&h);
        for name in RANGE_AND_VALIDATORS {
            assert_eq!(out.get(&name), h.get(&name), "{name}");
        }
        assert!(!out.contains_key(header::CONNECTION) && !out.contains_key(header::HOST));
        let fill = upstream_request_headers(&h);
        assert!(RANGE_AND_VALIDATORS.iter().all(|n| !fill.contains_key(n)));
    }
}
