//! Watch history (events in; history, continue watching, export and deletes out),
//! trending, recommendations and similar titles.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::content::load;
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, Client};
use super::views::{ContentSummary, ErrorBody, ViewCtx};
use crate::db::DbError;
use crate::history::{
    trending, DeleteScope, Deleted, Event, EventKind, ExportedEvent, Outcome, QueueError,
    UserBatch, WatchState,
};
use crate::playback::{availability, valid_region};
use crate::recommend::{current_list, item_subject, user_subject};
use crate::server::{ApiError, AppState};

/// How far ahead of the server's clock an event's `at` may be.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;
/// The longest duration accepted (100 days), to keep arithmetic sane.
const MAX_DURATION_MS: i64 = 100 * 86_400_000;
/// The largest page.
const MAX_LIMIT: i64 = 100;
/// The deepest offset.
const MAX_OFFSET: i64 = 100_000;

/// One watch event as a player sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WatchEventIn {
    pub content_id: String,
    /// The player's playback session: 1–64 of `A-Z a-z 0-9 . _ -`.
    pub session_id: String,
    /// The event's number in its session, from 0. `(session_id, seq)` makes an
    /// event idempotent: sending it again changes nothing.
    pub seq: i64,
    pub position_ms: i64,
    /// The title's duration, more than 0.
    pub duration_ms: i64,
    pub kind: EventKind,
    /// When it happened by the player's clock, Unix ms (at most 5 minutes ahead).
    pub at: i64,
}

/// A batch of watch events.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WatchEventsIn {
    /// At most `history_max_batch` (default 1000) events.
    pub events: Vec<WatchEventIn>,
}

fn check_session_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Records watch events. Answers once they are committed: an accepted event is
/// durable, and visible in every read, when this returns.
#[utoipa::path(
    post,
    path = "/api/history",
    tag = "history",
    request_body = WatchEventsIn,
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Committed (duplicates ignored)", body = Outcome),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "A title the caller may not play in their region (code `unavailable_in_region`)", body = ErrorBody),
        (status = 422, description = "A bad event (code `invalid_field`, `too_many_events` or `unknown_content`)", body = ErrorBody),
        (status = 429, description = "Over the viewer's events per minute (code `rate_limited`); retry after `Retry-After`", body = ErrorBody),
        (status = 503, description = "The write queue is full (code `history_busy`); retry after `Retry-After`", body = ErrorBody),
    )
)]
pub async fn post_history(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiJson(body): ApiJson<WatchEventsIn>,
) -> Result<Json<Outcome>, ApiError> {
    let user = caller.require_user()?.user_id.clone();
    if body.events.len() > s.config.history_max_batch as usize {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_events",
            format!("at most {} events per request", s.config.history_max_batch),
        ));
    }
    let now = s.now_ms();
    let mut events = Vec::with_capacity(body.events.len());
    let mut titles: Vec<&str> = Vec::new();
    for (i, e) in body.events.iter().enumerate() {
        let field = |name: &str| format!("events[{i}].{name}");
        if !check_session_id(&e.session_id) {
            return Err(ApiError::invalid(
                &field("session_id"),
                "must be 1–64 of A-Z a-z 0-9 . _ -",
            ));
        }
        if e.seq < 0 {
            return Err(ApiError::invalid(&field("seq"), "must be 0 or more"));
        }
        if !(1..=MAX_DURATION_MS).contains(&e.duration_ms) {
            return Err(ApiError::invalid(
                &field("duration_ms"),
                "must be more than 0 and at most 100 days",
            ));
        }
        if e.position_ms < 0 {
            return Err(ApiError::invalid(
                &field("position_ms"),
                "must be 0 or more",
            ));
        }
        if e.at <= 0 || e.at > now + MAX_CLOCK_SKEW_MS {
            return Err(ApiError::invalid(
                &field("at"),
                "must be a Unix time in ms, not in the future",
            ));
        }
        if !titles.contains(&e.content_id.as_str()) {
            titles.push(&e.content_id);
        }
        events.push(Event {
            content_id: e.content_id.clone(),
            session_id: e.session_id.clone(),
            seq: e.seq,
            // A position past the end is the end.
            position_ms: e.position_ms.min(e.duration_ms),
            duration_ms: e.duration_ms,
            kind: e.kind,
            at: e.at,
        });
    }
    for id in titles {
        let content = match load(&s, id).await {
            Ok(c) => c,
            Err(e) if e.status == StatusCode::NOT_FOUND => return Err(unknown_content(id)),
            Err(e) => return Err(e),
        };
        // Only what the viewer may play here can be watched (and trend) here.
        if !availability(&content.rights, client.region.as_deref(), now).available {
            let shown: String = id.chars().take(64).collect();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "unavailable_in_region",
                format!("'{shown}' may not be played in your region, so it cannot be watched"),
            ));
        }
    }
    if events.is_empty() {
        return Ok(Json(Outcome::default()));
    }
    if let Err(wait) = s.event_budget.take(&user, events.len()) {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        tracing::warn!(
            target: "keyframe::security",
            user = %user,
            events = events.len(),
            retry_after_secs = secs,
            "refused watch events over the viewer's budget"
        );
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "at most {} watch events a minute; retry later",
                s.config.history_events_per_user_minute
            ),
        )
        .with_header(
            header::RETRY_AFTER,
            crate::server::header_value(&secs.to_string()),
        ));
    }
    let batch = UserBatch {
        user_id: user,
        region: client.region.unwrap_or_default(),
        events,
    };
    match s.history.submit(batch).await {
        Ok(outcome) => Ok(Json(outcome)),
        Err(QueueError::Full) => Err(busy("the history queue is full; retry shortly")),
        Err(QueueError::Stopped) => Err(busy("the server is shutting down")),
        Err(QueueError::Db(DbError::MissingReference(_))) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_content",
            "a title in the batch no longer exists",
        )),
        Err(QueueError::Db(e)) => Err(e.into()),
    }
}

