//! Browsing, search, detail and playback URLs.

use axum::extract::State;
use axum::Json;
use keyframe_core::ErrorCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Caller, Client};
use super::views::{
    source, CategoryCount, ContentDetail, ContentList, ErrorBody, PlayResponse, ViewCtx,
};
use crate::db::DbError;
use crate::listing::{Availability, ContentQuery, Sort};
use crate::playback::availability;
use crate::state::AppState;

/// The largest page.
const MAX_LIMIT: u32 = 100;
/// The deepest offset (deeper pages are better found by searching).
const MAX_OFFSET: u32 = 10_000;
/// The longest search text, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// The order of a list.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortParam {
    /// Most recently added first (the default without `q`).
    #[default]
    Newest,
    /// By title.
    Title,
    /// Most watched lately in the caller's region first (views decayed with
    /// `trending_half_life_secs`); with `q`, by the plain views counter.
    Trending,
    /// Best match first (the default with `q`).
    Relevance,
}

/// Which titles to list, by their rights in the caller's region.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AvailabilityParam {
    /// Watchable now (the default).
    #[default]
    Now,
    /// Not yet watchable; a window opens later.
    Upcoming,
    /// Everything whatever its rights (admin token only).
    All,
}

/// Paging, search, filters and sort of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–100. Default 24.
    pub limit: Option<u32>,
    /// Titles to skip, at most 10000. Default 0.
    pub offset: Option<u32>,
    /// Search text: every word must start a word of the title or description.
    pub q: Option<String>,
    /// Only titles in this category.
    pub category: Option<String>,
    /// Only titles of this kind (`video`, `audio`, `image`, `other`).
    pub kind: Option<String>,
    pub sort: Option<SortParam>,
    pub availability: Option<AvailabilityParam>,
}

/// Lists titles the caller's region may watch.
#[utoipa::path(
    get,
    path = "/api/content",
    tag = "content",
    params(ListParams),
    security((), ("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of titles", body = ContentList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "`availability=all` without the admin token", body = ErrorBody),
    )
)]
pub async fn list_content(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ContentList>, ApiError> {
    let limit = p.limit.unwrap_or(24);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_query("limit must be 1–100"));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(bad_query("offset must be at most 10000"));
    }
    let search = p.q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty());
    if search
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(bad_query("q must be at most 200 characters"));
    }
    for (name, v) in [("category", &p.category), ("kind", &p.kind)] {
        if v.as_ref().is_some_and(|v| v.chars().count() > 64) {
            return Err(bad_query(&format!("{name} must be at most 64 characters")));
        }
    }
    let availability = match p.availability.unwrap_or_default() {
        AvailabilityParam::Now => Availability::Now,
        AvailabilityParam::Upcoming => Availability::Upcoming,
        AvailabilityParam::All => {
            super::extract::require_admin(&s, &caller)?;
            Availability::All
        }
    };
    let sort = match p.sort {
        Some(SortParam::Newest) => Sort::Newest,
        Some(SortParam::Title) => Sort::Title,
        Some(SortParam::Trending) => Sort::Trending,
        Some(SortParam::Relevance) => Sort::Relevance,
        None if search.is_some() => Sort::Relevance,
        None => Sort::Newest,
    };
    let now_ms = s.now_ms();
    let query = ContentQuery {
        region: client.region.clone(),
        availability,
        now_ms,
        category: p.category.filter(|c| !c.is_empty()),
        kind: p.kind.filter(|k| !k.is_empty()),
        search,
        sort,
        // One more than asked tells whether there is a next page.
        limit: limit + 1,
        offset,
    };
    let mut ids = s.db.list_content_ids(&query).await?;
    let next_offset = (ids.len() > limit as usize).then_some(offset + limit);
    ids.truncate(limit as usize);
    let loaded = futures::future::join_all(ids.iter().map(|id| s.hot.content(&s.db, id))).await;
    let ctx = ViewCtx {
        state: &s,
        region: client.region.as_deref(),
        now_ms,
    };
    let mut items = Vec::with_capacity(loaded.len());
    for c in loaded {
        match c {
            Ok(c) => items.push(ctx.summary(&c)?),
            // Deleted since the list was read.
            Err(DbError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(ContentList {
        items,
        next_offset,
        region: client.region,
    }))
}

fn bad_query(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message)
}

