//! The API's error: a JSON body `{"error", "code"}` whose code is an
//! [`ErrorCode`] (which fixes the status), and how domain errors (database,
//! uploads, title lookups) become one. Domain code returns its own errors; only
//! here are they turned into HTTP.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyframe_core::ErrorCode;

use crate::cache::TitleError;
use crate::db::DbError;
use crate::uploads::UploadError;

/// An API error: a status and a JSON body `{"error", "code"}`, with optional extra
/// headers (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this code, sent with the code's status, and this message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with another status than its code's. One endpoint keeps an
    /// older answer (`POST /api/history`: 403 `unavailable_in_region`).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same error with one more response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 500 whose detail is logged, not sent.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{what}");
        ApiError::new(ErrorCode::Internal, "internal error")
    }

    /// 422 for a request field that does not pass validation.
    pub fn invalid(field: &str, why: &str) -> Self {
        ApiError::new(ErrorCode::InvalidField, format!("{field}: {why}"))
    }

    /// 400 for a query parameter out of range or a bad combination of them.
    pub fn bad_query(message: &str) -> Self {
        ApiError::new(ErrorCode::InvalidQuery, message)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            DbError::AlreadyExists(_) => ApiError::new(ErrorCode::AlreadyExists, "already exists"),
            DbError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::new(
                    ErrorCode::DatabaseUnavailable,
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
            UploadError::Unsupported(m) => ApiError::new(ErrorCode::UnsupportedMedia, m),
            UploadError::TooLarge => {
                ApiError::new(ErrorCode::PayloadTooLarge, "the upload is too large")
            }
            UploadError::Body(m) => ApiError::new(ErrorCode::BadBody, m),
            UploadError::Unavailable => ApiError::new(
                ErrorCode::IngestUnavailable,
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
            TitleError::NotFound => ApiError::new(ErrorCode::ContentNotFound, "no such content"),
            TitleError::Db(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "error": self.message, "code": self.code.as_str() })),
        )
            .into_response();
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
    }
}

/// The name of the OpenAPI schema that lists the codes.
pub(crate) const ERROR_CODE_SCHEMA: &str = "ErrorCode";

/// The OpenAPI schema of an error body's `code`: every [`ErrorCode`], with the
/// status each is sent with in its description.
pub(crate) fn error_code_schema() -> utoipa::openapi::Object {
    let statuses: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| format!("`{}` {}", c.as_str(), c.status().as_u16()))
        .collect();
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
        .description(Some(format!(
            "A stable machine-readable error code (`keyframe_core::ErrorCode`), each \
             with the status it is sent with: {}. One exception: `POST /api/history` \
             answers `unavailable_in_region` with 403.",
            statuses.join(", ")
        )))
        .build()
}

/// A reference to [`error_code_schema`] (for `ErrorBody::code`).
pub(crate) fn error_code_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(ERROR_CODE_SCHEMA)
}
