//! `Vary` (RFC 9111 §4.1): the fields a response varies on, the key of the variant
//! a request selects, and whether a stored response may answer a request.

use http::{header, HeaderMap, HeaderName};

/// The base cache key of a variant key.
pub fn base_of(vkey: &str) -> &str {
    vkey.split('\u{0}').next().unwrap_or(vkey)
}

/// Names listed in `Vary`, lowercased.
pub fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut v: Vec<HeaderName> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            if s == "*" {
                Some(HeaderName::from_static("*"))
            } else {
                HeaderName::try_from(s).ok()
            }
        })
        .collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v.dedup();
    v
}

/// Whether a stored response may answer a request with `headers`: the fields its
/// `Vary` names have the values they had in `stored_request`, the request that
/// fetched it (RFC 9111 §4.1).
pub fn selects(
    key: &str,
    stored_response: &HeaderMap,
    stored_request: &HeaderMap,
    headers: &HeaderMap,
) -> bool {
    let names = vary_names(stored_response);
    names.is_empty()
        || (!names.iter().any(|n| n == "*")
            && variant_key_for(key, &names, headers)
                == variant_key_for(key, &names, stored_request))
}

/// The fields of a request that a response's `Vary` names, with their values:
/// what a later fetch of the same variant (a chunk) must send, and nothing else
/// of the request (its cookies, its credentials) that another client's request
/// would then carry.
pub fn vary_request_headers(response: &HeaderMap, request: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for n in vary_names(response) {
        if n == "*" {
            continue;
        }
        for v in request.get_all(&n) {
            out.append(n.clone(), v.clone());
        }
    }
    out
}

/// The key of the variant a request with `headers` selects among those varying on
/// `names`: the base key, then each field's name and value.
pub fn variant_key_for(key: &str, names: &[HeaderName], headers: &HeaderMap) -> String {
    let mut s = key.to_string();
    for n in names {
        s.push('\u{0}');
        s.push_str(n.as_str());
        s.push('=');
        let vals: Vec<&str> = headers
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        s.push_str(&vals.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn variant_keys_follow_vary() {
        let mut resp = HeaderMap::new();
        resp.append(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, accept"),
        );
        let names = vary_names(&resp);
        assert_eq!(names.len(), 2);
        let mut a = HeaderMap::new();
        a.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let mut b = HeaderMap::new();
        b.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_ne!(
            variant_key_for("/k", &names, &a),
            variant_key_for("/k", &names, &b)
        );
        assert_eq!(base_of(&variant_key_for("/k", &names, &a)), "/k");
    }

    // Issue 15, defect 2: what an entry keeps of the request that fetched it.
    #[test]
    fn only_the_fields_vary_names_are_kept_of_a_request() {
        let mut resp = HeaderMap::new();
        resp.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
        let mut req = HeaderMap::new();
        req.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("fr"));
        req.insert(header::COOKIE, HeaderValue::from_static("who=alice"));
        req.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        let kept = vary_request_headers(&resp, &req);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[header::ACCEPT_LANGUAGE], "fr");
        assert!(vary_request_headers(&HeaderMap::new(), &req).is_empty());
        assert!(selects("/k", &resp, &kept, &req));
    }
}
