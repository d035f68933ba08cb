//! The web page at `/`: plain HTML, CSS and JavaScript from `catalog/web/`, built
//! into the binary (no build step), talking to the JSON API; and the player
//! library it streams adaptively with, hls.js, vendored at the version
//! `catalog/web/package-lock.json` pins (`web/vendor/`, checked by hash below).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/app.css");
/// hls.js's minified build, as published on npm (see `web/vendor/SHA256SUMS`).
const HLS_JS: &str = include_str!("../web/vendor/hls.min.js");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate on each load so a new build's page is picked up.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `/`: the page.
pub async fn index() -> Response {
    let mut r = page("text/html; charset=utf-8", INDEX);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src * data: blob:; media-src * blob:; \
             connect-src 'self' *; style-src 'self'; script-src 'self'; \
             worker-src 'self' blob:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    r
}

/// `/app.js`: the page's script.
pub async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// `/app.css`: the page's styles.
pub async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

/// `/vendor/hls.min.js`: the player library (MSE playback of HLS).
pub async fn hls_js() -> Response {
    page("text/javascript; charset=utf-8", HLS_JS)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The vendored file is the one `SHA256SUMS` names, of the version
    /// `package.json` and `package-lock.json` pin (`tests/browser.rs` also compares
    /// it with the file `npm ci` installs from the lockfile, when CI has one).
    #[test]
    fn vendored_hls_js_is_the_pinned_release() {
        let sums = include_str!("../web/vendor/SHA256SUMS");
        let want = sums
            .lines()
            .find_map(|l| l.strip_suffix("  hls.min.js"))
            .expect("a SHA256SUMS line for hls.min.js");
        assert_eq!(hex::encode(Sha256::digest(super::HLS_JS.as_bytes())), want);
        let pkg: serde_json::Value =
            serde_json::from_str(include_str!("../web/package.json")).expect("package.json");
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../web/package-lock.json")).expect("lockfile");
        let pinned = pkg["dependencies"]["hls.js"]
            .as_str()
            .expect("hls.js pinned");
        assert!(
            pinned.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{pinned} is not an exact version"
        );
        assert_eq!(lock["packages"]["node_modules/hls.js"]["version"], pinned);
        assert!(
            super::HLS_JS.contains(&format!("\"{pinned}\"")),
            "the file is not hls.js {pinned}"
        );
    }
}
