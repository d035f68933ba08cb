//! The JSON API under `/api`. Every route is declared with `#[utoipa::path]` and
//! mounted through utoipa-axum's `routes!`, so the OpenAPI document and the router
//! are made from the same declarations and cannot drift apart.

pub mod accounts;
pub mod admin;
pub mod content;
pub mod error;
pub mod extract;
pub mod history;
pub mod recommendations;
pub mod views;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyframe catalog API",
        description = "Content, accounts and sessions, rights per region and playback URLs. \
                       Times are Unix milliseconds. Errors are `{error, code}` JSON.",
    ),
    modifiers(&Security, &ErrorCodes),
    components(schemas(views::ErrorBody)),
    tags(
        (name = "content", description = "Browse, search and play"),
        (name = "accounts", description = "Users and sessions"),
        (name = "admin", description = "Metadata, rights and uploads (admin token)"),
        (name = "history", description = "Watch events, resume points, continue watching, export and deletes"),
        (name = "recommendations", description = "Trending, personal picks and similar titles"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// Lists every error code (`keyframe_core::ErrorCode`) as the `ErrorCode` schema,
/// which `ErrorBody::code` refers to.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(
            error::ERROR_CODE_SCHEMA.to_string(),
            error::error_code_schema().into(),
        );
    }
}

/// Declares how callers authenticate: a session (cookie or bearer) or the admin token.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                extract::SESSION_COOKIE,
                "The session cookie POST /api/sessions sets. A request that changes \
                 something (not GET/HEAD/OPTIONS) with it must come from the catalog's own \
                 page (Sec-Fetch-Site: same-origin, or an Origin naming the Host), or it is \
                 refused with 403 cross_site_request.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/sessions, or the admin token",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every API route with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(content::list_content))
        .routes(routes!(content::get_content))
        .routes(routes!(content::play))
        .routes(routes!(content::categories))
        .routes(routes!(accounts::create_user))
        .routes(routes!(accounts::create_session, accounts::delete_session))
        .routes(routes!(
            accounts::get_me,
            accounts::patch_me,
            accounts::delete_me
        ))
        .routes(routes!(accounts::put_avatar))
        .routes(routes!(admin::patch_content))
        .routes(routes!(admin::put_rights))
        .routes(routes!(admin::check_ingest, admin::ingest))
        .routes(routes!(
            history::post_history,
            history::get_history,
            history::delete_history
        ))
        .routes(routes!(history::continue_watching))
        .routes(routes!(history::hide_continue))
        .routes(routes!(history::export_history))
        .routes(routes!(recommendations::get_trending))
        .routes(routes!(recommendations::get_recommendations))
        .routes(routes!(recommendations::similar))
        .routes(routes!(openapi_document))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
async fn openapi_document(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi_json(),
    )
        .into_response()
}