fn unknown_content(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_content",
        format!("no such content: '{shown}'"),
    )
}

fn busy(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "history_busy", message)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn bad_query(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

/// Paging of a history list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1–100. Default 24.
    pub limit: Option<i64>,
    /// Items to skip. Default 0.
    pub offset: Option<i64>,
}

fn page(p: &PageParams) -> Result<(i64, i64), ApiError> {
    let limit = p.limit.unwrap_or(24);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_query("limit must be 1–100"));
    }
    let offset = p.offset.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(bad_query("offset must be 0–100000"));
    }
    Ok((limit, offset))
}

/// A title in the viewer's history.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    pub content: ContentSummary,
    /// Where to resume, ms (`null` below the resume threshold and once finished).
    pub position_ms: Option<i64>,
    pub duration_ms: i64,
    /// Progress of the newest event, 0–1.
    pub progress: f64,
    pub played: bool,
    pub play_count: i64,
    pub watched_ms: i64,
    pub first_watched_at: i64,
    pub last_watched_at: i64,
    /// Hidden from "continue watching".
    pub hidden: bool,
}

/// A page of history.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryItem>,
    /// The `offset` of the next page; `null` on the last page.
    pub next_offset: Option<i64>,
}

async fn items(
    s: &AppState,
    client: &Client,
    rows: Vec<(String, WatchState)>,
    only_available: bool,
) -> Result<Vec<HistoryItem>, ApiError> {
    let now = s.now_ms();
    let ctx = ViewCtx {
        state: s,
        region: client.region.as_deref(),
        now_ms: now,
    };
    let mut out = Vec::with_capacity(rows.len());
    for (id, st) in rows {
        let c = match s.hot.content(&s.db, &id).await {
            Ok(c) => c,
            Err(DbError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let summary = ctx.summary(&c)?;
        if only_available && !summary.availability.available {
            continue;
        }
        out.push(HistoryItem {
            content: summary,
            position_ms: st.resume_ms,
            duration_ms: st.duration_ms,
            progress: st.progress(),
            played: st.played,
            play_count: st.play_count,
            watched_ms: st.watched_ms,
            first_watched_at: st.first_at,
            last_watched_at: st.last_at,
            hidden: st.hidden,
        });
    }
    Ok(out)
}

/// The viewer's titles, most recently watched first.
#[utoipa::path(
    get,
    path = "/api/history",
    tag = "history",
    params(PageParams),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of history", body = HistoryPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn get_history(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    let user = caller.require_user()?;
    let (limit, offset) = page(&p)?;
    let mut rows =
        s.db.watch_history(&user.user_id, false, limit + 1, offset)
            .await?;
    let next_offset = (rows.len() as i64 > limit).then_some(offset + limit);
    rows.truncate(limit as usize);
    Ok(Json(HistoryPage {
        items: items(&s, &client, rows, false).await?,
        next_offset,
    }))
}

/// Titles to continue: started (past the resume threshold), not finished, not
/// hidden, and watchable in the caller's region now; most recent first.
#[utoipa::path(
    get,
    path = "/api/history/continue",
    tag = "history",
    params(PageParams),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Continue watching", body = HistoryPage),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn continue_watching(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    let user = caller.require_user()?;
    let (limit, offset) = page(&p)?;
    // Titles unavailable here are skipped after the query: read a margin more.
    let rows =
        s.db.watch_history(&user.user_id, true, 2 * limit + 10, offset)
            .await?;
    let read = rows.len() as i64;
    let mut list = items(&s, &client, rows, true).await?;
    let next_offset =
        (read == 2 * limit + 10 || list.len() as i64 > limit).then_some(offset + read.min(limit));
    list.truncate(limit as usize);
    Ok(Json(HistoryPage {
        items: list,
        next_offset,
    }))
}

