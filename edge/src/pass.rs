//! Pass-through: a request forwarded upstream as is (but for hop-by-hop headers,
//! the token and `Via`), its answer streamed back and not stored.

use std::net::SocketAddr;
use std::time::SystemTime;

use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use keyframe_origin::http_server::{json_error, Body, BoxError};

use crate::fetch::Outcome;
use crate::policy::{self, base_of, set_cache_status, upstream_request_headers, CacheStatus, Fwd};
use crate::server::{cache_key, Server};

impl Server {
    /// Forwards a request upstream as is (but for hop-by-hop headers and the
    /// token) and streams the answer back.
    pub(crate) async fn pass(
        &self,
        parts: Parts,
        body: Incoming,
        peer: SocketAddr,
        key: &str,
        fwd: Fwd,
    ) -> Response<Body> {
        self.count("pass");
        let mut headers = upstream_request_headers(&parts.headers);
        append_forwarded_for(&mut headers, peer);
        let path_q = upstream_path(&parts.uri);
        let has_body = !(parts.method == Method::GET || parts.method == Method::HEAD)
            || parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let result = if has_body {
            // A body can be sent once: one upstream, no failover.
            let up = self.inner.upstreams.order(key, SystemTime::now()).remove(0);
            match up.uri_for(&path_q) {
                Ok(uri) => {
                    let mut req =
                        Request::new(body.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                    *req.method_mut() = parts.method.clone();
                    *req.uri_mut() = uri;
                    *req.headers_mut() = headers;
                    self.inner.metrics.upstream_requests.inc();
                    match tokio::time::timeout(
                        self.inner.upstream_timeout,
                        self.inner.client.request(req),
                    )
                    .await
                    {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(e)) => Err(Outcome::Failed {
                            status: StatusCode::BAD_GATEWAY,
                            why: e.to_string(),
                        }),
                        Err(_) => Err(Outcome::Failed {
                            status: StatusCode::GATEWAY_TIMEOUT,
                            why: "timed out".into(),
                        }),
                    }
                }
                Err(e) => Err(Outcome::Failed {
                    status: StatusCode::BAD_REQUEST,
                    why: e.to_string(),
                }),
            }
        } else {
            self.send(parts.method.clone(), &path_q, headers, key)
                .await
                .map(|(r, _)| r)
        };
        match result {
            Ok(resp) => {
                let (mut rp, rb) = resp.into_parts();
                policy::strip_hop_by_hop(&mut rp.headers);
                let cs = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(rp.status.as_u16()),
                    ..CacheStatus::default()
                };
                set_cache_status(&mut rp.headers, cs.to_header_value(&self.inner.cache_name));
                let counter = self.inner.metrics.upstream_bytes.clone();
                let body = rb
                    .map_frame(move |f| {
                        if let Some(d) = f.data_ref() {
                            counter.inc_by(d.len() as u64);
                        }
                        f
                    })
                    .map_err(|e| Box::new(e) as BoxError)
                    .boxed_unsync();
                Response::from_parts(rp, body)
            }
            Err(Outcome::Failed { status, why }) => {
                tracing::warn!(key, why, "pass-through failed");
                let code = if status == StatusCode::GATEWAY_TIMEOUT {
                    "upstream_timeout"
                } else if status == StatusCode::BAD_REQUEST {
                    "bad_request"
                } else {
                    "upstream_unavailable"
                };
                json_error(status, code, "no upstream answered")
            }
            Err(_) => json_error(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "no upstream answered",
            ),
        }
    }
}

pub(crate) fn append_forwarded_for(h: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let v = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&v) {
        h.insert("x-forwarded-for", v);
    }
}

/// Path and query sent upstream: the token stripped.
pub(crate) fn upstream_path(uri: &Uri) -> String {
    cache_key(uri)
}

pub(crate) fn upstream_path_from_key(key: &str) -> String {
    base_of(key).to_string()
}
