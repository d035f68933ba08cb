//! Sending a request upstream with failover in rendezvous order.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use keyframe_http::http_server::empty;

use super::{Failure, Upstream};
use crate::fetch::Outcome;
use crate::server::Server;

impl Server {
    /// Sends a request upstream, trying upstreams in rendezvous order on connect
    /// errors, timeouts and 5xx answers.
    pub(crate) async fn send(
        &self,
        method: Method,
        path_q: &str,
        headers: HeaderMap,
        key: &str,
    ) -> Result<(Response<Incoming>, Arc<Upstream>), Outcome> {
        let order = self.inner.upstreams.order(key, SystemTime::now());
        let n = order.len();
        let mut last = Outcome::Failed {
            status: StatusCode::BAD_GATEWAY,
            why: "no upstream".into(),
        };
        for (i, up) in order.into_iter().enumerate() {
            let uri = match up.uri_for(path_q) {
                Ok(u) => u,
                Err(e) => {
                    return Err(Outcome::Failed {
                        status: StatusCode::BAD_REQUEST,
                        why: e.to_string(),
                    })
                }
            };
            let mut req = Request::new(empty());
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers.clone();
            let started = Instant::now();
            self.inner.metrics.upstream_requests.inc();
            match tokio::time::timeout(self.inner.upstream_timeout, self.inner.client.request(req))
                .await
            {
                Ok(Ok(resp)) => {
                    self.inner
                        .metrics
                        .upstream_latency
                        .observe(started.elapsed().as_secs_f64());
                    if resp.status().is_server_error() {
                        self.upstream_failed(&up, Failure::Status(resp.status()));
                        if i + 1 < n {
                            continue;
                        }
                    } else {
                        self.upstream_succeeded(&up);
                    }
                    return Ok((resp, up));
                }
                Ok(Err(e)) => {
                    tracing::debug!(upstream = %up.name, error = %e, "upstream request failed");
                    self.upstream_failed(&up, Failure::Unreachable(error_chain(&e)));
                    last = Outcome::Failed {
                        status: StatusCode::BAD_GATEWAY,
                        why: format!("{}: {e}", up.name),
                    };
                }
                Err(_) => {
                    self.upstream_failed(&up, Failure::Unreachable("timed out".into()));
                    last = Outcome::Failed {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        why: format!("{}: timed out", up.name),
                    };
                }
            }
        }
        Err(last)
    }

    /// Records a failed request to `up` (and its leaving rotation, if it does).
    pub(crate) fn upstream_failed(&self, up: &Upstream, why: Failure) {
        self.inner.metrics.upstream_errors.inc();
        if up.failed_because(SystemTime::now(), why) {
            self.report_rotation(up);
        }
    }

    /// Records a request `up` answered (and its coming back, if it does).
    pub(crate) fn upstream_succeeded(&self, up: &Upstream) {
        if up.succeeded() {
            self.report_rotation(up);
        }
    }
}

/// An error and its sources, e.g. "client error (Connect): tcp connect error:
/// Connection refused (os error 111)".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