/// Hides a title from "continue watching" without losing its position; watching
/// it again shows it again.
#[utoipa::path(
    delete,
    path = "/api/history/continue/{id}",
    tag = "history",
    params(("id" = String, Path, description = "Content id")),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Hidden"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "Not in the viewer's history (code `not_in_history`)", body = ErrorBody),
    )
)]
pub async fn hide_continue(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let user = caller.require_user()?;
    if id.len() <= 64 && s.db.hide_continue(&user.user_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_in_history",
            "this title is not in your history",
        ))
    }
}

/// What to delete: everything (no parameter), one title, or events before a time.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Only this title's history.
    pub content_id: Option<String>,
    /// Only events that happened before this Unix time, ms.
    pub before: Option<i64>,
}

/// Deletes the viewer's history (all of it, one title's, or before a time) and
/// everything derived from it: resume points, counters, trending weight and
/// personal recommendations.
#[utoipa::path(
    delete,
    path = "/api/history",
    tag = "history",
    params(DeleteParams),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "What was deleted", body = Deleted),
        (status = 400, description = "Both `content_id` and `before`, or a bad value", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn delete_history(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<DeleteParams>,
) -> Result<Json<Deleted>, ApiError> {
    let user = caller.require_user()?;
    let scope = match (p.content_id, p.before) {
        (Some(_), Some(_)) => return Err(bad_query("give content_id or before, not both")),
        (Some(c), None) if c.is_empty() || c.len() > 64 => {
            return Err(bad_query("content_id must be 1–64 characters"))
        }
        (Some(c), None) => DeleteScope::Content(c),
        (None, Some(b)) if b <= 0 => return Err(bad_query("before must be a Unix time in ms")),
        (None, Some(b)) => DeleteScope::Before(b),
        (None, None) => DeleteScope::All,
    };
    let deleted =
        s.db.delete_history(
            &user.user_id,
            &scope,
            s.config.history_thresholds(),
            s.config.trending_half_life_ms(),
        )
        .await;
    // Announced whatever the outcome: a failed delete may have raced a cache load.
    s.changes
        .publish(crate::cache::Change::UserWatch(user.user_id.clone()));
    Ok(Json(deleted?))
}

/// A viewer's history as they can take it away.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HistoryExport {
    pub user_id: String,
    pub exported_at: i64,
    /// Every event, oldest first.
    pub events: Vec<ExportedEvent>,
    /// What the events add up to, per title.
    pub titles: Vec<ExportedTitle>,
}

/// One title's state in an export.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExportedTitle {
    pub content_id: String,
    pub position_ms: i64,
    pub resume_position_ms: Option<i64>,
    pub duration_ms: i64,
    pub played: bool,
    pub play_count: i64,
    pub watched_ms: i64,
    pub first_watched_at: i64,
    pub last_watched_at: i64,
    pub hidden: bool,
}

