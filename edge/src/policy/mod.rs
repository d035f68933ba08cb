//! RFC 9111 shared-cache policy as pure functions: directives, storability,
//! freshness, age, the serve/revalidate decision, stale-on-error, 304 merging
//! and trimming, invalidation, hop-by-hop and upstream request headers, `Vary`
//! keying, the ranges fetched into the cache and `Cache-Status` (RFC 9211), one
//! concern per module.
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

mod cache_status;
mod directives;
mod freshness;
mod headers;
mod invalidation;
mod range;
mod request;
mod storable;
mod vary;

pub use cache_status::{set_cache_status, CacheStatus, Fwd};
pub use directives::{RequestDirectives, ResponseDirectives};
pub use freshness::{
    age_header_value, current_age, decide, freshness_lifetime, may_serve_stale_on_error, Decision,
    HEURISTIC_CAP,
};
pub use headers::{merge_not_modified, retain_not_modified, strip_hop_by_hop};
pub use invalidation::{also_invalidated, invalidates};
pub use range::{fill_range, fill_range_last};
pub use request::{pass_request_headers, upstream_request_headers, RANGE_AND_VALIDATORS};
pub use storable::{heuristic_status, storable, NotStorable};
pub use vary::{base_of, selects, variant_key_for, vary_names, vary_request_headers};

#[cfg(test)]
pub(crate) mod test_support {
    use http::{HeaderMap, HeaderName, HeaderValue};

    /// A header map from name/value pairs, in order.
    pub(crate) fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::try_from(*k).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }
}
