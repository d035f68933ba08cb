//! The `code` of every JSON error body `{"error", "code"}` Keyframe's servers send,
//! each with its HTTP status: one list, so two servers cannot drift into two
//! names for one refusal (ARCHITECTURE.md, "Error codes").

use std::fmt;

use http::StatusCode;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident;)+) => {
        /// A machine-readable error code and the status it is sent with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The `code` string of the JSON body.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status a response with this code carries.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }
        }
    };
}

error_codes! {
    // ---- Requests any server may refuse.
    /// A request the server cannot parse (a malformed header or field).
    BadRequest = "bad_request", BAD_REQUEST;
    /// A body that is not valid JSON (was `bad_json` at the edge's purge).
    MalformedJson = "malformed_json", BAD_REQUEST;
    /// A body that is not the expected shape (a field missing or of the wrong type).
    BadBody = "bad_body", BAD_REQUEST;
    /// A query string the endpoint does not accept.
    InvalidQuery = "invalid_query", BAD_REQUEST;
    /// A path parameter the endpoint does not accept.
    InvalidPath = "invalid_path", BAD_REQUEST;
    /// An object key outside the key contract (`key::parse_key`).
    BadKey = "bad_key", BAD_REQUEST;
    /// No such path, or no such object.
    NotFound = "not_found", NOT_FOUND;
    /// A method the path does not serve (with `Allow`).
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    /// A body larger than the endpoint takes (was `too_large` at the edge's purge).
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE;
    /// A body that is not JSON where JSON is required.
    JsonRequired = "json_required", UNSUPPORTED_MEDIA_TYPE;
    /// A well-formed body whose values are refused.
    InvalidBody = "invalid_body", UNPROCESSABLE_ENTITY;
    /// One field of a well-formed body is refused (the message names it).
    InvalidField = "invalid_field", UNPROCESSABLE_ENTITY;
    /// Too many requests from one client; `Retry-After` says when to come back.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    /// A failure of the server's own; details are logged, not sent.
    Internal = "internal", INTERNAL_SERVER_ERROR;

    // ---- Bytes: origin and edge.
    /// A precondition (`If-Match`, `If-Unmodified-Since`) is false (RFC 9110 §13.1).
    PreconditionFailed = "precondition_failed", PRECONDITION_FAILED;
    /// No requested range overlaps the representation (RFC 9110 §15.5.17).
    RangeNotSatisfiable = "range_not_satisfiable", RANGE_NOT_SATISFIABLE;
    /// Object storage failed or is unreachable.
    StorageUnavailable = "storage_unavailable", SERVICE_UNAVAILABLE;
    /// The edge's upstreams failed or are out of rotation.
    UpstreamUnavailable = "upstream_unavailable", BAD_GATEWAY;
    /// No upstream answered in time.
    UpstreamTimeout = "upstream_timeout", GATEWAY_TIMEOUT;
    /// `Cache-Control: only-if-cached` and nothing stored (RFC 9111 §5.2.1.7).
    NotCached = "not_cached", GATEWAY_TIMEOUT;
    /// A credential (the edge's purge token) is missing or wrong, or the action is off.
    Forbidden = "forbidden", FORBIDDEN;
    /// A CORS preflight from a page origin the allowed-origins list does not name.
    CorsOrigin = "cors_origin", FORBIDDEN;
    /// A manifest whose body failed while it was read for token propagation.
    ManifestUnreadable = "manifest_unreadable", BAD_GATEWAY;

    // ---- Playback tokens (`token`).
    /// No playback token where one is required.
    TokenMissing = "token_missing", FORBIDDEN;
    /// The playback token has expired.
    TokenExpired = "token_expired", FORBIDDEN;
    /// The playback token is malformed, forged, not yet valid or for another path.
    TokenInvalid = "token_invalid", FORBIDDEN;
    /// The playback token names regions and the client is in none of them.
    Region = "region", FORBIDDEN;

    // ---- The catalog.
    /// Not signed in.
    Unauthenticated = "unauthenticated", UNAUTHORIZED;
    /// The session cookie names no live session.
    InvalidSession = "invalid_session", UNAUTHORIZED;
    /// The session has expired.
    SessionExpired = "session_expired", UNAUTHORIZED;
    /// An administrator's token is required.
    AdminRequired = "admin_required", UNAUTHORIZED;
    /// Wrong username or password.
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED;
    /// No admin token is configured, so admin endpoints are off.
    AdminDisabled = "admin_disabled", FORBIDDEN;
    /// The account is disabled.
    AccountDisabled = "account_disabled", FORBIDDEN;
    /// A cookie-authenticated change that did not come from the catalog's page.
    CrossSiteRequest = "cross_site_request", FORBIDDEN;
    /// Rights forbid the title in the caller's region now (RFC 7725).
    UnavailableInRegion = "unavailable_in_region", UNAVAILABLE_FOR_LEGAL_REASONS;
    /// No such title.
    ContentNotFound = "content_not_found", NOT_FOUND;
    /// The title has no playable media.
    NoMedia = "no_media", NOT_FOUND;
    /// The title is not in the viewer's history.
    NotInHistory = "not_in_history", NOT_FOUND;
    /// Something with that identity exists already.
    AlreadyExists = "already_exists", CONFLICT;
    /// The username is taken.
    UsernameTaken = "username_taken", CONFLICT;
    /// A watch event names a title that does not exist.
    UnknownContent = "unknown_content", UNPROCESSABLE_ENTITY;
    /// More watch events in one request than allowed.
    TooManyEvents = "too_many_events", UNPROCESSABLE_ENTITY;
    /// An upload that is not media of a kind the endpoint takes.
    UnsupportedMedia = "unsupported_media", UNPROCESSABLE_ENTITY;
    /// The database is unreachable.
    DatabaseUnavailable = "database_unavailable", SERVICE_UNAVAILABLE;
    /// Uploads are not available (no ingest pipeline, or it failed).
    IngestUnavailable = "ingest_unavailable", SERVICE_UNAVAILABLE;
    /// The history intake queue is full; `Retry-After` says when to come back.
    HistoryBusy = "history_busy", SERVICE_UNAVAILABLE;
    /// The watch-event stream (`--events`, NATS JetStream) did not acknowledge the
    /// events in time; nothing was accepted, `Retry-After` says when to come back.
    EventsUnavailable = "events_unavailable", SERVICE_UNAVAILABLE;
}

impl ErrorCode {
    /// The code whose string is `s`, if any (clients reading an error body).
    pub fn from_code(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code equals its string, so tests and clients can compare with the text of
/// a body: `assert_eq!(e.code(), "token_expired")`.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(ErrorCode::from_code(s), Some(c));
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "{s}"
            );
        }
        assert_eq!(ErrorCode::from_code("bad_json"), None);
        assert_eq!(ErrorCode::from_code("too_large"), None);
    }

    #[test]
    fn the_renamed_codes() {
        assert_eq!(ErrorCode::MalformedJson.as_str(), "malformed_json");
        assert_eq!(ErrorCode::MalformedJson.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::PayloadTooLarge.as_str(), "payload_too_large");
        assert_eq!(
            ErrorCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
