//! Cross-origin access to media (the Fetch standard's CORS protocol), shared by
//! the edge and the origin: MSE players (hls.js, Shaka, dash.js) fetch manifests
//! and segment ranges with XHR/fetch from the page's origin, which is seldom the
//! edge's.
//!
//! Allowed origins are configured; the default, `*`, fits public media (tokens
//! travel in the query, never in credentials, so no `Allow-Credentials`). A list
//! of origins echoes the matching one and says `Vary: Origin`, so a cache never
//! hands one origin's answer to another. Preflights (`OPTIONS` with
//! `Access-Control-Request-Method`, sent because `Range` is not a safelisted
//! request header) are answered here, never forwarded. Answers expose
//! `Content-Range`, `Content-Length`, `ETag` and `Accept-Ranges`, which players
//! read; refusals (a 403 for a token) carry the same headers, so the page can read
//! why.

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use keyframe_core::ErrorCode;

use crate::http_server::{empty, json_error, Body};

/// Request headers a preflight may ask for.
pub const ALLOW_HEADERS: &str = "Range, If-Range, If-None-Match, If-Modified-Since";
/// Response headers a page may read besides the safelisted ones.
pub const EXPOSE_HEADERS: &str =
    "Content-Range, Content-Length, ETag, Accept-Ranges, Age, Cache-Status";
/// How long a browser may reuse a preflight answer, in seconds (Chromium caps it
/// at two hours).
pub const MAX_AGE: &str = "86400";

/// Why a list of allowed origins was refused.
#[derive(Debug, thiserror::Error)]
#[error("cors-allowed-origins: '{0}' is not '*' or an origin like https://app.example.com[:port]")]
pub struct CorsError(String);

/// A server's CORS policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers at all (an empty list): browsers on other origins are refused.
    Off,
    /// Any origin (`*`).
    Any,
    /// These origins (lowercased `scheme://host[:port]`).
    Origins(Vec<String>),
}