/// The viewer's whole history as JSON (a download).
#[utoipa::path(
    get,
    path = "/api/history/export",
    tag = "history",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Everything recorded about the viewer's watching", body = HistoryExport),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn export_history(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let user = caller.require_user()?;
    let events = s.db.export_history(&user.user_id).await?;
    let mut titles = Vec::new();
    let mut offset = 0;
    loop {
        let rows =
            s.db.watch_history(&user.user_id, false, 1000, offset)
                .await?;
        let n = rows.len() as i64;
        titles.extend(rows.into_iter().map(|(content_id, st)| ExportedTitle {
            content_id,
            position_ms: st.position_ms,
            resume_position_ms: st.resume_ms,
            duration_ms: st.duration_ms,
            played: st.played,
            play_count: st.play_count,
            watched_ms: st.watched_ms,
            first_watched_at: st.first_at,
            last_watched_at: st.last_at,
            hidden: st.hidden,
        }));
        if n < 1000 {
            break;
        }
        offset += n;
    }
    let body = HistoryExport {
        user_id: user.user_id.clone(),
        exported_at: s.now_ms(),
        events,
        titles,
    };
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"keyframe-history.json\"",
            ),
        ],
        Json(body),
    )
        .into_response())
}

/// Trending query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// The region (default: the caller's; unknown = every region together, and only
    /// titles licensed everywhere).
    pub region: Option<String>,
    /// 1–100. Default 24.
    pub limit: Option<i64>,
}

/// A title with a score.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScoredItem {
    pub content: ContentSummary,
    pub score: f64,
    /// `trending`, `similar` or `personal`.
    pub source: &'static str,
    /// For personal picks: the title that led to it ("because you watched").
    pub because: Option<Reason>,
}

/// The title a pick came from.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reason {
    pub content_id: String,
    pub title: String,
}

/// A list of scored titles.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScoredList {
    pub items: Vec<ScoredItem>,
    /// The region the list was made for (`null` = unknown).
    pub region: Option<String>,
    /// The recommendation generation read (`null` when none was, or none exists).
    pub generation: Option<i64>,
}

fn limit_of(l: Option<i64>) -> Result<i64, ApiError> {
    let l = l.unwrap_or(24);
    if (1..=MAX_LIMIT).contains(&l) {
        Ok(l)
    } else {
        Err(bad_query("limit must be 1–100"))
    }
}

/// Trending titles, scored by views decayed with the configured half-life.
async fn trending_items(
    s: &AppState,
    region: Option<&str>,
    limit: i64,
    skip: &[String],
) -> Result<Vec<ScoredItem>, ApiError> {
    let now = s.now_ms();
    let ctx = ViewCtx {
        state: s,
        region,
        now_ms: now,
    };
    let fetch = limit + skip.len() as i64;
    let half_life = s.config.trending_half_life_ms();
    let mut top = trending::top(&s.db, region, region, now, half_life, fetch, 0).await?;
    if region.is_some() && (top.len() as i64) < fetch {
        // A region with little history: every region's trending fills in.
        for t in trending::top(&s.db, None, region, now, half_life, fetch, 0).await? {
            if !top.iter().any(|x| x.content_id == t.content_id) {
                top.push(t);
            }
        }
    }
    let mut out = Vec::new();
    for t in top {
        if skip.contains(&t.content_id) {
            continue;
        }
        let c = match s.hot.content(&s.db, &t.content_id).await {
            Ok(c) => c,
            Err(DbError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(ScoredItem {
            content: ctx.summary(&c)?,
            score: t.score,
            source: "trending",
            because: None,
        });
        if out.len() as i64 >= limit {
            break;
        }
    }
    Ok(out)
}

/// Trending titles in a region.
#[utoipa::path(
    get,
    path = "/api/trending",
    tag = "recommendations",
    params(TrendingParams),
    responses(
        (status = 200, description = "Most watched lately, watchable in the region", body = ScoredList),
        (status = 400, description = "Bad region or limit", body = ErrorBody),
    )
)]
pub async fn get_trending(
    State(s): State<AppState>,
    client: Client,
    ApiQuery(p): ApiQuery<TrendingParams>,
) -> Result<Json<ScoredList>, ApiError> {
    let limit = limit_of(p.limit)?;
    let region = match p.region.map(|r| r.trim().to_ascii_lowercase()) {
        Some(r) if r.is_empty() => None,
        Some(r) if valid_region(&r) => Some(r),
        Some(_) => return Err(bad_query("region must be 1–32 of a-z 0-9 _ -")),
        None => client.region,
    };
    Ok(Json(ScoredList {
        items: trending_items(&s, region.as_deref(), limit, &[]).await?,
        region,
        generation: None,
    }))
}

