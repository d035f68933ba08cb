//! Active health checks: every upstream probed every `health_check_secs` at its
//! health path (`health_check_path`, or its own in `health_check_paths`). What a
//! probe's answer means is in [`super`]: any answer shows the server is up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Request, Uri};
use keyframe_http::http_server::empty;

use super::Upstream;
use crate::metrics::UpstreamLabels;
use crate::server::{ConfigError, Server};

impl Server {
    /// Probes every upstream every `health_check_secs`, concurrently.
    pub(crate) async fn health_checks(self) {
        let secs = self.inner.config.health_check_secs;
        if secs == 0 {
            return;
        }
        let every = Duration::from_secs(secs);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let probes = self
                .inner
                .upstreams
                .all()
                .iter()
                .map(|up| self.probe(up.clone(), every));
            futures::future::join_all(probes).await;
        }
    }

    pub(crate) async fn probe(&self, up: Arc<Upstream>, every: Duration) {
        let result = match up.uri_for(&up.health_path) {
            Ok(uri) => {
                let mut req = Request::new(empty());
                *req.method_mut() = Method::GET;
                *req.uri_mut() = uri;
                let timeout = self
                    .inner
                    .upstream_timeout
                    .min(every.max(Duration::from_secs(1)));
                match tokio::time::timeout(timeout, self.inner.client.request(req)).await {
                    Ok(Ok(resp)) => Ok(resp.status()),
                    Ok(Err(e)) => Err(super::send::error_chain(&e)),
                    Err(_) => Err(format!("no answer to the probe in {timeout:?}")),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        tracing::debug!(upstream = %up.name, path = up.health_path, ?result, "health check");
        let strict = self.inner.config.health_check_strict;
        up.checked(SystemTime::now(), every * 2, result, strict);
        self.report_rotation(&up);
    }

    /// Sets `keyframe_edge_upstream_healthy` for `up` to whether it is in rotation.
    pub(crate) fn report_rotation(&self, up: &Upstream) {
        self.inner
            .metrics
            .upstream_healthy
            .get_or_create(&UpstreamLabels {
                upstream: up.name.clone(),
            })
            .set(i64::from(up.in_rotation()));
    }
}

/// The health path of each upstream in `bases`, from `paths` (upstream
/// URL → path, the URLs written as in `upstream`/`parent`) over `default`.
pub(crate) fn health_paths(
    bases: &[Uri],
    paths: &BTreeMap<String, String>,
    default: &str,
) -> Result<Vec<String>, ConfigError> {
    let bad = |why: String| Err(ConfigError::HealthPath(why));
    let check = |p: &str| p.starts_with('/') && p.parse::<http::uri::PathAndQuery>().is_ok();
    if !check(default) {
        return bad(format!("health_check_path '{default}' is not a path"));
    }
    let mut out = vec![default.to_string(); bases.len()];
    for (url, path) in paths {
        if !check(path) {
            return bad(format!("'{path}' (for {url}) is not a path"));
        }
        let want = super::parse_upstream(url)
            .map_err(|_| ConfigError::HealthPath(format!("'{url}' is not an upstream URL")))?;
        let Some(i) = bases.iter().position(|u| *u == want) else {
            return bad(format!("'{url}' is not one of the upstreams"));
        };
        out[i] = path.clone();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_are_per_upstream_over_a_default() {
        let bases: Vec<Uri> = ["http://a:1", "http://b:2/prefix/"]
            .iter()
            .map(|s| super::super::parse_upstream(s).expect("uri"))
            .collect();
        let mut paths = BTreeMap::new();
        assert_eq!(
            health_paths(&bases, &paths, "/_keyframe/healthz").expect("ok"),
            vec!["/_keyframe/healthz", "/_keyframe/healthz"]
        );
        paths.insert(
            "http://b:2/prefix".to_string(),
            "/status?full=1".to_string(),
        );
        assert_eq!(
            health_paths(&bases, &paths, "/").expect("ok"),
            vec!["/", "/status?full=1"]
        );
        for (url, path, default) in [
            ("http://c:3", "/x", "/"),
            ("http://a:1", "x", "/"),
            ("not a url", "/x", "/"),
            ("http://a:1", "/x", "healthz"),
        ] {
            let mut p = BTreeMap::new();
            p.insert(url.to_string(), path.to_string());
            assert!(
                health_paths(&bases, &p, default).is_err(),
                "{url} {path} {default}"
            );
        }
    }
}