/// A title with its assets, its adaptive-streaming ladder, where it stands in the
/// caller's region, and the signed-in viewer's resume position.
#[utoipa::path(
    get,
    path = "/api/content/{id}",
    tag = "content",
    params(("id" = String, Path, description = "Content id")),
    security((), ("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The title", body = ContentDetail),
        (status = 404, description = "No such title", body = ErrorBody),
    )
)]
pub async fn get_content(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ContentDetail>, ApiError> {
    let c = s.hot.title(&s.db, &id).await?;
    let ctx = ViewCtx {
        state: &s,
        region: client.region.as_deref(),
        now_ms: s.now_ms(),
    };
    let mut detail = ctx.detail(&c, caller.is_admin())?;
    detail.renditions = s.db.rendition_views(&c).await?;
    if let Some(user) = caller.user() {
        let resume = resume_state(&s, &user.user_id, &c.id).await?;
        detail.resume_position_ms = resume.position_ms;
        detail.watched = resume.watched;
    }
    Ok(Json(detail))
}

/// Where a viewer stands in a title.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ResumeState {
    pub position_ms: Option<i64>,
    pub watched: Option<bool>,
}

/// The viewer's resume position and watched flag from their watch history (through
/// the hot cache, which the history writer keeps current): `null`
/// position below the resume threshold and once finished; both `null` for a title
/// without history.
pub(crate) async fn resume_state(
    s: &AppState,
    user_id: &str,
    content_id: &str,
) -> Result<ResumeState, ApiError> {
    Ok(match s.hot.resume(&s.db, user_id, content_id).await? {
        Some(r) => ResumeState {
            position_ms: r.position_ms,
            watched: Some(r.watched),
        },
        None => ResumeState::default(),
    })
}

/// Options of a playback URL request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlayParams {
    /// `true` when a player renews the URL of a title it is already playing (its
    /// token is about to expire or has): the view is not counted again.
    pub renew: Option<bool>,
}

/// The expiry (Unix seconds) of a playback token issued at `now_ms`: the configured
/// lifetime plus the title's duration, so that a viewer who watches it through
/// (and seeks in it) keeps a valid token to the end, but never past the end of
/// the rights window the title is played under (when that is later than the
/// configured lifetime). A viewer who pauses longer than that gets a fresh URL
/// from the page (`?renew=true`).
pub fn play_expiry(
    now_ms: i64,
    ttl_secs: u64,
    duration_ms: Option<i64>,
    until_ms: Option<i64>,
) -> u64 {
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let film = u64::try_from(duration_ms.unwrap_or(0))
        .unwrap_or(0)
        .div_ceil(1000);
    let exp = now.saturating_add(ttl_secs).saturating_add(film);
    match until_ms.and_then(|u| u64::try_from(u / 1000).ok()) {
        Some(until) => exp.min(until.max(now.saturating_add(ttl_secs))),
        None => exp,
    }
}