impl Cors {
    /// The policy of a configured list: `*` (alone) for any origin, nothing for
    /// none, else origins.
    pub fn from_config(list: &[String]) -> Result<Cors, CorsError> {
        let items: Vec<&str> = list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Cors::Off);
        }
        if items.contains(&"*") {
            return match items.len() {
                1 => Ok(Cors::Any),
                _ => Err(CorsError("* together with origins".into())),
            };
        }
        let mut origins = Vec::with_capacity(items.len());
        for o in items {
            if !is_origin(o) {
                return Err(CorsError(o.to_string()));
            }
            origins.push(o.to_ascii_lowercase());
        }
        Ok(Cors::Origins(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            Cors::Off => None,
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let origin = origin?;
                let s = origin.to_str().ok()?.to_ascii_lowercase();
                list.contains(&s).then(|| origin.clone())
            }
        }
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`); None for any other request.
    pub fn preflight(&self, method: &Method, req: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS
            || !req.contains_key(header::ORIGIN)
            || !req.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            || *self == Cors::Off
        {
            return None;
        }
        let Some(allow) = self.allow_origin(req.get(header::ORIGIN)) else {
            let mut r = json_error(
                ErrorCode::CorsOrigin,
                "this origin may not fetch media here",
            );
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
            return Some(r);
        };
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        if matches!(self, Cors::Origins(_)) {
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        Some(r)
    }

    /// Sets the CORS headers of an answer to a request from `origin` (its `Origin`
    /// header), replacing any it had (an upstream's, stored with the object: this
    /// server's policy is what its clients get).
    pub fn apply(&self, origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
        // One pass over the names rather than six lookups: most answers have none.
        if resp
            .keys()
            .any(|k| k.as_str().starts_with("access-control-"))
        {
            for name in [
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::ACCESS_CONTROL_MAX_AGE,
            ] {
                resp.remove(name);
            }
        }
        if *self == Cors::Off {
            return;
        }
        if matches!(self, Cors::Origins(_)) {
            add_vary_origin(resp);
        }
        if let Some(allow) = self.allow_origin(origin) {
            resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            resp.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

/// Adds `Origin` to `Vary` unless it is there already (or `Vary: *`).
fn add_vary_origin(h: &mut HeaderMap) {
    let listed = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| n.trim() == "*" || n.trim().eq_ignore_ascii_case("origin"));
    if !listed {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// Whether `s` is a serialised origin: `http(s)://host[:port]`, no path.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && url::Url::parse(s).is_ok_and(|u| u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, preflight: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("GET"),
            );
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_static("range"),
            );
        }
        h
    }

    #[test]
    fn configuration() {
        let c =
            |l: &[&str]| Cors::from_config(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(c(&["*"]).expect("any"), Cors::Any);
        assert_eq!(c(&[]).expect("off"), Cors::Off);
        assert_eq!(c(&[" "]).expect("off"), Cors::Off);
        assert_eq!(
            c(&["https://App.example", "http://127.0.0.1:8080"]).expect("list"),
            Cors::Origins(vec![
                "https://app.example".into(),
                "http://127.0.0.1:8080".into()
            ])
        );
        for bad in [
            &["*", "https://a.example"][..],
            &["app.example"],
            &["https://a.example/"],
            &["ftp://a"],
        ] {
            assert!(c(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn any_origin_answers_star_and_exposes_range_headers() {
        let mut resp = HeaderMap::new();
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://stored.example"),
        );
        Cors::Any.apply(
            req(Some("https://page.example"), false).get(header::ORIGIN),
            &mut resp,
        );
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let exposed = resp[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .expect("ascii");
        for h in ["Content-Range", "Content-Length", "ETag", "Accept-Ranges"] {
            assert!(exposed.contains(h), "{exposed}");
        }
        assert!(resp.get(header::VARY).is_none());
        // Without an Origin too: the answer is the same for everyone, so cacheable.
        let mut resp = HeaderMap::new();
        Cors::Any.apply(None, &mut resp);
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn listed_origins_are_echoed_and_vary() {
        let cors = Cors::Origins(vec!["https://page.example".into()]);
        let mut resp = HeaderMap::new();
        resp.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        cors.apply(
            req(Some("https://PAGE.example"), false).get(header::ORIGIN),
            &mut resp,
        );
        assert_eq!(
            resp[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://PAGE.example"
        );
        let vary: Vec<_> = resp.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
        let mut resp = HeaderMap::new();
        cors.apply(
            req(Some("https://other.example"), false).get(header::ORIGIN),
            &mut resp,
        );
        assert!(resp.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(resp[header::VARY], "Origin");
        let mut resp = HeaderMap::new();
        Cors::Off.apply(
            req(Some("https://page.example"), false).get(header::ORIGIN),
            &mut resp,
        );
        assert!(resp.is_empty());
    }

    #[test]
    fn preflights_allow_range() {
        let r = Cors::Any
            .preflight(&Method::OPTIONS, &req(Some("https://page.example"), true))
            .expect("a preflight answer");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .expect("ascii")
            .contains("Range"));
        assert!(h[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .expect("ascii")
            .contains("GET"));
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], MAX_AGE);
        // Not a preflight: a plain OPTIONS, a GET, or CORS off.
        assert!(Cors::Any
            .preflight(&Method::OPTIONS, &req(Some("https://p.example"), false))
            .is_none());
        assert!(Cors::Any
            .preflight(&Method::GET, &req(Some("https://p.example"), true))
            .is_none());
        assert!(Cors::Off
            .preflight(&Method::OPTIONS, &req(Some("https://p.example"), true))
            .is_none());
        let listed = Cors::Origins(vec!["https://page.example".into()]);
        let r = listed
            .preflight(&Method::OPTIONS, &req(Some("https://evil.example"), true))
            .expect("refused");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
    }
}
