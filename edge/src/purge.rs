//! `POST /_keyframe/purge` (an exact URL or a prefix, hard or soft), and the
//! invalidation of a URL's stored variants by unsafe methods (RFC 9111 §4.4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::request::Parts;
use http::{header, HeaderValue, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use keyframe_core::secret::secrets_equal;
use keyframe_core::ErrorCode;
use keyframe_http::http_server::{full, json_error, Body};
use serde::Deserialize;

use crate::entry::Entry;
use crate::policy::{self, base_of};
use crate::server::{cache_key, Server};

impl Server {
    pub(crate) async fn purge(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(admin) = &self.inner.config.admin_token else {
            return json_error(
                ErrorCode::Forbidden,
                "purge is not enabled (no admin token configured)",
            );
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !secrets_equal(presented, admin) {
            return json_error(ErrorCode::Forbidden, "a valid admin token is required");
        }
        let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json_error(ErrorCode::PayloadTooLarge, "purge request body too large")
            }
        };
        let p: PurgeRequest = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return json_error(ErrorCode::MalformedJson, &format!("purge request: {e}")),
        };
        let target = match (&p.url, &p.prefix) {
            (Some(u), None) => PurgeTarget::Exact(normalise_purge_target(u)),
            (None, Some(pfx)) => PurgeTarget::Prefix(normalise_purge_target(pfx)),
            _ => {
                return json_error(
                    ErrorCode::BadRequest,
                    "give exactly one of \"url\" or \"prefix\"",
                )
            }
        };
        let n = self.purge_matching(&target, p.soft);
        let body = serde_json::json!({ "purged": n, "soft": p.soft }).to_string();
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }

    pub(crate) fn purge_matching(&self, target: &PurgeTarget, soft: bool) -> usize {
        let matching: Vec<(String, Arc<Entry>)> = match target {
            // One URL: its variants, from the index.
            PurgeTarget::Exact(key) => self
                .inner
                .variants
                .of(key)
                .into_iter()
                .filter_map(|k| {
                    let e = self.inner.entries.get(&k)?;
                    Some((k, e))
                })
                .collect(),
            PurgeTarget::Prefix(_) => self
                .inner
                .entries
                .iter()
                .filter(|(k, _)| target.matches(base_of(k)))
                .map(|(k, e)| ((*k).clone(), e))
                .collect(),
        };
        for (k, e) in &matching {
            if soft {
                e.purged.store(true, Ordering::Relaxed);
            } else {
                self.inner.entries.invalidate(k);
                self.drop_generation(e.generation);
            }
        }
        if !soft {
            target.invalidate_in(&self.inner.vary);
            // A URL marked pass is looked at afresh too.
            target.invalidate_in(&self.inner.pass_marks);
        }
        matching.len()
    }

    /// Drops every stored variant of the URL `key`, in time proportional to
    /// their number (the index of variants, not a scan of the entries).
    pub(crate) fn invalidate_key(&self, key: &str) {
        for k in self.inner.variants.take(key) {
            if let Some(e) = self.inner.entries.remove(&k) {
                self.drop_generation(e.generation);
            }
        }
    }

    /// What a request other than GET or HEAD may invalidate once answered, noted
    /// before it goes upstream.
    pub(crate) fn target_of(&self, parts: &Parts) -> Target {
        let scheme = match parts.uri.scheme_str() {
            Some(s) => s,
            None if self.inner.config.tls_cert.is_some() => "https",
            None => "http",
        };
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                let h = parts.headers.get(header::HOST)?.to_str().ok()?;
                Some(h.to_string())
            });
        let key = cache_key(&parts.uri);
        let url = host.and_then(|h| url::Url::parse(&format!("{scheme}://{h}{key}")).ok());
        Target {
            method: parts.method.clone(),
            key,
            url,
        }
    }

    /// Invalidates what a non-error answer to an unsafe method invalidates (RFC
    /// 9111 §4.4): every stored variant of the target URI and of the same-origin
    /// URIs in `Location` and `Content-Location`. Safe methods (OPTIONS, TRACE)
    /// and error answers invalidate nothing.
    pub(crate) fn invalidate_after(&self, target: &Target, resp: &Response<Body>) {
        if !policy::invalidates(&target.method, resp.status()) {
            return;
        }
        self.invalidate_key(&target.key);
        if let Some(url) = &target.url {
            for pq in policy::also_invalidated(url, resp.headers()) {
                if let Ok(uri) = pq.parse::<Uri>() {
                    self.invalidate_key(&cache_key(&uri));
                }
            }
        }
    }
}

/// The target of a request that may invalidate: its method, cache key, and
/// absolute URL (when its host is known), against which `Location` and
/// `Content-Location` resolve.
pub(crate) struct Target {
    method: Method,
    key: String,
    url: Option<url::Url>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
    #[serde(default)]
    soft: bool,
}

pub(crate) enum PurgeTarget {
    Exact(String),
    Prefix(String),
}

impl PurgeTarget {
    pub(crate) fn matches(&self, key: &str) -> bool {
        match self {
            PurgeTarget::Exact(k) => key == k,
            PurgeTarget::Prefix(p) => key.starts_with(p.as_str()),
        }
    }

    /// Drops the entries of a cache keyed by URL that this target matches.
    pub(crate) fn invalidate_in<V>(&self, cache: &moka::sync::Cache<String, V>)
    where
        V: Clone + Send + Sync + 'static,
    {
        let keys: Vec<String> = cache
            .iter()
            .filter(|(k, _)| self.matches(k))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            cache.invalidate(&k);
        }
    }
}

/// A purge target as a cache key: a full URL or a path, token stripped.
pub(crate) fn normalise_purge_target(s: &str) -> String {
    match s.parse::<Uri>() {
        Ok(u) if u.path_and_query().is_some() => cache_key(&u),
        _ => s.to_string(),
    }
}
