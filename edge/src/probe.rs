//! `keyframe healthcheck`: one GET of a server's health endpoint, for container
//! health checks where the image has no shell and no curl (distroless).

use std::path::Path;
use std::time::Duration;

use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::upstream::upstream_connector;

/// The URL a `healthcheck` target names: a whole `http(s)://` URL as given, else
/// `PORT` or `HOST:PORT` for `http://HOST:PORT/_keyframe/healthz` (host 127.0.0.1).
pub fn health_url(target: &str) -> Result<Uri, String> {
    let t = target.trim();
    let url = if t.contains("://") {
        t.to_string()
    } else if t.parse::<u16>().is_ok() {
        format!("http://127.0.0.1:{t}/_keyframe/healthz")
    } else {
        format!("http://{t}/_keyframe/healthz")
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("not a URL, HOST:PORT or port: {target:?}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(format!("not an http:// or https:// URL: {target:?}"));
    }
    Ok(uri)
}

/// GETs `url` once within `timeout` and reads the body. `Ok(status)` for a 2xx
/// answer; otherwise one line saying what went wrong.
pub async fn probe(url: &Uri, ca: Option<&Path>, timeout: Duration) -> Result<u16, String> {
    let https = url.scheme_str() == Some("https");
    let connector = upstream_connector(ca, https, timeout).map_err(|e| e.to_string())?;
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::get(url.clone())
        .header(http::header::USER_AGENT, "keyframe-healthcheck")
        .body(Empty::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("{url}: {}", keyframe_core::error_chain(&e)))?;
        let status = resp.status();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: body: {e}"))?;
        Ok::<_, String>(status)
    };
    let status = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))??;
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("{url}: unhealthy, answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_health_urls() {
        let u = |t: &str| health_url(t).map(|u| u.to_string());
        assert_eq!(
            u("8081").as_deref(),
            Ok("http://127.0.0.1:8081/_keyframe/healthz")
        );
        assert_eq!(
            u("edge.internal:8081").as_deref(),
            Ok("http://edge.internal:8081/_keyframe/healthz")
        );
        assert_eq!(
            u("https://10.0.0.1:8443/_keyframe/healthz").as_deref(),
            Ok("https://10.0.0.1:8443/_keyframe/healthz")
        );
        assert!(u("ftp://x/").is_err());
        assert!(u("not a url").is_err());
        assert!(u("").is_err());
    }
}
