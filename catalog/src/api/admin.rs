//! Admin endpoints (`Authorization: Bearer <admin_token>`): metadata, rights, and
//! streamed uploads into the ingest pipeline.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{header_text, require_admin, ApiJson, ApiPath, ApiQuery, Caller, Client};
use super::views::{ContentDetail, ErrorBody, ViewCtx};
use crate::cache::{Change, TitleError};
use crate::meta::{ContentPatch, Right, ANY_REGION};
use crate::playback::valid_region;
use crate::state::AppState;
use crate::uploads::{ContentUpload, IngestedContent};

/// The kinds of title.
const KINDS: [&str; 4] = ["video", "audio", "image", "other"];

/// Changes to a title's metadata; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MetadataPatch {
    /// 1–200 characters.
    pub title: Option<String>,
    /// At most 5000 characters.
    pub description: Option<String>,
    /// `video`, `audio`, `image` or `other`.
    pub kind: Option<String>,
    /// Replaces the categories: at most 20, each 1–64 characters.
    pub categories: Option<Vec<String>>,
}

/// A title's rights, replacing the previous ones.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RightsBody {
    /// One entry per region (`*` = every region), at most 500.
    pub rights: Vec<Right>,
}

fn check_category(c: &str) -> Result<String, ApiError> {
    let c = c.trim();
    if c.is_empty() || c.chars().count() > 64 || c.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "categories",
            "each must be 1–64 characters without control characters",
        ));
    }
    Ok(c.to_string())
}

fn checked_patch(p: MetadataPatch) -> Result<ContentPatch, ApiError> {
    let title = p.title.map(|t| t.trim().to_string());
    if let Some(t) = &title {
        if t.is_empty() || t.chars().count() > 200 {
            return Err(ApiError::invalid("title", "must be 1–200 characters"));
        }
    }
    if p.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 5000)
    {
        return Err(ApiError::invalid(
            "description",
            "must be at most 5000 characters",
        ));
    }
    if let Some(k) = &p.kind {
        if !KINDS.contains(&k.as_str()) {
            return Err(ApiError::invalid(
                "kind",
                "must be video, audio, image or other",
            ));
        }
    }
    let categories = match p.categories {
        Some(cs) if cs.len() > 20 => {
            return Err(ApiError::invalid("categories", "at most 20"));
        }
        Some(cs) => Some(
            cs.iter()
                .map(|c| check_category(c))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    Ok(ContentPatch {
        title,
        description: p.description,
        kind: p.kind,
        categories,
    })
}

fn checked_rights(rights: Vec<Right>) -> Result<Vec<Right>, ApiError> {
    if rights.len() > 500 {
        return Err(ApiError::invalid("rights", "at most 500 entries"));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(rights.len());
    for mut r in rights {
        r.region = r.region.trim().to_ascii_lowercase();
        if r.region != ANY_REGION && !valid_region(&r.region) {
            return Err(ApiError::invalid(
                "rights.region",
                "must be '*' or 1–32 characters of a-z, 0-9, '_', '-'",
            ));
        }
        if let (Some(f), Some(u)) = (r.available_from, r.available_until) {
            if f >= u {
                return Err(ApiError::invalid(
                    "rights.available_until",
                    "must be after available_from",
                ));
            }
        }
        if !seen.insert(r.region.clone()) {
            return Err(ApiError::invalid(
                "rights.region",
                "each region at most once",
            ));
        }
        out.push(r);
    }
    Ok(out)
}

async fn admin_detail(s: &AppState, client: &Client, id: &str) -> Result<ContentDetail, ApiError> {
    let c = s.hot.title(&s.db, id).await?;
    let mut detail = ViewCtx {
        state: s,
        region: client.region.as_deref(),
        now_ms: s.now_ms(),
    }
    .detail(&c, true)?;
    detail.renditions = s.db.rendition_views(&c).await?;
    Ok(detail)
}

/// Edits a title's metadata.
#[utoipa::path(
    patch,
    path = "/api/admin/content/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Content id")),
    request_body = MetadataPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The title as changed (with its rights)", body = ContentDetail),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 403, description = "Admin endpoints are off", body = ErrorBody),
        (status = 404, description = "No such title", body = ErrorBody),
        (status = 422, description = "An invalid field", body = ErrorBody),
    )
)]
pub async fn patch_content(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MetadataPatch>,
) -> Result<Json<ContentDetail>, ApiError> {
    require_admin(&s, &caller)?;
    let patch = checked_patch(body)?;
    s.hot.title(&s.db, &id).await?;
    s.db.update_content(&id, &patch)
        .await
        .map_err(TitleError::from)?;
    s.changes.publish(Change::Content(id.clone()));
    Ok(Json(admin_detail(&s, &client, &id).await?))
}

