//! Whether a shared cache may store a response (RFC 9111 §3).

use http::{header, HeaderMap, Method, StatusCode};

use super::{RequestDirectives, ResponseDirectives};

/// Why a response may not be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    RequestNoStore,
    NoStore,
    Private,
    SetCookie,
    Authorization,
    VaryStar,
    NoFreshnessNoValidator,
}

/// Statuses that are heuristically cacheable (RFC 9110 §15.1).
pub fn heuristic_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses whose caching rules this cache implements (RFC 9110 §15): the
/// heuristically cacheable ones and the redirects it stores as answers. An
/// unknown status with `must-understand` is never stored.
pub fn understood_status(status: StatusCode) -> bool {
    heuristic_status(status) || matches!(status.as_u16(), 302 | 303 | 307)
}

/// Whether a shared cache may store this response (RFC 9111 §3, §3.5).
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    dirs: &ResponseDirectives,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    if status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    if RequestDirectives::parse(req).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    if dirs.must_understand {
        // A cache that implements must-understand stores only statuses whose
        // caching rules it knows, and then ignores no-store (RFC 9111 §3, §5.2.2.3).
        if !understood_status(status) {
            return Err(NotStorable::Status);
        }
    } else if dirs.no_store {
        return Err(NotStorable::NoStore);
    }
    if dirs.private {
        return Err(NotStorable::Private);
    }
    if resp.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if req.contains_key(header::AUTHORIZATION)
        && !(dirs.public || dirs.s_maxage.is_some() || dirs.must_revalidate)
    {
        return Err(NotStorable::Authorization);
    }
    if resp
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "*"))
    {
        return Err(NotStorable::VaryStar);
    }
    // A targeted field that applies replaces Expires (RFC 9213 §2.1).
    let expires = !dirs.targeted && resp.contains_key(header::EXPIRES);
    let explicit = dirs.max_age.is_some() || dirs.s_maxage.is_some() || expires;
    let validator = resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    if !(explicit || validator) {
        return Err(NotStorable::NoFreshnessNoValidator);
    }
    if !explicit && !heuristic_status(status) && !dirs.public {
        return Err(NotStorable::Status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::hm;

    // RFC 9111 §3 and §5.2.2.3: must-understand stores only understood statuses,
    // and then ignores no-store.
    #[test]
    fn must_understand_limits_storing_to_understood_statuses() {
        let h = hm(&[("cache-control", "max-age=60, must-understand, no-store")]);
        let dirs = ResponseDirectives::parse(&h);
        let req = HeaderMap::new();
        let store = |code: u16| {
            storable(
                &Method::GET,
                &req,
                StatusCode::from_u16(code).expect("status"),
                &h,
                &dirs,
            )
        };
        assert_eq!(store(200), Ok(()));
        assert_eq!(store(404), Ok(()));
        assert_eq!(store(299), Err(NotStorable::Status));
        let plain = hm(&[("cache-control", "max-age=60, no-store")]);
        let dirs = ResponseDirectives::parse(&plain);
        assert_eq!(
            storable(&Method::GET, &req, StatusCode::OK, &plain, &dirs),
            Err(NotStorable::NoStore)
        );
    }

    // RFC 9213 §2.1: beside a valid CDN-Cache-Control, Expires is no freshness.
    #[test]
    fn expires_does_not_count_beside_a_targeted_field() {
        let h = hm(&[
            ("cdn-cache-control", "must-revalidate"),
            ("expires", "Mon, 07 Dec 2026 11:00:00 GMT"),
        ]);
        let req = HeaderMap::new();
        let targeted = ResponseDirectives::for_shared_cache(&h, &["cdn-cache-control"]);
        assert_eq!(
            storable(&Method::GET, &req, StatusCode::OK, &h, &targeted),
            Err(NotStorable::NoFreshnessNoValidator)
        );
        let plain = ResponseDirectives::for_shared_cache(&h, &[]);
        assert!(storable(&Method::GET, &req, StatusCode::OK, &h, &plain).is_ok());
    }

    // §3 and §3.5: storing responses.
    #[test]
    fn storability() {
        let ok = hm(&[("cache-control", "max-age=60")]);
        let d = |h: &HeaderMap| ResponseDirectives::parse(h);
        let get = Method::GET;
        let none = HeaderMap::new();
        assert_eq!(storable(&get, &none, StatusCode::OK, &ok, &d(&ok)), Ok(()));
        assert_eq!(
            storable(&Method::POST, &none, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::Method)
        );
        let h = hm(&[("cache-control", "no-store")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::NoStore)
        );
        let h = hm(&[("cache-control", "private, max-age=60")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::Private)
        );
        let req = hm(&[("cache-control", "no-store")]);
        assert_eq!(
            storable(&get, &req, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::RequestNoStore)
        );
        for cc in ["max-age=60", "public, s-maxage=60"] {
            let h = hm(&[("cache-control", cc), ("set-cookie", "session=1")]);
            assert_eq!(
                storable(&get, &none, StatusCode::OK, &h, &d(&h)),
                Err(NotStorable::SetCookie),
                "{cc}"
            );
        }
        let auth = hm(&[("authorization", "Bearer x")]);
        assert_eq!(
            storable(&get, &auth, StatusCode::OK, &ok, &d(&ok)),
            Err(NotStorable::Authorization)
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let h = hm(&[("cache-control", cc)]);
            assert_eq!(
                storable(&get, &auth, StatusCode::OK, &h, &d(&h)),
                Ok(()),
                "{cc}"
            );
        }
        let h = hm(&[("cache-control", "max-age=60"), ("vary", "accept, *")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &h, &d(&h)),
            Err(NotStorable::VaryStar)
        );
        let bare = HeaderMap::new();
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &bare, &d(&bare)),
            Err(NotStorable::NoFreshnessNoValidator)
        );
        let etag_only = hm(&[("etag", "\"x\"")]);
        assert_eq!(
            storable(&get, &none, StatusCode::OK, &etag_only, &d(&etag_only)),
            Ok(())
        );
        assert_eq!(
            storable(&get, &none, StatusCode::CREATED, &etag_only, &d(&etag_only)),
            Err(NotStorable::Status)
        );
        assert_eq!(
            storable(&get, &none, StatusCode::NOT_MODIFIED, &ok, &d(&ok)),
            Err(NotStorable::Status)
        );
    }
}
