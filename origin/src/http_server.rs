//! The HTTP plumbing every Keyframe byte server shares: body types, JSON errors, and
//! the accept loop with connection limits, timeouts, optional TLS and graceful shutdown.
//!
//! Servers take their listener and a shutdown future (`serve(listener, …, shutdown)`),
//! so a test binds `127.0.0.1:0` and stops the server cleanly.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::tls::Tls;

/// An error inside a response body; hyper aborts the connection when one surfaces,
/// so a client never mistakes a cut-short body for a complete one.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response Keyframe's byte servers send.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// The JSON error every server answers with: `{"error": "...", "code": "..."}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "code": code }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Connection limits and timeouts of a server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers (and how long an idle
    /// keep-alive connection is kept).
    pub header_read_timeout: Duration,
    /// The most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request head accepted, in bytes.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run on after shutdown is asked for.
    pub grace: Duration,
    /// TLS to terminate (ALPN `h2`, `http/1.1`); `None` serves plain HTTP/1.1 and h2c.
    pub tls: Option<Tls>,
    /// Plain connections send slices of sealed cached chunks with `sendfile(2)`
    /// (see [`crate::zerocopy`]); off, they are written (copied) like any bytes.
    pub sendfile: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            grace: Duration::from_secs(10),
            tls: None,
            sendfile: true,
        }
    }
}

/// Serves HTTP/1.1 and h2c (or, with `limits.tls`, HTTPS with ALPN `h2`/`http/1.1`)
/// on `listener` with `handler` until `shutdown` resolves, then lets in-flight
/// requests finish for up to `limits.grace`.
///
/// A TLS handshake must complete within `limits.header_read_timeout`; one that fails
/// or times out drops only that connection.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.header_read_timeout));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let h = handler.clone();
        let svc = service_fn(move |req| {
            let fut = h(req, peer);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        match &limits.tls {
            None => {
                let stream = crate::zerocopy::ZeroCopyStream::new(stream, limits.sendfile);
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor().clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    let _permit = permit;
                    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(limits.grace) => tracing::warn!("grace period over, dropping open connections"),
    }
}
