//! Pass-through: a request forwarded upstream as is (but for hop-by-hop headers,
//! the token and `Via`), its answer streamed back and not stored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Buf;
use http::request::Parts;
use http::response;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use keyframe_core::ErrorCode;
use keyframe_http::conditional::{self, Precondition, Validators};
use keyframe_http::http_server::{empty, json_error, Body, BoxError};
use keyframe_http::range::{self, RangeDecision};
use prometheus_client::metrics::counter::Counter;

use crate::entry::parse_content_range;
use crate::fetch::{failure_code, Outcome};
use crate::metrics::Served;
use crate::policy::{self, base_of, pass_request_headers, set_cache_status, CacheStatus, Fwd};
use crate::respond::MAX_RANGES;
use crate::server::{cache_key, Server};

impl Server {
    /// Forwards a request upstream as is (but for hop-by-hop headers and the
    /// token: its `Range` and validators go too) and streams the answer back,
    /// fitted to the client's range if the origin answered another.
    pub(crate) async fn pass(
        &self,
        parts: Parts,
        body: Incoming,
        peer: SocketAddr,
        key: &str,
        fwd: Fwd,
    ) -> Response<Body> {
        self.count(Served::Pass);
        let mut headers = pass_request_headers(&parts.headers);
        append_forwarded_for(&mut headers, peer);
        keyframe_http::access::pass_on(&mut headers);
        let path_q = upstream_path(&parts.uri);
        let has_body = !(parts.method == Method::GET || parts.method == Method::HEAD)
            || parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let result = if has_body {
            // A body can be sent once: one upstream, no failover.
            let up = self.inner.upstreams.order(key, SystemTime::now()).remove(0);
            match up.uri_for(&path_q) {
                Ok(uri) => {
                    // A body the client got wrong (bad chunked encoding) fails the
                    // upstream request too: the client's mistake, not the origin's.
                    let bad_body = Arc::new(AtomicBool::new(false));
                    let flag = bad_body.clone();
                    let body = body
                        .map_err(move |e| {
                            flag.store(true, Ordering::Relaxed);
                            Box::new(e) as BoxError
                        })
                        .boxed_unsync();
                    let mut req = Request::new(body);
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
                        Ok(Err(e)) if bad_body.load(Ordering::Relaxed) => {
                            tracing::debug!(key, error = %e, "malformed request body");
                            let mut r =
                                json_error(ErrorCode::BadRequest, "the request body is malformed");
                            // The rest of the body cannot be read: no keep-alive.
                            r.headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                            return r;
                        }
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
            Ok(resp) => self
                .relay(resp, &parts, fwd, false)
                .unwrap_or_else(|resp| self.relay_as_is(*resp, fwd)),
            Err(Outcome::Failed { status, why }) => {
                tracing::warn!(key, why, "pass-through failed");
                json_error(failure_code(status), "no upstream answered")
            }
            Err(_) => json_error(ErrorCode::UpstreamUnavailable, "no upstream answered"),
        }
    }

    /// An upstream answer (not stored) as the answer to the client's request:
    /// the client's preconditions evaluated against it when they did not go
    /// upstream (`preconditions`), and the client's single range cut out of a
    /// 200 or of a 206 of another range that holds its first byte. `Err` gives
    /// the answer back when it cannot serve the request (a 206 that misses the
    /// range asked for); anything else not fitted goes as it is.
    pub(crate) fn relay(
        &self,
        resp: Response<Incoming>,
        parts: &Parts,
        fwd: Fwd,
        preconditions: bool,
    ) -> Result<Response<Body>, Box<Response<Incoming>>> {
        let status = resp.status();
        let req = &parts.headers;
        if preconditions
            && status.is_success()
            && [
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_UNMODIFIED_SINCE,
            ]
            .iter()
            .any(|n| req.contains_key(n))
        {
            let h = resp.headers();
            let etag = h
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let last_modified = h
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok());
            let v = Validators {
                etag,
                last_modified,
            };
            match conditional::evaluate(&parts.method, req, &v) {
                Precondition::Proceed => {}
                Precondition::NotModified => {
                    let (mut head, _) = resp.into_parts();
                    policy::strip_hop_by_hop(&mut head.headers);
                    policy::retain_not_modified(&mut head.headers);
                    head.status = StatusCode::NOT_MODIFIED;
                    return Ok(self.relayed(head, empty(), fwd, status));
                }
                Precondition::Failed => {
                    let mut r = json_error(
                        ErrorCode::PreconditionFailed,
                        "a precondition of the request does not hold",
                    );
                    let cs = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(status.as_u16()),
                        ..CacheStatus::default()
                    };
                    set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                    return Ok(r);
                }
            }
        }
        let Some(asked) = req
            .get(header::RANGE)
            .filter(|_| parts.method == Method::GET)
        else {
            return Ok(self.relay_as_is(resp, fwd));
        };
        let h = resp.headers();
        let held = match status {
            StatusCode::PARTIAL_CONTENT => {
                h.get(header::CONTENT_RANGE).and_then(parse_content_range)
            }
            // A 200 after an If-Range may be the new representation the client
            // must get whole; and a 200 is always a fine answer to a range.
            StatusCode::OK if !req.contains_key(header::IF_RANGE) => h
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&n| n > 0)
                .map(|n| (0, n - 1, n)),
            _ => None,
        };
        let Some((x, y, total)) = held else {
            return if status == StatusCode::PARTIAL_CONTENT {
                Err(Box::new(resp))
            } else {
                Ok(self.relay_as_is(resp, fwd))
            };
        };
        match range::evaluate(Some(asked.as_bytes()), total, MAX_RANGES) {
            RangeDecision::Partial(rs) if rs.len() == 1 => {
                let r = rs[0];
                if r.start < x || r.start > y {
                    return if status == StatusCode::OK {
                        Ok(self.relay_as_is(resp, fwd))
                    } else {
                        Err(Box::new(resp))
                    };
                }
                let end = r.end.min(y + 1);
                if status == StatusCode::PARTIAL_CONTENT && r.start == x && end == y + 1 {
                    return Ok(self.relay_as_is(resp, fwd));
                }
                let (mut head, body) = resp.into_parts();
                policy::strip_hop_by_hop(&mut head.headers);
                head.status = StatusCode::PARTIAL_CONTENT;
                let part = range::ByteRange {
                    start: r.start,
                    end,
                };
                if let Ok(v) = HeaderValue::from_str(&range::content_range(part, total)) {
                    head.headers.insert(header::CONTENT_RANGE, v);
                }
                head.headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(end - r.start));
                let body = sliced(
                    body,
                    r.start - x,
                    end - r.start,
                    self.inner.metrics.upstream_bytes.clone(),
                );
                Ok(self.relayed(head, body, fwd, status))
            }
            RangeDecision::Unsatisfiable => {
                let mut r = json_error(
                    ErrorCode::RangeNotSatisfiable,
                    "no requested range overlaps the object",
                );
                if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(total)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                let cs = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(status.as_u16()),
                    ..CacheStatus::default()
                };
                set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                Ok(r)
            }
            // Several ranges: a 200 does; a 206 of one range does not.
            _ if status == StatusCode::OK => Ok(self.relay_as_is(resp, fwd)),
            _ => Err(Box::new(resp)),
        }
    }

    /// An upstream answer streamed back as it came, but for hop-by-hop headers.
    pub(crate) fn relay_as_is(&self, resp: Response<Incoming>, fwd: Fwd) -> Response<Body> {
        let status = resp.status();
        let (mut head, rb) = resp.into_parts();
        policy::strip_hop_by_hop(&mut head.headers);
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
        self.relayed(head, body, fwd, status)
    }

    fn relayed(
        &self,
        mut head: response::Parts,
        body: Body,
        fwd: Fwd,
        upstream_status: StatusCode,
    ) -> Response<Body> {
        let cs = CacheStatus {
            fwd: Some(fwd),
            fwd_status: Some(upstream_status.as_u16()),
            ..CacheStatus::default()
        };
        set_cache_status(
            &mut head.headers,
            cs.to_header_value(&self.inner.cache_name),
        );
        Response::from_parts(head, body)
    }
}

/// `take` bytes of an upstream body after its first `skip`; the rest is not read.
fn sliced(body: Incoming, skip: u64, take: u64, counter: Counter) -> Body {
    let s = futures::stream::unfold((body, skip, take), move |(mut body, mut skip, mut take)| {
        let counter = counter.clone();
        async move {
            loop {
                if take == 0 {
                    return None;
                }
                let mut data = match body.frame().await {
                    None => {
                        let e: BoxError = "upstream body ended early".into();
                        return Some((Err(e), (body, 0, 0)));
                    }
                    Some(Err(e)) => return Some((Err(Box::new(e) as BoxError), (body, 0, 0))),
                    Some(Ok(f)) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                };
                counter.inc_by(data.len() as u64);
                let n = skip.min(data.len() as u64);
                data.advance(n as usize);
                skip -= n;
                if data.is_empty() {
                    continue;
                }
                let t = take.min(data.len() as u64);
                let out = data.split_to(t as usize);
                take -= t;
                return Some((Ok(Frame::data(out)), (body, skip, take)));
            }
        }
    });
    StreamBody::new(s).boxed_unsync()
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
