//! The API's error: a status and a JSON body `{"error", "code"}`, and how domain
//! errors (database, uploads, title lookups) become one. Domain code returns its
//! own errors; only here are they turned into HTTP.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::cache::TitleError;
use crate::db::DbError;
use crate::uploads::UploadError;

/// An API error: a status and a JSON body `{"error", "code"}`, with optional extra
/// headers (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with one more response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 500 whose detail is logged, not sent.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 422 for a request field that does not pass validation.
    pub fn invalid(field: &str, why: &str) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {why}"),
        )
    }

    /// 400 for a query parameter out of range or a bad combination of them.
    pub fn bad_query(message: &str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found"),
            DbError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", "already exists")
            }
            DbError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            other => ApiError::internal("database error", other),
        }
    }
}

/// An upload the pipeline refused.
impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Unsupported(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_media", m)
            }
            UploadError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the upload is too large",
            ),
            UploadError::Body(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_body", m),
            UploadError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest_unavailable",
                "uploads are not available on this server",
            ),
            UploadError::Failed(m) => ApiError::internal("ingest failed", m),
        }
    }
}

/// A title named by the request's path: 404 `content_not_found` when there is none.
impl From<TitleError> for ApiError {
    fn from(e: TitleError) -> Self {
        match e {
            TitleError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "content_not_found",
                "no such content",
            ),
            TitleError::Db(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "error": self.message, "code": self.code })),
        )
            .into_response();
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
    }
}
