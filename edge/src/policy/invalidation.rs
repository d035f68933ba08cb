//! Invalidation by unsafe methods (RFC 9111 §4.4).

use http::{Method, StatusCode};

/// Whether a response to `method` invalidates the stored responses of its target
/// (RFC 9111 §4.4: unsafe methods with a non-error status).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && (status.is_success() || status.is_redirection())
}

#[cfg(test)]
mod tests {
    use super::*;

    // §4.4.
    #[test]
    fn invalidation() {
        assert!(invalidates(&Method::POST, StatusCode::OK));
        assert!(invalidates(&Method::DELETE, StatusCode::MOVED_PERMANENTLY));
        assert!(!invalidates(
            &Method::POST,
            StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(!invalidates(&Method::GET, StatusCode::OK));
    }
}
