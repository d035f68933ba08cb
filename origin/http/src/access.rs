//! Request ids and the access log: [`observe`], the one wrapper every server's
//! handler runs in, which names the request (its `X-Request-Id`), times it, counts
//! it by status and writes its access line when the body has gone out.
//!
//! The id ties together every line a request causes: the handler runs inside a
//! `request{id=…}` span, the response body is polled inside it, and tasks the
//! request starts take it along ([`spawn`]), so the edge's chunk fetches,
//! revalidations and background refreshes log under the id of the request that
//! caused them. [`current`] gives the id to code that sends it on upstream.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tracing::{Instrument, Span};

use crate::http_server::{Body, BoxError};
use crate::metrics::HttpMetrics;
use crate::shards::ShardedCounter;

/// The request and response header that carries a request's id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent id taken as is; a longer one is replaced.
pub const MAX_ID_LEN: usize = 64;

/// A request's id: the client's `X-Request-Id` when it is safe to log and pass on
/// (1 to [`MAX_ID_LEN`] characters, letters, digits and `-_.:+/=`: no spaces,
/// quotes or control characters that could forge a log field or line), else one
/// made here, 16 hex digits unique within the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id a client sent, if it is safe to use as is.
    pub fn accept(v: &HeaderValue) -> Option<RequestId> {
        let b = v.as_bytes();
        let safe = |c: &u8| c.is_ascii_alphanumeric() || b"-_.:+/=".contains(c);
        (!b.is_empty() && b.len() <= MAX_ID_LEN && b.iter().all(safe)).then(|| RequestId(v.clone()))
    }

    /// A new id: a counter through a bijective mix (SplitMix64's finaliser) keyed
    /// by a random per-process seed, so ids never repeat within a process and do
    /// not line up across processes.
    pub fn generate() -> RequestId {
        static SEED: OnceLock<u64> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(|| {
            // `RandomState` is keyed from the OS's randomness once per process.
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let v = HeaderValue::try_from(format!("{z:016x}"))
            .unwrap_or_else(|_| HeaderValue::from_static("0"));
        RequestId(v)
    }

    /// The id of a request with these headers: its own if safe, else a new one.
    pub fn of(headers: &HeaderMap) -> RequestId {
        headers
            .get(&X_REQUEST_ID)
            .and_then(RequestId::accept)
            .unwrap_or_else(RequestId::generate)
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id as text (only the characters [`accept`](Self::accept) allows).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(RequestId::clone).ok()
}

/// Spawns `fut` as part of the current request: it runs in the request's span and
/// [`current`] gives the request's id in it.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let fut = fut.instrument(Span::current());
    match current() {
        Some(id) => tokio::spawn(CURRENT.scope(id, fut)),
        None => tokio::spawn(fut),
    }
}

/// Sets `X-Request-Id` on a request this one causes (an edge's upstream fetch),
/// so the next tier logs it under the same id.
pub fn pass_on(headers: &mut HeaderMap) {
    if let Some(id) = current() {
        headers.insert(&X_REQUEST_ID, id.0);
    }
}

/// Runs `f` as part of the request `id` (a body polled outside its handler).
pub fn in_request<R>(id: &RequestId, span: &Span, f: impl FnOnce() -> R) -> R {
    let _entered = span.enter();
    CURRENT.sync_scope(id.clone(), f)
}

/// How loud a request's access line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loudness {
    /// At `info`: what clients asked.
    Info,
    /// At `debug`: routine traffic (health checks, another Keyframe cache's fetches).
    Routine,
}