/// Replaces a title's rights: where (region, `*` = everywhere) and when (Unix ms
/// window, open ends allowed) it may be watched.
#[utoipa::path(
    put,
    path = "/api/admin/content/{id}/rights",
    tag = "admin",
    params(("id" = String, Path, description = "Content id")),
    request_body = RightsBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The title with its new rights", body = ContentDetail),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such title", body = ErrorBody),
        (status = 422, description = "An invalid right", body = ErrorBody),
    )
)]
pub async fn put_rights(
    State(s): State<AppState>,
    caller: Caller,
    client: Client,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RightsBody>,
) -> Result<Json<ContentDetail>, ApiError> {
    require_admin(&s, &caller)?;
    let rights = checked_rights(body.rights)?;
    s.hot.title(&s.db, &id).await?;
    s.db.replace_rights(&id, &rights)
        .await
        .map_err(TitleError::from)?;
    s.changes.publish(Change::Content(id.clone()));
    Ok(Json(admin_detail(&s, &client, &id).await?))
}

/// What an upload is.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestParams {
    /// The file's name; its extension tells the media type.
    pub filename: String,
    /// The title; derived from the file name when absent.
    pub title: Option<String>,
    pub description: Option<String>,
    /// Comma-separated categories.
    pub categories: Option<String>,
    /// Comma-separated regions where it may be watched (`*` = everywhere); absent =
    /// ingest's default.
    pub regions: Option<String>,
    /// Start of the availability window, Unix milliseconds (needs `regions`, or
    /// applies everywhere).
    pub available_from: Option<i64>,
    /// End of the availability window, Unix milliseconds.
    pub available_until: Option<i64>,
    /// The adaptive-streaming ladder for audio and video: short sides of the video
    /// rungs (`1080,720,480,360,240`, the default) or `none` (progressive only).
    pub ladder: Option<String>,
}

fn list(v: Option<&str>) -> Vec<String> {
    v.map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// The upload an ingest request describes, after its token and parameters are checked.
fn checked_upload(
    s: &AppState,
    caller: &Caller,
    p: IngestParams,
    headers: &HeaderMap,
) -> Result<ContentUpload, ApiError> {
    require_admin(s, caller)?;
    let filename = p.filename.trim();
    if filename.is_empty()
        || filename.len() > 255
        || filename.contains(['/', '\\'])
        || filename.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "filename",
            "must be a file name of 1–255 bytes without '/' or '\\'",
        ));
    }
    let patch = checked_patch(MetadataPatch {
        title: p.title,
        description: p.description,
        kind: None,
        categories: Some(list(p.categories.as_deref())),
    })?;
    let mut regions = list(p.regions.as_deref());
    if regions.is_empty() && (p.available_from.is_some() || p.available_until.is_some()) {
        regions.push(ANY_REGION.to_string());
    }
    let rights = checked_rights(
        regions
            .into_iter()
            .map(|region| Right {
                region,
                available_from: p.available_from,
                available_until: p.available_until,
            })
            .collect(),
    )?;
    Ok(ContentUpload {
        filename: filename.to_string(),
        title: patch.title,
        description: patch.description,
        categories: patch.categories.unwrap_or_default(),
        rights,
        content_type: header_text(headers, "content-type").map(String::from),
        size_hint: header_text(headers, "content-length").and_then(|v| v.parse().ok()),
        ladder: match p.ladder.as_deref() {
            Some(l) => {
                crate::ladder::parse_rungs(l).map_err(|e| ApiError::invalid("ladder", &e))?
            }
            None => crate::ladder::DEFAULT_RUNGS.to_vec(),
        },
    })
}

/// Checks an upload's token and parameters, so that a client can learn of a refusal
/// before it streams gigabytes: `keyframe ingest --server` asks this first.
#[utoipa::path(
    get,
    path = "/api/admin/ingest",
    tag = "admin",
    params(IngestParams),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The same POST would be accepted for ingest"),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 422, description = "An invalid parameter", body = ErrorBody),
    )
)]
pub async fn check_ingest(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<IngestParams>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    checked_upload(&s, &caller, p, &headers)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uploads a media file into the ingest pipeline, streamed (any size, bounded
/// memory), and commits its title.
#[utoipa::path(
    post,
    path = "/api/admin/ingest",
    tag = "admin",
    params(IngestParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and committed (the shape of `keyframe ingest --json`)", body = IngestedContent),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 413, description = "Too large for the pipeline", body = ErrorBody),
        (status = 422, description = "An invalid parameter, or media the pipeline refuses", body = ErrorBody),
        (status = 503, description = "No ingest pipeline on this server", body = ErrorBody),
    )
)]
pub async fn ingest(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let upload = checked_upload(&s, &caller, p, &headers)?;
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let done = s
        .uploads
        .ingest_content(upload, Box::pin(stream))
        .await
        .map_err(ApiError::from)?;
    s.changes.publish(Change::Content(done.content_id.clone()));
    tracing::info!(content = %done.content_id, key = %done.key, size = done.size, "content ingested over the API");
    Ok((StatusCode::CREATED, Json(done)).into_response())
}