/// A playback URL on the edge for the caller's region, with a token scoped to the
/// title's source object and to that region, valid for the configured lifetime
/// plus the title's duration (`play_expiry`).
#[utoipa::path(
    get,
    path = "/api/content/{id}/play",
    tag = "content",
    params(("id" = String, Path, description = "Content id"), PlayParams),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Where to play it", body = PlayResponse),
        (status = 401, description = "Not signed in (unless public_content is on)", body = ErrorBody),
        (status = 404, description = "No such title, or nothing to play", body = ErrorBody),
        (status = 451, description = "Rights forbid it in the caller's region now (code `unavailable_in_region`)", body = ErrorBody),
    )
)]
pub async fn play(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PlayParams>,
) -> Result<Json<PlayResponse>, ApiError> {
    let user = match caller.require_user() {
        Ok(u) => Some(u.user_id.clone()),
        Err(_) if s.config.public_content && !matches!(caller, Caller::BadSession(_)) => None,
        Err(e) => return Err(e),
    };
    let c = s.hot.title(&s.db, &id).await?;
    let now_ms = s.now_ms();
    let region = client.region.as_deref();
    let open = availability(&c.rights, region, now_ms);
    if !open.available {
        return Err(ApiError::new(
            ErrorCode::UnavailableInRegion,
            match region {
                Some(r) => format!("this title is not available in region '{r}' now"),
                None => "this title is not available in your region now".to_string(),
            },
        ));
    }
    let src = source(&c)
        .ok_or_else(|| ApiError::new(ErrorCode::NoMedia, "this title has nothing to play"))?;
    let edge = s.config.edge_for(region).to_string();
    let exp = play_expiry(
        now_ms,
        s.config.play_token_ttl_secs,
        src.duration_ms,
        open.available_until,
    );
    let (url, hls, dash) = play_urls(&s, &c, &edge, &src.object_key, exp, region)?;
    if params.renew != Some(true) {
        if let Err(e) = s.db.add_view(&c.id).await {
            tracing::warn!(error = %e, content = %c.id, "could not count a view");
        }
    }
    let resume = match &user {
        Some(u) => resume_state(&s, u, &c.id).await?,
        None => ResumeState::default(),
    };
    Ok(Json(PlayResponse {
        url,
        edge,
        region: client.region,
        expires_at: i64::try_from(exp).unwrap_or(i64::MAX).saturating_mul(1000),
        mime: src.mime.clone(),
        duration_ms: src.duration_ms,
        resume_position_ms: resume.position_ms,
        hls,
        dash,
    }))
}

/// The progressive URL, and with a ladder the HLS and DASH manifest URLs, all
/// three under one token for every object of the title (`Content::playable_keys`).
fn play_urls(
    s: &AppState,
    c: &crate::meta::Content,
    edge: &str,
    source_key: &str,
    exp: u64,
    region: Option<&str>,
) -> Result<(String, Option<String>, Option<String>), ApiError> {
    let signing = |e| ApiError::internal("signing a playback URL", e);
    let Some((hls, dash)) = c.ladder_manifests() else {
        let url = s
            .signer
            .url(edge, source_key, exp, region)
            .map_err(signing)?;
        return Ok((url, None, None));
    };
    let acl = c.playable_keys();
    let mut urls = s
        .signer
        .urls_sharing_token(edge, &[source_key, hls, dash], &acl, exp, region)
        .map_err(signing)?
        .into_iter();
    let mut next = || urls.next().unwrap_or_default();
    Ok((next(), Some(next()), Some(next())))
}

/// The categories in use.
#[utoipa::path(
    get,
    path = "/api/categories",
    tag = "content",
    responses((status = 200, description = "Categories with title counts", body = Vec<CategoryCount>))
)]
pub async fn categories(State(s): State<AppState>) -> Result<Json<Vec<CategoryCount>>, ApiError> {
    Ok(Json(
        s.db.categories()
            .await?
            .into_iter()
            .map(|(name, count)| CategoryCount { name, count })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::play_expiry;

    #[test]
    fn a_playback_token_outlives_the_film_but_not_its_rights() {
        let now = 1_000_000_000_i64; // ms
        assert_eq!(play_expiry(now, 300, None, None), 1_000_300);
        // A two-hour film: the configured lifetime plus its duration.
        assert_eq!(play_expiry(now, 300, Some(7_200_000), None), 1_007_500);
        assert_eq!(play_expiry(now, 300, Some(1), None), 1_000_301);
        // Rights that end in ten minutes cap it, never below the lifetime.
        assert_eq!(
            play_expiry(now, 300, Some(7_200_000), Some(1_000_600_000)),
            1_000_600
        );
        assert_eq!(
            play_expiry(now, 300, Some(7_200_000), Some(1_000_100_000)),
            1_000_300
        );
    }
}
