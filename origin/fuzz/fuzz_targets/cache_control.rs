//! Fuzzes the edge's `Cache-Control` and `CDN-Cache-Control` parsers (RFC 9111
//! §5.2, RFC 9213): whatever the field lines, parsing never panics; a targeted
//! field that applies is never an invalid one; without a targeted field the
//! shared-cache view is `Cache-Control`'s; and directive names are
//! case-insensitive (RFC 9111 §5.2), so a field's case changes nothing.
//!
//!   bash bench/scripts/fuzz.sh cache_control
#![no_main]

use arbitrary::Arbitrary;
use http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, PRAGMA};
use keyframe_edge::policy::{RequestDirectives, ResponseDirectives};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    cache_control: Vec<&'a [u8]>,
    cdn_cache_control: Vec<&'a [u8]>,
    pragma: Option<&'a [u8]>,
}

fn lines(headers: &mut HeaderMap, name: &HeaderName, values: &[&[u8]]) {
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.append(name.clone(), v);
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let cdn = HeaderName::from_static("cdn-cache-control");
    let mut headers = HeaderMap::new();
    lines(&mut headers, &CACHE_CONTROL, &input.cache_control);
    if let Some(p) = input.pragma.and_then(|p| HeaderValue::from_bytes(p).ok()) {
        headers.insert(PRAGMA, p);
    }
    let plain = ResponseDirectives::parse(&headers);
    let _ = RequestDirectives::parse(&headers);
    assert_eq!(
        ResponseDirectives::for_shared_cache(&headers, &["cdn-cache-control"]),
        plain,
        "without a targeted field, Cache-Control decides"
    );

    // The same field in lowercase reads the same.
    let mut lower = HeaderMap::new();
    for v in headers.get_all(CACHE_CONTROL) {
        if let Ok(v) = HeaderValue::from_bytes(&v.as_bytes().to_ascii_lowercase()) {
            lower.append(CACHE_CONTROL, v);
        }
    }
    assert_eq!(ResponseDirectives::parse(&lower), plain, "{headers:?}");

    lines(&mut headers, &cdn, &input.cdn_cache_control);
    let shared = ResponseDirectives::for_shared_cache(&headers, &["cdn-cache-control"]);
    if shared.targeted {
        assert!(
            !shared.invalid,
            "an invalid targeted field was obeyed: {headers:?}"
        );
    } else {
        assert_eq!(
            shared, plain,
            "an ignored targeted field changed the answer"
        );
    }
});
