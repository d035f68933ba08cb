//! Trending titles, personal picks and similar titles, read from the trending
//! table and the current recommendation generation and filtered by the caller's
//! region at read time. The `recommendations` tag of the OpenAPI document.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{list_limit, ApiPath, ApiQuery, Caller, Client};
use super::views::{ContentSummary, ErrorBody, ViewCtx};
use crate::history::trending;
use crate::playback::{availability, valid_region};
use crate::recommend::{current_generation, current_list, item_subject, user_subject, Recommended};
use crate::state::AppState;

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
        let Some(c) = s.hot.listed(&s.db, &t.content_id).await? else {
            continue;
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

/// The titles of a stored list (personal picks, similar titles) that are still
/// there and may be watched in the caller's region now, best first, as `source`
/// items with the title that led to each (a pick's reason); their ids are added to
/// `seen`.
async fn watchable(
    ctx: &ViewCtx<'_>,
    list: Vec<Recommended>,
    source: &'static str,
    seen: &mut Vec<String>,
) -> Result<Vec<ScoredItem>, ApiError> {
    let s = ctx.state;
    let mut items = Vec::new();
    for r in list {
        let Some(c) = s.hot.listed(&s.db, &r.content_id).await? else {
            continue;
        };
        if !availability(&c.rights, ctx.region, ctx.now_ms).available {
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
            source,
            because,
        });
    }
    Ok(items)
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
    let limit = list_limit(p.limit)?;
    let region = match p.region.map(|r| r.trim().to_ascii_lowercase()) {
        Some(r) if r.is_empty() => None,
        Some(r) if valid_region(&r) => Some(r),
        Some(_) => return Err(ApiError::bad_query("region must be 1–32 of a-z 0-9 _ -")),
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
    let limit = list_limit(p.limit)?;
    let now = s.now_ms();
    let region = client.region.as_deref();
    let ctx = ViewCtx {
        state: &s,
        region,
        now_ms: now,
    };
    let generation = current_generation(&s.db).await?;
    let picks = current_list(&s.db, &user_subject(&user.user_id), limit).await?;
    let mut seen: Vec<String> = Vec::new();
    let mut items = watchable(&ctx, picks, "personal", &mut seen).await?;
    if (items.len() as i64) < limit {
        // Trending, minus what they have watched or were just offered.
        let mut skip = seen;
        skip.extend(
            s.db.whole_watch_history(&user.user_id)
                .await?
                .into_iter()
                .filter(|(_, st)| st.played || st.resume_ms.is_some())
                .map(|(c, _)| c),
        );
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
    let limit = list_limit(p.limit)?;
    let c = s.hot.title(&s.db, &id).await?;
    let now = s.now_ms();
    let region = client.region.as_deref();
    let ctx = ViewCtx {
        state: &s,
        region,
        now_ms: now,
    };
    let generation = current_generation(&s.db).await?;
    let mut seen = vec![c.id.clone()];
    let list = current_list(&s.db, &item_subject(&c.id), limit).await?;
    let mut items = watchable(&ctx, list, "similar", &mut seen).await?;
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