/// Serves `req` through `handler` as one observed request: gives it an id (the
/// span every line it causes is written in, echoed in the response's
/// `X-Request-Id`), counts it in `metrics` by status, times it to the response
/// head, counts the body bytes that go out, and writes its access line (target
/// `keyframe::access`) when the body ends or is dropped, with the bytes that
/// actually went out: a download cut at 68 MB logs 68 MB and `complete=false`.
pub async fn observe<B, F, Fut>(
    server: &'static str,
    metrics: &HttpMetrics,
    req: Request<B>,
    peer: SocketAddr,
    loudness: Loudness,
    handler: F,
) -> Response<Body>
where
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let started = Instant::now();
    let id = RequestId::of(req.headers());
    // At `error`, so that even the tersest filter that logs anything writes the
    // lines a request causes with its id.
    let span = tracing::error_span!(target: "keyframe::request", "request", id = %id);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    metrics.in_flight.inc();
    let mut resp = CURRENT
        .scope(id.clone(), handler(req))
        .instrument(span.clone())
        .await;
    metrics.in_flight.dec();
    let status = resp.status();
    metrics.count(status);
    metrics.duration.observe(started.elapsed().as_secs_f64());
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), id.header_value().clone());
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let cache = resp.headers().get("cache-status").cloned();
    let bytes = metrics.response_bytes.clone();
    resp.map(|body| {
        Logged {
            body,
            id,
            span,
            bytes,
            line: Line {
                server,
                loudness,
                peer,
                method,
                path,
                status,
                cache,
                started,
                length,
                sent: 0,
                ended: false,
            },
        }
        .boxed_unsync()
    })
}

/// A response body polled in its request's span, which counts the bytes it hands
/// to the connection and writes the access line when it ends or is dropped.
struct Logged {
    body: Body,
    id: RequestId,
    span: Span,
    bytes: ShardedCounter,
    line: Line,
}

/// What the access line says.
struct Line {
    server: &'static str,
    loudness: Loudness,
    peer: SocketAddr,
    method: Method,
    path: String,
    status: StatusCode,
    /// `Cache-Status`, for a cache.
    cache: Option<HeaderValue>,
    started: Instant,
    /// The `Content-Length` the response announced.
    length: Option<u64>,
    /// Body bytes handed to the connection.
    sent: u64,
    /// The body reached its end.
    ended: bool,
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let body = &mut this.body;
        let polled = in_request(&this.id, &this.span, || Pin::new(body).poll_frame(cx));
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.line.sent += d.len() as u64;
                    this.bytes.inc_by(d.len() as u64);
                }
            }
            Poll::Ready(None) => this.line.ended = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let l = &self.line;
        let complete =
            l.ended || hyper::body::Body::is_end_stream(&self.body) || l.length == Some(l.sent);
        let _entered = self.span.enter();
        let cache = l.cache.as_ref().and_then(|v| v.to_str().ok());
        macro_rules! access {
            ($level:expr) => {
                tracing::event!(
                    target: "keyframe::access",
                    $level,
                    server = l.server,
                    peer = %l.peer,
                    method = %l.method,
                    path = l.path,
                    status = l.status.as_u16(),
                    cache,
                    bytes = l.sent,
                    complete,
                    micros = l.started.elapsed().as_micros() as u64,
                    "request"
                )
            };
        }
        match l.loudness {
            Loudness::Info => access!(tracing::Level::INFO),
            Loudness::Routine => access!(tracing::Level::DEBUG),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_taken_only_when_safe_to_log() {
        let take = |s: &str| RequestId::accept(&HeaderValue::from_str(s).expect("value"));
        for ok in [
            "a",
            "3f2a9c1e-7b4d-4e8a-9f00-0123456789ab",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "7d1c2b3a4e5f6789-AMS",
        ] {
            assert_eq!(
                take(ok).map(|i| i.to_string()),
                Some(ok.to_string()),
                "{ok}"
            );
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        for bad in [
            "",
            "two words",
            "x\"y",
            "id status=500",
            "a;b",
            "ä",
            long.as_str(),
        ] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).expect("value");
            assert_eq!(RequestId::accept(&v), None, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("a b"));
        let made = RequestId::of(&h);
        assert_ne!(made.as_str(), "a b");
        assert!(RequestId::accept(made.header_value()).is_some());
    }

    #[test]
    fn made_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::generate().to_string())
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|i| i.len() == 16));
    }

    #[tokio::test]
    async fn spawned_tasks_keep_the_request_id() {
        let id = RequestId::generate();
        let seen = CURRENT
            .scope(id.clone(), async {
                spawn(async { current() }).await.expect("task")
            })
            .await;
        assert_eq!(seen, Some(id));
        assert_eq!(current(), None);
    }
}
