//! Answers from a stored entry: preconditions, single ranges, multipart ranges,
//! bodies streamed from chunks (fetching what is missing), and read-ahead for
//! sequential readers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use futures::{Stream, StreamExt, TryStreamExt};
use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use keyframe_core::ErrorCode;
use keyframe_http::conditional::{self, Precondition, Validators};
use keyframe_http::http_server::{empty, full, json_error, Body, BoxError};
use keyframe_http::range::{self, ByteRange, RangeDecision};

use bytes::Bytes;

use crate::chunks::Source;
use crate::entry::Entry;
use crate::policy::{self, set_cache_status, CacheStatus};
use crate::server::Server;

/// The most ranges one request may ask for after merging.
pub(crate) const MAX_RANGES: usize = 16;

impl Server {
    /// Answers a GET or HEAD from a stored entry.
    pub(crate) fn serve(
        &self,
        entry: Arc<Entry>,
        parts: &Parts,
        _peer: SocketAddr,
        mut status: CacheStatus,
    ) -> Response<Body> {
        let etag = entry
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let last_modified = entry
            .last_modified()
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok());
        let validators = Validators {
            etag,
            last_modified,
        };
        let now = SystemTime::now();
        let mut h = entry.headers.clone();
        h.insert(header::AGE, policy::age_header_value(entry.age(now)));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let head = parts.method == Method::HEAD;
        // Preconditions are ignored when the answer would not be 2xx (RFC 9110
        // §13.2.1).
        let precondition = if entry.status.is_success() {
            conditional::evaluate(&parts.method, &parts.headers, &validators)
        } else {
            Precondition::Proceed
        };
        match precondition {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                policy::retain_not_modified(&mut h);
                set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                *r.headers_mut() = h;
                return r;
            }
            Precondition::Failed => {
                return json_error(
                    ErrorCode::PreconditionFailed,
                    "a precondition of the request does not hold",
                );
            }
        }
        if let Some(body) = &entry.inline {
            // A stored answer other than 200: whole, never in ranges (RFC 9110 §14.2).
            h.remove(header::ACCEPT_RANGES);
            let mut resp = Response::new(empty());
            *resp.status_mut() = entry.status;
            if entry.status != StatusCode::NO_CONTENT {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                if !head {
                    *resp.body_mut() = full(body.clone());
                }
            }
            if status.ttl.is_some_and(|t| t < 0) {
                status.ttl = Some(0);
            }
            set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
            *resp.headers_mut() = h;
            return resp;
        }
        let range_header = parts.headers.get(header::RANGE).map(|v| v.as_bytes());
        let decision = if range_header.is_some()
            && conditional::if_range_allows(&parts.headers, &validators)
        {
            range::evaluate(range_header, entry.length, MAX_RANGES)
        } else {
            RangeDecision::Full
        };
        let content_type = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let mut resp = Response::new(empty());
        match decision {
            RangeDecision::Unsatisfiable => {
                let mut r = json_error(
                    ErrorCode::RangeNotSatisfiable,
                    "no requested range overlaps the object",
                );
                if let Ok(v) =
                    HeaderValue::from_str(&range::unsatisfied_content_range(entry.length))
                {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                set_cache_status(
                    r.headers_mut(),
                    status.to_header_value(&self.inner.cache_name),
                );
                return r;
            }
            RangeDecision::Full => {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.length));
                if !head && entry.length > 0 {
                    *resp.body_mut() = self.range_body(&entry, 0, entry.length);
                }
            }
            RangeDecision::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
                if let Ok(v) = HeaderValue::from_str(&range::content_range(r, entry.length)) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                if !head {
                    *resp.body_mut() = self.range_body(&entry, r.start, r.end);
                }
            }
            RangeDecision::Partial(ranges) => {
                let boundary = range::boundary_for(&format!("{}{etag}", entry.generation));
                let total = range::multipart_len(&boundary, &content_type, &ranges, entry.length);
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) =
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                {
                    h.insert(header::CONTENT_TYPE, v);
                }
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
                if !head {
                    *resp.body_mut() = self.multipart_body(&entry, ranges, boundary, content_type);
                }
            }
        }
        if status.ttl.is_some_and(|t| t < 0) {
            status.ttl = Some(0);
        }
        set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
        *resp.headers_mut() = h;
        resp
    }

    /// The bytes `[start, end)` of an entry, from chunks, fetching what is missing.
    pub(crate) fn range_body(&self, entry: &Arc<Entry>, start: u64, end: u64) -> Body {
        let cs = self.inner.chunk_size;
        let idx = start / cs;
        if idx == (end.max(1) - 1) / cs {
            // Within one chunk that is in memory (most small ranges): one frame,
            // which the server can write with the response head.
            if let Some(b) = self.inner.chunks.hit(&(entry.generation, idx)) {
                let horizon = self.horizon(entry, start, end);
                self.read_ahead(entry, idx, horizon);
                return full(b.slice((start - idx * cs) as usize..(end - idx * cs) as usize));
            }
        }
        let s = self.chunk_stream(entry.clone(), start, end);
        StreamBody::new(s.map_ok(Frame::data)).boxed_unsync()
    }

    pub(crate) fn multipart_body(
        &self,
        entry: &Arc<Entry>,
        ranges: Vec<ByteRange>,
        boundary: String,
        content_type: String,
    ) -> Body {
        let me = self.clone();
        let entry = entry.clone();
        let n = ranges.len();
        let length = entry.length;
        let s = futures::stream::iter(ranges.into_iter().enumerate()).flat_map(move |(i, r)| {
            let head = range::part_head(&boundary, &content_type, r, length);
            let tail = (i + 1 == n).then(|| range::closing(&boundary));
            futures::stream::once(futures::future::ready(Ok(head)))
                .chain(me.chunk_stream(entry.clone(), r.start, r.end))
                .chain(futures::stream::iter(tail.map(Ok)))
        });
        StreamBody::new(s.map_ok(Frame::data)).boxed_unsync()
    }

    pub(crate) fn chunk_stream(
        &self,
        entry: Arc<Entry>,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
        let cs = self.inner.chunk_size;
        let first = start / cs;
        let last = (end.max(1) - 1) / cs;
        let horizon = self.horizon(&entry, start, end);
        let me = self.clone();
        futures::stream::iter(first..=last)
            .map(move |idx| {
                me.read_ahead(&entry, idx, horizon);
                let lo = if idx == first { start - idx * cs } else { 0 };
                let hi = if idx == last {
                    end - idx * cs
                } else {
                    entry.chunk_len(idx, cs)
                };
                match me.ensure_chunk(&entry, idx, false) {
                    Source::Ready(b) => {
                        let piece = b.slice(lo as usize..hi as usize);
                        futures::stream::once(futures::future::ready(Ok::<_, BoxError>(piece)))
                            .boxed()
                    }
                    Source::Flight { flight, .. } => flight
                        .read(lo, hi)
                        .map_err(|e| Box::new(e) as BoxError)
                        .boxed(),
                }
            })
            .flatten()
    }

    /// The last chunk worth having for a read of `[start, end)`: past the range's
    /// end by the read-ahead for a reader that starts where its last range ended (a
    /// player), else the range's own last chunk.
    pub(crate) fn horizon(&self, entry: &Entry, start: u64, end: u64) -> u64 {
        let cs = self.inner.chunk_size;
        let last = (end.max(1) - 1) / cs;
        let prev = entry
            .last_end
            .swap(end, std::sync::atomic::Ordering::Relaxed);
        let sequential =
            prev != u64::MAX && (prev == start || (start > 0 && prev / cs == start / cs));
        if sequential {
            (last + self.inner.config.read_ahead as u64)
                .min(entry.chunk_count(cs).saturating_sub(1))
        } else {
            last
        }
    }

    /// Starts fetching the chunks after `idx`, up to the read-ahead and `horizon`,
    /// that are neither cached nor being fetched. Those fetches are marked as read
    /// ahead: done, they also wait in the store's window of recent chunks, so the
    /// reader finds them even if the tiers' admission turned them away.
    pub(crate) fn read_ahead(&self, entry: &Arc<Entry>, idx: u64, horizon: u64) {
        let ahead = self.inner.config.read_ahead as u64;
        for next in (idx + 1)..=(idx + ahead).min(horizon) {
            if !self.inner.chunks.present(&(entry.generation, next)) {
                self.ensure_chunk(entry, next, true);
            }
        }
    }
}