/// Limit of a recommendation list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// 1–100. Default 24.
    pub limit: Option<i64>,
}

/// Picks for the signed-in viewer ("because you watched X"), watchable in their
/// region now; trending fills in (viewers without history get trending only).
#[utoipa::path(
    get,
    path = "/api/recommendations",
    tag = "recommendations",
    params(LimitParams),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Personal picks, then trending", body = ScoredList),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn get_recommendations(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiQuery(p): ApiQuery<LimitParams>,
) -> Result<Json<ScoredList>, ApiError> {
    let user = caller.require_user()?;
    let limit = limit_of(p.limit)?;
    let now = s.now_ms();
    let region = client.region.as_deref();
    let ctx = ViewCtx {
        state: &s,
        region,
        now_ms: now,
    };
    let generation = crate::recommend::current_generation(&s.db).await?;
    let picks = current_list(&s.db, &user_subject(&user.user_id), limit).await?;
    let mut items = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for r in picks {
        let c = match s.hot.content(&s.db, &r.content_id).await {
            Ok(c) => c,
            Err(DbError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        if !availability(&c.rights, region, now).available {
            continue;
        }
        let because = match &r.reason {
            Some(id) => match s.hot.content(&s.db, id).await {
                Ok(b) => Some(Reason {
                    content_id: b.id.clone(),
                    title: b.title.clone(),
                }),
                Err(_) => None,
            },
            None => None,
        };
        seen.push(c.id.clone());
        items.push(ScoredItem {
            content: ctx.summary(&c)?,
            score: r.score,
            source: "personal",
            because,
        });
    }
    if (items.len() as i64) < limit {
        // Trending, minus what they have watched or were just offered.
        let mut skip = seen;
        let mut offset = 0;
        loop {
            let rows =
                s.db.watch_history(&user.user_id, false, 1000, offset)
                    .await?;
            let n = rows.len() as i64;
            skip.extend(
                rows.into_iter()
                    .filter(|(_, st)| st.played || st.resume_ms.is_some())
                    .map(|(c, _)| c),
            );
            if n < 1000 {
                break;
            }
            offset += n;
        }
        let more = trending_items(&s, region, limit - items.len() as i64, &skip).await?;
        items.extend(more);
    }
    Ok(Json(ScoredList {
        items,
        region: client.region,
        generation,
    }))
}

/// Titles similar to one (watched by the same viewers), watchable in the caller's
/// region now; trending fills in for titles without enough history.
#[utoipa::path(
    get,
    path = "/api/content/{id}/similar",
    tag = "recommendations",
    params(("id" = String, Path, description = "Content id"), LimitParams),
    responses(
        (status = 200, description = "Similar titles, then trending", body = ScoredList),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 404, description = "No such title", body = ErrorBody),
    )
)]
pub async fn similar(
    State(s): State<AppState>,
    client: Client,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<LimitParams>,
) -> Result<Json<ScoredList>, ApiError> {
    let limit = limit_of(p.limit)?;
    let c = load(&s, &id).await?;
    let now = s.now_ms();
    let region = client.region.as_deref();
    let ctx = ViewCtx {
        state: &s,
        region,
        now_ms: now,
    };
    let generation = crate::recommend::current_generation(&s.db).await?;
    let mut items = Vec::new();
    let mut seen = vec![c.id.clone()];
    for r in current_list(&s.db, &item_subject(&c.id), limit).await? {
        let other = match s.hot.content(&s.db, &r.content_id).await {
            Ok(o) => o,
            Err(DbError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        if !availability(&other.rights, region, now).available {
            continue;
        }
        seen.push(other.id.clone());
        items.push(ScoredItem {
            content: ctx.summary(&other)?,
            score: r.score,
            source: "similar",
            because: None,
        });
    }
    if (items.len() as i64) < limit {
        let more = trending_items(&s, region, limit - items.len() as i64, &seen).await?;
        items.extend(more);
    }
    Ok(Json(ScoredList {
        items,
        region: client.region,
        generation,
    }))
}
