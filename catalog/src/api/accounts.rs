//! Sign-up, sign-in and -out, the viewer's profile and avatar.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyframe_core::ErrorCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{
    clear_session_cookie, cookie_in, device_cookie, header_text, header_value, session_cookie,
    unauthorized, ApiJson, Caller, Client, DEVICE_COOKIE,
};
use super::views::{ErrorBody, SessionView, UserView, ViewCtx};
use crate::auth::{new_session_token, Refused, Verified, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::cache::Change;
use crate::db::DbError;
use crate::forwarded::Https;
use crate::meta::{User, UserPatch};
use crate::state::AppState;

/// A sign-up.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// 3–32 characters of `a-z 0-9 _ . -`.
    pub username: String,
    /// 8 characters or more, at most 1024 bytes.
    pub password: String,
    pub email: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
}

/// A sign-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    pub username: String,
    pub password: String,
}

/// The password that confirms an account deletion.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccount {
    pub password: String,
}

/// Changes to the viewer's profile; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfilePatch {
    pub email: Option<String>,
    /// An empty string clears it.
    pub display_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// A new password; needs `current_password`. Ends the viewer's other sessions.
    pub password: Option<String>,
    pub current_password: Option<String>,
}

pub fn check_username(u: &str) -> Result<(), ApiError> {
    if !(3..=32).contains(&u.len()) {
        return Err(ApiError::invalid("username", "must be 3–32 characters"));
    }
    if !u
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ApiError::invalid(
            "username",
            "may only contain a-z, 0-9, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// 422 for a password longer than any that is hashed (a sign-in, a confirmation):
/// the hash's cost must not grow with what a client sends.
fn within_password_limit(field: &str, p: &str) -> Result<(), ApiError> {
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

pub fn check_password(field: &str, p: &str) -> Result<(), ApiError> {
    within_password_limit(field, p)?;
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(field, "must be at least 8 characters"));
    }
    if is_common_password(p) {
        return Err(ApiError::invalid(
            field,
            "is one of the most common passwords; choose another",
        ));
    }
    Ok(())
}

/// The embedded list of the most common passwords (`common_passwords.txt`).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Whether `p` is on the common-password list, ignoring case.
fn is_common_password(p: &str) -> bool {
    static LIST: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let list = LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    p.len() <= 64 && list.contains(p.to_lowercase().as_str())
}

/// Explicit bidirectional formatting characters (embeddings, overrides, isolates,
/// marks), with which a name can display reversed or reorder the text around it
/// ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

pub fn check_email(e: &str) -> Result<(), ApiError> {
    let bad = || ApiError::invalid("email", "must be an address like name@example.com");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checks a `YYYY-MM-DD` date of birth: a real date, from 1900 on, not after today.
pub fn check_date_of_birth(s: &str, now_ms: i64) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::invalid("date_of_birth", why);
    let b = s.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Err(bad("must be a date as YYYY-MM-DD"));
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap_or(0);
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad("must be a date as YYYY-MM-DD")),
    };
    if !(1..=days_in_month).contains(&d) {
        return Err(bad("must be a date as YYYY-MM-DD"));
    }
    if y < 1900 {
        return Err(bad("must be in 1900 or later"));
    }
    if days_from_civil(y, m, d) > now_ms.div_euclid(86_400_000) {
        return Err(bad("must not be in the future"));
    }
    Ok(())
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "accounts",
    request_body = NewUser,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The username is taken (code `username_taken`)", body = ErrorBody),
        (status = 422, description = "A missing or invalid field", body = ErrorBody),
    )
)]
pub async fn create_user(
    State(s): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    check_username(&body.username)?;
    check_password("password", &body.password)?;
    check_email(&body.email)?;
    let now_ms = s.now_ms();
    check_date_of_birth(&body.date_of_birth, now_ms)?;
    let hash = s
        .passwords
        .hash(body.password)
        .await
        .map_err(|e| ApiError::internal("hashing a password", e))?;
    let user = match s
        .db
        .create_user(
            &body.username,
            &body.email,
            &hash,
            Some(&body.date_of_birth),
        )
        .await
    {
        Ok(u) => u,
        Err(DbError::AlreadyExists(_)) => {
            return Err(ApiError::new(
                ErrorCode::UsernameTaken,
                "that username is taken",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user.id, "account created");
    let ctx = ViewCtx {
        state: &s,
        region: client.region.as_deref(),
        now_ms,
    };
    let view = ctx.user(&crate::cache::CachedUser {
        user,
        assets: Vec::new(),
    })?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// 429 with `Retry-After` for a throttled sign-in or password check, logged.
fn rate_limited(username: &str, client: &Client, refused: Refused) -> ApiError {
    let wait = refused.wait();
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let why = match refused {
        Refused::Pair(_) => "failures of this username from this address",
        Refused::Client(_) => "failures from this address",
    };
    tracing::warn!(
        target: "keyframe::security",
        username,
        client = %client.ip,
        retry_after_secs = secs,
        why,
        "refused a sign-in attempt"
    );
    ApiError::new(
        ErrorCode::RateLimited,
        "too many sign-in attempts; try again later",
    )
    .with_header(header::RETRY_AFTER, header_value(&secs.to_string()))
}

/// Confirms a signed-in viewer's password before a change that needs it (a new
/// password, deleting the account), under the same login limiter as sign-in: 429
/// when throttled, 401 `invalid_credentials` with `wrong` when it does not match.
async fn confirm_password(
    s: &AppState,
    client: &Client,
    user: &User,
    password: String,
    wrong: &'static str,
) -> Result<(), ApiError> {
    if let Err(refused) = s.limiter.attempt(&user.username, client.ip, None) {
        return Err(rate_limited(&user.username, client, refused));
    }
    let verified = s
        .passwords
        .verify(Some(user.password_hash.clone()), password)
        .await
        .map_err(|e| ApiError::internal("verifying a password", e))?;
    if verified == Verified::Wrong {
        return Err(ApiError::new(ErrorCode::InvalidCredentials, wrong));
    }
    s.limiter.forgive(&user.username, client.ip, None);
    Ok(())
}

/// Signs in: a new session, returned as JSON and as the `kf_session` cookie.
#[utoipa::path(
    post,
    path = "/api/sessions",
    tag = "accounts",
    request_body = Login,
    responses(
        (status = 201, description = "Signed in; also `Set-Cookie: kf_session=…`", body = SessionView),
        (status = 401, description = "Wrong username or password (code `invalid_credentials`)", body = ErrorBody),
        (status = 403, description = "The account is disabled (code `account_disabled`)", body = ErrorBody),
        (status = 422, description = "A missing or overlong field", body = ErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After` (code `rate_limited`)", body = ErrorBody),
    )
)]
pub async fn create_session(
    State(s): State<AppState>,
    client: Client,
    request_headers: HeaderMap,
    Https(https): Https,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    if body.username.len() > 256 {
        return Err(ApiError::invalid("username", "is too long"));
    }
    within_password_limit("password", &body.password)?;
    let device = cookie_in(&request_headers, DEVICE_COOKIE);
    if let Err(refused) = s.limiter.attempt(&body.username, client.ip, device) {
        return Err(rate_limited(&body.username, &client, refused));
    }
    let user = match s.db.user_by_username(&body.username).await {
        Ok(u) => Some(u),
        Err(DbError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let verified = s
        .passwords
        .verify(
            user.as_ref().map(|u| u.password_hash.clone()),
            body.password,
        )
        .await
        .map_err(|e| ApiError::internal("verifying a password", e))?;
    let (user, rehash) = match (user, verified) {
        (Some(user), Verified::Ok { rehash }) => (user, rehash),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidCredentials,
                "wrong username or password",
            ))
        }
    };
    let device = s.limiter.succeeded(&body.username, client.ip, device);
    if user.disabled_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    if let Some(new_hash) = rehash {
        s.db.set_password_hash(&user.id, &new_hash).await?;
        s.changes.publish(Change::User(user.id.clone()));
        tracing::info!(user = %user.id, "password rehashed with the current parameters");
    }
    let now_ms = s.now_ms();
    let ttl = s.config.session_ttl_secs;
    let expires_at =
        now_ms.saturating_add(i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX));
    let (token, hash) = new_session_token();
    s.db.delete_expired_sessions(&user.id, now_ms).await?;
    s.db.create_session(&hash, &user.id, expires_at).await?;
    let cached = s.hot.user(&s.db, &user.id).await?;
    let ctx = ViewCtx {
        state: &s,
        region: client.region.as_deref(),
        now_ms,
    };
    let view = SessionView {
        token: token.clone(),
        expires_at,
        user: ctx.user(&cached)?,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        session_cookie(&token, ttl, https || s.config.cookie_secure),
    );
    headers.append(
        header::SET_COOKIE,
        device_cookie(&device, s.config.cookie_secure),
    );
    headers.insert(header::CACHE_CONTROL, header_value("no-store"));
    Ok((StatusCode::CREATED, headers, Json(view)).into_response())
}

/// Signs out: ends the session and clears the cookie. Without a session it only
/// clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/sessions",
    tag = "accounts",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 204, description = "Signed out"))
)]
pub async fn delete_session(
    State(s): State<AppState>,
    caller: Caller,
    Https(https): Https,
) -> Result<Response, ApiError> {
    if let Caller::User(u) = &caller {
        s.db.delete_session(&u.token_hash).await?;
        s.changes.publish(Change::Session(u.token_hash.clone()));
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_session_cookie(https || s.config.cookie_secure),
        )],
    )
        .into_response())
}

async fn me_view(s: &AppState, client: &Client, user_id: &str) -> Result<UserView, ApiError> {
    let cached = match s.hot.user(&s.db, user_id).await {
        Ok(u) => u,
        // The account is gone; its session is worthless.
        Err(DbError::NotFound) => return Err(unauthorized(ErrorCode::InvalidSession)),
        Err(e) => return Err(e.into()),
    };
    ViewCtx {
        state: s,
        region: client.region.as_deref(),
        now_ms: s.now_ms(),
    }
    .user(&cached)
}

/// The signed-in viewer.
#[utoipa::path(
    get,
    path = "/api/users/me",
    tag = "accounts",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The viewer", body = UserView),
        (status = 401, description = "Not signed in, or the session expired", body = ErrorBody),
    )
)]
pub async fn get_me(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
) -> Result<Json<UserView>, ApiError> {
    let me = caller.require_user()?;
    Ok(Json(me_view(&s, &client, &me.user_id).await?))
}

/// Changes the viewer's profile or password.
#[utoipa::path(
    patch,
    path = "/api/users/me",
    tag = "accounts",
    request_body = ProfilePatch,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The viewer as changed", body = UserView),
        (status = 401, description = "Not signed in, or a wrong current password", body = ErrorBody),
        (status = 422, description = "An invalid field", body = ErrorBody),
    )
)]
pub async fn patch_me(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> Result<Json<UserView>, ApiError> {
    let me = caller.require_user()?.clone();
    if let Some(e) = &body.email {
        check_email(e)?;
    }
    if let Some(d) = &body.date_of_birth {
        check_date_of_birth(d, s.now_ms())?;
    }
    let display_name = match body.display_name.as_deref().map(str::trim) {
        Some("") => Some(None),
        Some(n) if n.chars().count() > 64 => {
            return Err(ApiError::invalid(
                "display_name",
                "must be at most 64 characters",
            ))
        }
        Some(n) if n.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "display_name",
                "must not contain control characters",
            ))
        }
        Some(n) if n.chars().any(is_bidi_control) => {
            return Err(ApiError::invalid(
                "display_name",
                "must not contain bidirectional formatting characters",
            ))
        }
        Some(n) => Some(Some(n.to_string())),
        None => None,
    };
    if let Some(new_password) = body.password {
        check_password("password", &new_password)?;
        let current = body.current_password.ok_or_else(|| {
            ApiError::invalid("current_password", "is needed to change the password")
        })?;
        within_password_limit("current_password", &current)?;
        let user = s.db.user_by_id(&me.user_id).await?;
        confirm_password(&s, &client, &user, current, "the current password is wrong").await?;
        let hash = s
            .passwords
            .hash(new_password)
            .await
            .map_err(|e| ApiError::internal("hashing a password", e))?;
        s.db.set_password_hash(&me.user_id, &hash).await?;
        s.db.delete_user_sessions(&me.user_id, Some(&me.token_hash))
            .await?;
        s.changes.publish(Change::UserSessions(me.user_id.clone()));
    }
    let patch = UserPatch {
        email: body.email,
        display_name,
        date_of_birth: body.date_of_birth.map(Some),
    };
    s.db.update_user(&me.user_id, &patch).await?;
    s.changes.publish(Change::User(me.user_id.clone()));
    Ok(Json(me_view(&s, &client, &me.user_id).await?))
}

/// Deletes the viewer's account, confirmed by its password: in one transaction the
/// user, every session, the avatar and the watch history with what was derived
/// from it (counters, trending, personal recommendations). The avatar's objects
/// are left unreferenced for `keyframe gc`.
#[utoipa::path(
    delete,
    path = "/api/users/me",
    tag = "accounts",
    request_body = DeleteAccount,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted; also clears the session cookie"),
        (status = 401, description = "Not signed in (code `unauthorized`), or a wrong password (code `invalid_credentials`)", body = ErrorBody),
        (status = 422, description = "A missing or overlong password", body = ErrorBody),
        (status = 429, description = "Too many attempts; see `Retry-After` (code `rate_limited`)", body = ErrorBody),
    )
)]
pub async fn delete_me(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    Https(https): Https,
    ApiJson(body): ApiJson<DeleteAccount>,
) -> Result<Response, ApiError> {
    let me = caller.require_user()?.clone();
    within_password_limit("password", &body.password)?;
    let user = match s.db.user_by_id(&me.user_id).await {
        Ok(u) => u,
        Err(DbError::NotFound) => return Err(unauthorized(ErrorCode::InvalidSession)),
        Err(e) => return Err(e.into()),
    };
    confirm_password(&s, &client, &user, body.password, "the password is wrong").await?;
    s.db.delete_user(
        &user.id,
        s.config.history_thresholds(),
        s.config.trending_half_life_ms(),
    )
    .await?;
    s.changes.publish(Change::UserSessions(user.id.clone()));
    s.changes.publish(Change::User(user.id.clone()));
    tracing::info!(user = %user.id, "account deleted");
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_session_cookie(https || s.config.cookie_secure),
        )],
    )
        .into_response())
}

/// Replaces the viewer's avatar: the body is the image (PNG, JPEG, WebP, GIF), put
/// through the ingest pipeline's image path.
#[utoipa::path(
    put,
    path = "/api/users/me/avatar",
    tag = "accounts",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image bytes"),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The viewer with the new avatar", body = UserView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 413, description = "Larger than max_avatar_bytes", body = ErrorBody),
        (status = 422, description = "Not an image the pipeline accepts", body = ErrorBody),
        (status = 503, description = "No ingest pipeline on this server", body = ErrorBody),
    )
)]
pub async fn put_avatar(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UserView>, ApiError> {
    let me = caller.require_user()?.clone();
    let limit = usize::try_from(s.config.max_avatar_bytes).unwrap_or(usize::MAX);
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the image is larger than {limit} bytes"),
        )
    };
    if header_text(&headers, "content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > s.config.max_avatar_bytes)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::new(ErrorCode::BadBody, "could not read the body")
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("body", "is empty: send the image bytes"));
    }
    let user = s.db.user_by_id(&me.user_id).await?;
    s.uploads
        .ingest_avatar(&user.id, &user.username, bytes)
        .await
        .map_err(ApiError::from)?;
    s.changes.publish(Change::User(me.user_id.clone()));
    Ok(Json(me_view(&s, &client, &me.user_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(check_username("ann").is_ok());
        assert!(check_username("a.b-c_9").is_ok());
        assert!(check_username("an").is_err());
        assert!(check_username(&"a".repeat(33)).is_err());
        assert!(check_username("Ann").is_err());
        assert!(check_username("an n").is_err());
        assert!(check_username("ann'--").is_err());
    }

    #[test]
    fn passwords_and_emails() {
        assert!(check_password("p", "12345678").is_err(), "common");
        assert!(
            check_password("p", "PassWord123").is_err(),
            "common, any case"
        );
        assert!(check_password("p", "correct horse").is_ok());
        assert!(is_bidi_control('\u{202E}') && is_bidi_control('\u{2067}'));
        assert!(!is_bidi_control('a') && !is_bidi_control('é') && !is_bidi_control('ش'));
        assert!(check_password("p", "1234567").is_err());
        assert!(check_password("p", &"x".repeat(1025)).is_err());
        assert!(check_password("p", &"x".repeat(1024)).is_ok());
        assert!(check_email("a@b.co").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@b.co ", "a@@b.co", "a@.b", "a@b..co",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_of_birth() {
        let now = days_from_civil(2026, 6, 1) * 86_400_000;
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(check_date_of_birth("1990-05-17", now).is_ok());
        assert!(check_date_of_birth("2024-02-29", now).is_ok());
        assert!(check_date_of_birth("2026-06-01", now).is_ok());
        for bad in [
            "2023-02-29",
            "1990-13-01",
            "1990-00-10",
            "1990-04-31",
            "1899-12-31",
            "2026-06-02",
            "90-05-17",
            "1990/05/17",
            "1990-5-17",
            "+990-05-17",
            "",
        ] {
            assert!(check_date_of_birth(bad, now).is_err(), "{bad}");
        }
    }
}
