//! Whether a request reached the catalog over HTTPS: on a connection the catalog
//! terminated TLS on itself ([`DirectTls`]), or through a trusted proxy that says so
//! in `X-Forwarded-Proto`. The session cookie is marked `Secure` then.
//!
//! A client's own `X-Forwarded-Proto` counts for nothing: only a peer in
//! `trusted_proxies` (CIDR networks or single addresses) is believed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::server::{ApiError, AppState};

/// The header a TLS-terminating proxy sets to the scheme its client used.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// A request extension: the request came on a connection whose TLS the catalog
/// terminated itself.
#[derive(Clone, Copy, Debug)]
pub struct DirectTls;

/// The peers whose forwarding headers are believed, from `trusted_proxies`.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `trusted_proxies` entries (`10.0.0.0/8`, `192.0.2.7`, `::1`); the
    /// error is the entry that is neither a network nor an address.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| {
                let t = e.trim();
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| e.clone())
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `peer` is a trusted proxy (an IPv4 peer seen as IPv4-mapped IPv6
    /// counts as its IPv4 address).
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&peer))
    }
}

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
/// proxy (`config.cookie_secure` is not consulted here).
#[derive(Clone, Copy, Debug)]
pub struct Https(pub bool);

impl FromRequestParts<AppState> for Https {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        if parts.extensions.get::<DirectTls>().is_some() {
            return Ok(Https(true));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Https(forwarded_https(&parts.headers, peer, |p| {
            s.proxies.contains(p)
        })))
    }
}

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
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".into(), " 192.0.2.7 ".into()]).expect("parse");
        let trusted = |p| proxies.contains(p);
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
        let none = TrustedProxies::default();
        assert!(!forwarded_https(
            &headers(Some("https")),
            ip("127.0.0.1"),
            |p| none.contains(p)
        ));
    }

    #[test]
    fn a_bad_entry_is_named() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.local".into()]).expect_err("bad"),
            "proxy.local"
        );
    }
}
