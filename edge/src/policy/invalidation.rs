//! Invalidation by unsafe methods (RFC 9111 §4.4).

use http::{header, HeaderMap, Method, StatusCode};

/// Whether a response to `method` invalidates stored responses (RFC 9111 §4.4):
/// an unsafe method (not GET, HEAD, OPTIONS or TRACE) answered with a non-error
/// status (2xx or 3xx).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    !method.is_safe() && (status.is_success() || status.is_redirection())
}

/// The URIs besides the target that such a response invalidates: those in
/// `Location` and `Content-Location`, resolved against `target`, when their
/// origin (scheme, host, port) is the target's (§4.4: a cache MUST NOT
/// invalidate another origin's). Each as path and query.
pub fn also_invalidated(target: &url::Url, response: &HeaderMap) -> Vec<String> {
    [header::LOCATION, header::CONTENT_LOCATION]
        .iter()
        .filter_map(|n| response.get(n)?.to_str().ok())
        .filter_map(|v| target.join(v.trim()).ok())
        .filter(|u| u.origin() == target.origin())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::hm;

    // §4.4.
    #[test]
    fn only_unsafe_methods_with_non_error_answers_invalidate() {
        assert!(invalidates(&Method::POST, StatusCode::OK));
        assert!(invalidates(&Method::PUT, StatusCode::CREATED));
        assert!(invalidates(&Method::DELETE, StatusCode::MOVED_PERMANENTLY));
        assert!(invalidates(&Method::PATCH, StatusCode::NO_CONTENT));
        let custom = Method::from_bytes(b"PURGE").expect("method");
        assert!(
            invalidates(&custom, StatusCode::OK),
            "unknown methods are unsafe"
        );
        assert!(!invalidates(
            &Method::POST,
            StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(!invalidates(&Method::POST, StatusCode::NOT_FOUND));
        for safe in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!invalidates(&safe, StatusCode::OK), "{safe}");
        }
    }

    #[test]
    fn location_and_content_location_on_the_same_origin() {
        let target = url::Url::parse("http://cdn.example:8081/a/b?x=1").expect("url");
        let got = also_invalidated(
            &target,
            &hm(&[("location", "../c?y=2"), ("content-location", "/d")]),
        );
        assert_eq!(got, vec!["/c?y=2".to_string(), "/d".to_string()]);
        let got = also_invalidated(&target, &hm(&[("location", "HTTP://CDN.example:8081/e")]));
        assert_eq!(got, vec!["/e".to_string()]);
        for other in [
            "http://other.example:8081/a",
            "https://cdn.example:8081/a",
            "http://cdn.example/a",
            "//other.example/a",
        ] {
            assert!(
                also_invalidated(&target, &hm(&[("location", other)])).is_empty(),
                "{other}"
            );
        }
        assert!(also_invalidated(&target, &hm(&[])).is_empty());
    }
}
