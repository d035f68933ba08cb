//! Whether a request reached the catalog over HTTPS: on a connection the catalog
//! terminated TLS on itself ([`DirectTls`]), or through a trusted proxy that says so
//! in `X-Forwarded-Proto`. The session cookie is marked `Secure` then.
//!
//! A client's own `X-Forwarded-Proto` counts for nothing: only a peer in
//! `trusted_proxies` (CIDR networks or single addresses; the same list that the
//! region and client-address headers are believed from) is believed.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The header a TLS-terminating proxy sets to the scheme its client used.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// A request extension: the request came on a connection whose TLS the catalog
/// terminated itself.
#[derive(Clone, Copy, Debug)]
pub struct DirectTls;

/// Whether a trusted proxy says its client used HTTPS: `peer` is trusted and the
/// first (the client-facing) entry of `X-Forwarded-Proto` is `https`. From an
/// untrusted peer the header is ignored.
pub fn forwarded_https(
    headers: &HeaderMap,
    peer: IpAddr,
    trusted: impl Fn(IpAddr) -> bool,
) -> bool {
    if !trusted(peer) {
        return false;
    }
    headers
        .get(FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Whether the client reached the catalog over HTTPS, directly or through a trusted
/// proxy (`config.cookie_secure` is not consulted here). Handlers take it as an
/// extractor (`api::extract`).
#[derive(Clone, Copy, Debug)]
pub struct Https(pub bool);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(proto: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(p) = proto {
            h.insert(FORWARDED_PROTO, p.parse().expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let proxies = keyframe_core::region::RegionMap::new(None, &[])
            .and_then(|m| m.trusting(&["10.0.0.0/8".into(), "192.0.2.7".into()]))
            .expect("proxies");
        let trusted = |p| proxies.is_trusted(p);
        assert!(forwarded_https(
            &headers(Some("https")),
            ip("10.1.2.3"),
            trusted
        ));
        assert!(forwarded_https(
            &headers(Some("HTTPS")),
            ip("192.0.2.7"),
            trusted
        ));
        assert!(forwarded_https(
            &headers(Some("https")),
            ip("::ffff:10.9.9.9"),
            trusted
        ));
        // Not a trusted peer: the header changes nothing.
        assert!(!forwarded_https(
            &headers(Some("https")),
            ip("192.0.2.8"),
            trusted
        ));
        assert!(!forwarded_https(
            &headers(Some("https")),
            ip("::1"),
            trusted
        ));
        // Trusted, but not HTTPS, or not said.
        assert!(!forwarded_https(
            &headers(Some("http")),
            ip("10.1.2.3"),
            trusted
        ));
        assert!(!forwarded_https(&headers(None), ip("10.1.2.3"), trusted));
        // The client-facing hop is the first entry.
        assert!(forwarded_https(
            &headers(Some("https, http")),
            ip("10.1.2.3"),
            trusted
        ));
        assert!(!forwarded_https(
            &headers(Some("http, https")),
            ip("10.1.2.3"),
            trusted
        ));
        // No proxies configured: nobody is trusted.
        let none = keyframe_core::region::RegionMap::new(None, &[]).expect("empty");
        assert!(!forwarded_https(
            &headers(Some("https")),
            ip("127.0.0.1"),
            |p| none.is_trusted(p)
        ));
    }
}
