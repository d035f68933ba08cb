//! Watch history: events in (checked by [`check_events`], a pure function);
//! history, continue watching, export and deletes out. The `history` tag of the
//! OpenAPI document.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyframe_core::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{header_value, list_limit, ApiJson, ApiPath, ApiQuery, Caller, Client};
use super::views::{ContentSummary, ErrorBody, ViewCtx};
use crate::cache::{Change, TitleError};
use crate::db::DbError;
use crate::history::{
    DeleteScope, Deleted, Event, EventKind, ExportedEvent, Outcome, QueueError, UserBatch,
    WatchState,
};
use crate::playback::availability;
use crate::state::AppState;

/// How far ahead of the server's clock an event's `at` may be.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;
/// The longest duration accepted (100 days), to keep arithmetic sane.
const MAX_DURATION_MS: i64 = 100 * 86_400_000;
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

/// Why a batch of watch events is refused before any title is looked up.
#[derive(Debug, PartialEq, Eq)]
pub enum BadEvents {
    /// More events than `history_max_batch`.
    TooMany { max: u32 },
    /// A field out of range: `events[i].name`, and why.
    Field { field: String, why: &'static str },
}

impl From<BadEvents> for ApiError {
    fn from(e: BadEvents) -> Self {
        match e {
            BadEvents::TooMany { max } => ApiError::new(
                ErrorCode::TooManyEvents,
                format!("at most {max} events per request"),
            ),
            BadEvents::Field { field, why } => ApiError::invalid(&field, why),
        }
    }
}

/// The events of a request as they are recorded, or why the request is refused:
/// at most `max_batch` of them; session ids of 1–64 of `A-Z a-z 0-9 . _ -`;
/// sequence numbers and positions from 0; durations of 1 ms to 100 days; times
/// after 1970 and at most 5 minutes ahead of `now_ms` (the server's clock). A
/// position past the end is the end. The first bad event, in order, is reported.
pub fn check_events(
    body: &WatchEventsIn,
    max_batch: u32,
    now_ms: i64,
) -> Result<Vec<Event>, BadEvents> {
    if body.events.len() > max_batch as usize {
        return Err(BadEvents::TooMany { max: max_batch });
    }
    let mut events = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.iter().enumerate() {
        let bad = |name: &str, why| BadEvents::Field {
            field: format!("events[{i}].{name}"),
            why,
        };
        if !check_session_id(&e.session_id) {
            return Err(bad("session_id", "must be 1–64 of A-Z a-z 0-9 . _ -"));
        }
        if e.seq < 0 {
            return Err(bad("seq", "must be 0 or more"));
        }
        if !(1..=MAX_DURATION_MS).contains(&e.duration_ms) {
            return Err(bad(
                "duration_ms",
                "must be more than 0 and at most 100 days",
            ));
        }
        if e.position_ms < 0 {
            return Err(bad("position_ms", "must be 0 or more"));
        }
        if e.at <= 0 || e.at > now_ms + MAX_CLOCK_SKEW_MS {
            return Err(bad("at", "must be a Unix time in ms, not in the future"));
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
    Ok(events)
}

/// Records watch events. Answers once they are committed: an accepted event is
/// durable, and visible in every read, when this returns. With `events` (NATS
/// JetStream) it answers once JetStream acknowledged every event: durable then,
/// visible once a catalog's consumer folded it (within a second at p95).
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
        (status = 503, description = "The write queue is full (code `history_busy`), or the event stream did not acknowledge (code `events_unavailable`); retry after `Retry-After`", body = ErrorBody),
    )
)]
pub async fn post_history(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiJson(body): ApiJson<WatchEventsIn>,
) -> Result<Json<Outcome>, ApiError> {
    let user = caller.require_user()?.user_id.clone();
    let now = s.now_ms();
    let events = check_events(&body, s.config.history_max_batch, now)?;
    let mut titles: Vec<&str> = Vec::new();
    for e in &events {
        if !titles.contains(&e.content_id.as_str()) {
            titles.push(&e.content_id);
        }
    }
    for id in titles {
        let content = match s.hot.title(&s.db, id).await {
            Ok(c) => c,
            Err(TitleError::NotFound) => return Err(unknown_content(id)),
            Err(e) => return Err(e.into()),
        };
        // Only what the viewer may play here can be watched (and trend) here.
        if !availability(&content.rights, client.region.as_deref(), now).available {
            let shown: String = id.chars().take(64).collect();
            // 403, not the code's 451: this endpoint's documented answer since it
            // began refusing such titles (ARCHITECTURE.md, "Error codes").
            return Err(ApiError::new(
                ErrorCode::UnavailableInRegion,
                format!("'{shown}' may not be played in your region, so it cannot be watched"),
            )
            .with_status(StatusCode::FORBIDDEN));
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
            ErrorCode::RateLimited,
            format!(
                "at most {} watch events a minute; retry later",
                s.config.history_events_per_user_minute
            ),
        )
        .with_header(header::RETRY_AFTER, header_value(&secs.to_string())));
    }
    let batch = UserBatch {
        user_id: user,
        region: client.region.unwrap_or_default(),
        events,
    };
    if let Some(events) = &s.events {
        // Durable once answered: every event acknowledged by JetStream, or 503.
        return match events.append(&batch, now).await {
            Ok(outcome) => Ok(Json(outcome)),
            Err(e) => {
                tracing::warn!(error = %e, events = batch.events.len(), "watch events not appended");
                Err(ApiError::new(
                    ErrorCode::EventsUnavailable,
                    "the event stream is unavailable; retry shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("2")))
            }
        };
    }
    match s.history.submit(batch).await {
        Ok(outcome) => Ok(Json(outcome)),
        Err(QueueError::Full) => Err(busy("the history queue is full; retry shortly")),
        Err(QueueError::Stopped) => Err(busy("the server is shutting down")),
        Err(QueueError::Db(DbError::MissingReference(_))) => Err(ApiError::new(
            ErrorCode::UnknownContent,
            "a title in the batch no longer exists",
        )),
        Err(QueueError::Db(e)) => Err(e.into()),
    }
}

fn unknown_content(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::new(
        ErrorCode::UnknownContent,
        format!("no such content: '{shown}'"),
    )
}

fn busy(message: &str) -> ApiError {
    ApiError::new(ErrorCode::HistoryBusy, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
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
    let limit = list_limit(p.limit)?;
    let offset = p.offset.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(ApiError::bad_query("offset must be 0–100000"));
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
        let Some(c) = s.hot.listed(&s.db, &id).await? else {
            continue;
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
            ErrorCode::NotInHistory,
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
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_query("give content_id or before, not both"))
        }
        (Some(c), None) if c.is_empty() || c.len() > 64 => {
            return Err(ApiError::bad_query("content_id must be 1–64 characters"))
        }
        (Some(c), None) => DeleteScope::Content(c),
        (None, Some(b)) if b <= 0 => {
            return Err(ApiError::bad_query("before must be a Unix time in ms"))
        }
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
    s.changes.publish(Change::UserWatch(user.user_id.clone()));
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
    for (content_id, st) in s.db.whole_watch_history(&user.user_id).await? {
        titles.push(ExportedTitle {
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
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn event(seq: i64) -> WatchEventIn {
        WatchEventIn {
            content_id: "t1".into(),
            session_id: "s-1.a_B".into(),
            seq,
            position_ms: 1_000,
            duration_ms: 60_000,
            kind: EventKind::Progress,
            at: NOW,
        }
    }

    fn check(events: Vec<WatchEventIn>) -> Result<Vec<Event>, BadEvents> {
        check_events(&WatchEventsIn { events }, 3, NOW)
    }

    fn field(f: &str, why: &'static str) -> Result<Vec<Event>, BadEvents> {
        Err(BadEvents::Field {
            field: f.into(),
            why,
        })
    }

    #[test]
    fn good_events_are_kept_in_order_with_positions_clamped_to_the_end() {
        let mut past_end = event(1);
        past_end.position_ms = 90_000;
        let got = check(vec![event(0), past_end]).expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].seq, got[0].position_ms), (0, 1_000));
        assert_eq!((got[1].seq, got[1].position_ms), (1, 60_000));
        assert_eq!(got[1].session_id, "s-1.a_B");
        assert_eq!(check(Vec::new()).expect("empty"), Vec::new());
    }

    #[test]
    fn too_many_events_are_refused_before_any_is_checked() {
        let mut bad = event(0);
        bad.seq = -1;
        assert_eq!(
            check(vec![bad, event(1), event(2), event(3)]),
            Err(BadEvents::TooMany { max: 3 })
        );
        assert!(check(vec![event(0), event(1), event(2)]).is_ok());
    }

    #[test]
    fn each_field_has_its_range() {
        let with = |f: fn(&mut WatchEventIn)| {
            let mut e = event(0);
            f(&mut e);
            check(vec![event(5), e])
        };
        let session = "must be 1–64 of A-Z a-z 0-9 . _ -";
        assert_eq!(
            with(|e| e.session_id = String::new()),
            field("events[1].session_id", session)
        );
        assert_eq!(
            with(|e| e.session_id = "x".repeat(65)),
            field("events[1].session_id", session)
        );
        assert!(with(|e| e.session_id = "x".repeat(64)).is_ok());
        assert_eq!(
            with(|e| e.session_id = "a b".into()),
            field("events[1].session_id", session)
        );
        assert_eq!(
            with(|e| e.seq = -1),
            field("events[1].seq", "must be 0 or more")
        );
        let duration = "must be more than 0 and at most 100 days";
        assert_eq!(
            with(|e| e.duration_ms = 0),
            field("events[1].duration_ms", duration)
        );
        assert_eq!(
            with(|e| e.duration_ms = MAX_DURATION_MS + 1),
            field("events[1].duration_ms", duration)
        );
        assert!(with(|e| e.duration_ms = MAX_DURATION_MS).is_ok());
        assert_eq!(
            with(|e| e.position_ms = -1),
            field("events[1].position_ms", "must be 0 or more")
        );
        let at = "must be a Unix time in ms, not in the future";
        assert_eq!(with(|e| e.at = 0), field("events[1].at", at));
        assert_eq!(
            with(|e| e.at = NOW + MAX_CLOCK_SKEW_MS + 1),
            field("events[1].at", at)
        );
        assert!(with(|e| e.at = NOW + MAX_CLOCK_SKEW_MS).is_ok());
    }

    #[test]
    fn refusals_keep_their_codes() {
        let e = ApiError::from(BadEvents::TooMany { max: 1000 });
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "too_many_events")
        );
        assert_eq!(e.message, "at most 1000 events per request");
        let e = ApiError::from(BadEvents::Field {
            field: "events[0].seq".into(),
            why: "must be 0 or more",
        });
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
        );
        assert_eq!(e.message, "events[0].seq: must be 0 or more");
    }
}
