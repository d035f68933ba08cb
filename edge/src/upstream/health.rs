//! Active health checks: every upstream probed every `health_check_secs`, taken
//! out of rotation while it fails.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Request};
use keyframe_origin::http_server::empty;

use super::Upstream;
use crate::metrics::UpstreamLabels;
use crate::server::Server;

impl Server {
    /// Probes every upstream every `health_check_secs`, concurrently, and takes
    /// the ones that do not answer (or answer 5xx) out of rotation until they do.
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
        let path = &self.inner.config.health_check_path;
        let alive = match up.uri_for(if path.starts_with('/') { path } else { "/" }) {
            Ok(uri) => {
                let mut req = Request::new(empty());
                *req.method_mut() = Method::GET;
                *req.uri_mut() = uri;
                let timeout = self
                    .inner
                    .upstream_timeout
                    .min(every.max(Duration::from_secs(1)));
                match tokio::time::timeout(timeout, self.inner.client.request(req)).await {
                    Ok(Ok(resp)) => !resp.status().is_server_error(),
                    Ok(Err(e)) => {
                        tracing::debug!(upstream = %up.name, error = %e, "health check failed");
                        false
                    }
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        let was = up.available(SystemTime::now());
        if alive {
            up.succeeded();
        } else {
            up.check_failed(SystemTime::now(), every * 2);
        }
        if was != alive {
            if alive {
                tracing::info!(upstream = %up.name, "upstream healthy again");
            } else {
                tracing::warn!(upstream = %up.name, "upstream failed its health check; out of rotation");
            }
        }
        self.inner
            .metrics
            .upstream_healthy
            .get_or_create(&UpstreamLabels {
                upstream: up.name.clone(),
            })
            .set(i64::from(alive));
    }
}
