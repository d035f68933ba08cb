//! Request extractors: JSON, query and path with `{error, code}` rejections; the
//! client (address and region); whether it came over HTTPS; the caller (anonymous,
//! a session, the admin); and the header and cookie helpers they share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use keyframe_core::secret::secrets_equal;
use keyframe_core::ErrorCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::{token_hash, well_formed_token};
use crate::cache::Change;
use crate::db::DbError;
use crate::forwarded::{forwarded_https, DirectTls, Https};
use crate::playback::valid_region;
use crate::state::AppState;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "kf_session";

/// `axum::Json` whose rejections are `{error, code}`: 400 `malformed_json` for
/// syntax, 422 `invalid_body` for missing or mistyped fields, 415 `json_required`,
/// 413 `payload_too_large`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonSyntaxError(_) => ApiError::new(ErrorCode::MalformedJson, text),
        JsonRejection::JsonDataError(_) => ApiError::new(ErrorCode::InvalidBody, text),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::JsonRequired,
            "expected a body with Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        _ => ApiError::new(ErrorCode::BadBody, text),
    }
}

/// `axum::extract::Query` whose rejection is 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| ApiError::new(ErrorCode::InvalidQuery, r.body_text()))
    }
}

/// `axum::extract::Path` whose rejection is 400 `invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| ApiError::new(ErrorCode::InvalidPath, r.body_text()))
    }
}

/// Who is asking from where: the client's address (the peer, or `client_ip_header`
/// from a trusted proxy) and region (a trusted proxy's header, the network table, the
/// country database, the default).
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: IpAddr,
    pub region: Option<String>,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let ip = Some(s.config.client_ip_header.as_str())
            .filter(|h| !h.is_empty() && s.regions.is_trusted(peer))
            .and_then(|h| header_text(&parts.headers, h))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .unwrap_or(peer);
        let region = s
            .regions
            .resolve(&parts.headers, peer, ip)
            .filter(|r| valid_region(r))
            .or_else(|| {
                Some(s.config.default_region.trim().to_ascii_lowercase())
                    .filter(|r| valid_region(r))
            });
        Ok(Client { ip, region })
    }
}

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
            s.regions.is_trusted(p)
        })))
    }
}

/// The longest list a page or a recommendation list may ask for.
const MAX_LIST_LIMIT: i64 = 100;

/// A `limit` query parameter: 1–100, 24 when absent; otherwise 400 `invalid_query`.
pub fn list_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let l = limit.unwrap_or(24);
    if (1..=MAX_LIST_LIMIT).contains(&l) {
        Ok(l)
    } else {
        Err(ApiError::bad_query("limit must be 1–100"))
    }
}

/// A signed-in user's session.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user_id: String,
    pub token_hash: String,
    pub expires_at: i64,
}

/// Who the caller is.
#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    User(SignedIn),
    /// The admin token was presented.
    Admin,
    /// A session token was presented but is unknown, forged or expired.
    BadSession(ErrorCode),
}

impl Caller {
    /// The signed-in user, or 401.
    pub fn require_user(&self) -> Result<&SignedIn, ApiError> {
        match self {
            Caller::User(u) => Ok(u),
            Caller::BadSession(code) => Err(unauthorized(*code)),
            Caller::Anonymous | Caller::Admin => Err(unauthorized(ErrorCode::Unauthenticated)),
        }
    }

    /// The signed-in user, if any (a bad session counts as anonymous).
    pub fn user(&self) -> Option<&SignedIn> {
        match self {
            Caller::User(u) => Some(u),
            _ => None,
        }
    }

    /// Whether the admin token was presented.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Admin)
    }
}

/// 401 with a code saying why, and a `WWW-Authenticate` challenge.
pub fn unauthorized(code: ErrorCode) -> ApiError {
    let message = match code {
        ErrorCode::SessionExpired => "the session has expired; sign in again",
        ErrorCode::InvalidSession => "the session is not valid; sign in again",
        ErrorCode::AdminRequired => "this needs the admin token",
        _ => "sign in first",
    };
    ApiError::new(code, message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"keyframe\""),
    )
}

