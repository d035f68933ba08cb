//! The request headers the edge sends upstream.

use http::{header, HeaderMap, HeaderValue};

use super::strip_hop_by_hop;

/// The request headers sent upstream: hop-by-hop, range, conditional and token
/// cookies removed.
pub fn upstream_request_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    strip_hop_by_hop(&mut out);
    out.remove(header::HOST);
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        out.remove(name);
    }
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
}