/// The admin token from `Authorization: Bearer`, or 401/403.
pub fn require_admin(s: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if s.config.admin_token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::new(
            ErrorCode::AdminDisabled,
            "admin endpoints are off (no admin_token configured)",
        ));
    }
    if caller.is_admin() {
        Ok(())
    } else {
        Err(unauthorized(ErrorCode::AdminRequired))
    }
}

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let v = header_text(&parts.headers, "authorization")?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The value of a cookie, if the request has it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of a cookie in these request headers, if any.
pub fn cookie_in<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let bearer = bearer(parts);
        if let (Some(token), Some(admin)) = (bearer, s.config.admin_token.as_deref()) {
            if !admin.is_empty() && secrets_equal(token, admin) {
                return Ok(Caller::Admin);
            }
        }
        let from_cookie = bearer.is_none();
        let Some(token) = bearer.or_else(|| cookie(parts, SESSION_COOKIE)) else {
            return Ok(Caller::Anonymous);
        };
        if from_cookie && !parts.method.is_safe() {
            if let Some(why) = cross_site(parts) {
                tracing::warn!(
                    target: "keyframe::security",
                    method = %parts.method,
                    path = %parts.uri.path(),
                    why,
                    "refused a cross-site request carrying the session cookie"
                );
                return Err(ApiError::new(
                    ErrorCode::CrossSiteRequest,
                    "a request that changes something must come from this site's own page",
                ));
            }
        }
        if !well_formed_token(token) {
            return Ok(Caller::BadSession(ErrorCode::InvalidSession));
        }
        let hash = token_hash(token);
        let session = match s.hot.session(&s.db, &hash).await {
            Ok(session) => session,
            Err(DbError::NotFound) => return Ok(Caller::BadSession(ErrorCode::InvalidSession)),
            Err(e) => return Err(e.into()),
        };
        if session.expires_at <= s.now_ms() {
            // Best effort: the row is useless now; a failure only leaves it behind.
            let (db, changes, h) = (s.db.clone(), s.changes.clone(), hash.clone());
            tokio::spawn(async move {
                if db.delete_session(&h).await.is_ok() {
                    changes.publish(Change::Session(h));
                }
            });
            return Ok(Caller::BadSession(ErrorCode::SessionExpired));
        }
        Ok(Caller::User(SignedIn {
            user_id: session.user_id,
            token_hash: hash,
            expires_at: session.expires_at,
        }))
    }
}

/// Why a request that carries the session cookie did not come from this site's own
/// page, or `None` if it did (or says nothing, as non-browser clients do): the
/// browser's `Sec-Fetch-Site` must be `same-origin` or `none` (typed by the user);
/// without it, `Origin` must name the host the request was sent to (OWASP's
/// CSRF advice for cookie sessions, besides `SameSite=Lax`).
fn cross_site(parts: &Parts) -> Option<&'static str> {
    if let Some(site) = header_text(&parts.headers, "sec-fetch-site") {
        let site = site.trim();
        return (!site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none"))
            .then_some("sec-fetch-site");
    }
    let origin = header_text(&parts.headers, header::ORIGIN.as_str())?.trim();
    let host = header_text(&parts.headers, header::HOST.as_str())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .map(str::trim);
    let origin_host = url::Url::parse(origin).ok().and_then(|u| {
        let host = u.host_str()?.to_ascii_lowercase();
        Some(match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => None,
        _ => Some("origin"),
    }
}

/// The `Set-Cookie` value that stores a session token in the browser.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    header_value(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    ))
}

/// The name of the cookie that marks a browser where a username signed in before,
/// which the login limiter's per-address ceiling spares.
pub const DEVICE_COOKIE: &str = "kf_device";

/// The `Set-Cookie` value of a device cookie (sent only to sign-in).
pub fn device_cookie(value: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = crate::auth::DEVICE_TTL.as_secs();
    header_value(&format!(
        "{DEVICE_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api/sessions; Max-Age={max_age}{secure}"
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    header_value(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}"
    ))
}

/// A header value from text that is known to be valid (a number, a fixed string).
pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of a header as text, if present and visible ASCII.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
