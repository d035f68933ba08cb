//! The HTTP plumbing every Keyframe byte server shares: body types, JSON errors, and
//! the accept loop with connection limits, timeouts, optional TLS and graceful shutdown.
//!
//! Servers take their listener and a shutdown future (`serve(listener, …, shutdown)`),
//! so a test binds `127.0.0.1:0` and stops the server cleanly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use keyframe_core::ErrorCode;

use crate::frames::Frames;
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

/// The JSON error every server answers with: `{"error": "...", "code": "..."}`,
/// with the code's status.
pub fn json_error(code: ErrorCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "code": code }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code.status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 405 for a path that allows only the methods `allow` lists (e.g. `GET, HEAD`),
/// with `Allow` (RFC 9110 §15.5.6).
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let only = allow.replace(", ", " and ");
    let mut r = json_error(
        ErrorCode::MethodNotAllowed,
        &format!("this path allows only {only}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Connection limits and timeouts of a server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a client may take to send a request's headers, counted for the first
    /// request from the moment the connection is accepted (a TLS handshake included),
    /// and how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// The most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// The most connections served at once from one client address; a connection
    /// past it is closed at once, unanswered, so that one host cannot take every
    /// slot of `max_connections`.
    pub max_connections_per_address: usize,
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
            max_connections_per_address: per_address_default(10_000),
            max_header_bytes: 64 * 1024,
            grace: Duration::from_secs(10),
            tls: None,
            sendfile: true,
        }
    }
}

/// The per-address cap when none is configured: a quarter of `max_connections`
/// (at least 1), so that one host can never lock every other client out.
pub fn per_address_default(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// Serves HTTP/1.1 and h2c (or, with `limits.tls`, HTTPS with ALPN `h2`/`http/1.1`)
/// on `listener` with `handler` until `shutdown` resolves, then lets in-flight
/// requests finish for up to `limits.grace`.
///
/// A connection's first request head (after its TLS handshake, if any) must arrive
/// within `limits.header_read_timeout` of the accept, else the connection is closed:
/// a client that connects and sends nothing holds its slot no longer than that. One
/// that fails its handshake drops only that connection.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_on_threads(listener, limits, 1, handler, shutdown).await;
}

/// [`serve`] on `threads` threads, each with its own single-threaded runtime and its
/// own `SO_REUSEPORT` listener on the same address (as nginx's workers), so that a
/// connection stays on the thread that accepted it and no thread wakes another.
/// `1` serves on the caller's runtime. The connection limits hold across all of
/// them. More than one wants a listener from [`listen`] with `reuseport`; without,
/// the other threads log why and only the first serves.
pub async fn serve_on_threads<H, Fut>(
    listener: TcpListener,
    limits: Limits,
    threads: usize,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let threads = threads.max(1);
    let ctx = Arc::new(Accept::new(limits, handler));
    if threads == 1 {
        return accept_loop(listener, ctx, shutdown).await;
    }
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "no local address: serving on one thread");
            return accept_loop(listener, ctx, shutdown).await;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut done = Vec::with_capacity(threads);
    let mut first = Some(listener);
    for i in 0..threads {
        // The first thread takes the listener bound by the caller; the others bind
        // their own on the same address (which takes `SO_REUSEPORT` on the first).
        let own = first.take().map(TcpListener::into_std);
        let ctx = ctx.clone();
        let mut stopped = stopped.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("keyframe-serve-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a serving thread's runtime");
                        let _ = tx.send(());
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match own {
                        Some(l) => l.and_then(TcpListener::from_std),
                        None => listen(addr, true),
                    };
                    match listener {
                        Ok(l) => {
                            let shutdown = async move {
                                let _ = stopped.wait_for(|s| *s).await;
                            };
                            accept_loop(l, ctx, shutdown).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, thread = i, "serving thread has no listener");
                        }
                    }
                });
                drop(rt);
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => done.push(rx),
            Err(e) => tracing::error!(error = %e, "cannot start a serving thread"),
        }
    }
    shutdown.await;
    let _ = stop.send(true);
    for rx in done {
        let _ = rx.await;
    }
}

/// Listens on `addr` (backlog 1024, `SO_REUSEADDR`, as `TcpListener::bind`), with
/// `SO_REUSEPORT` when `reuseport`, so that [`serve_on_threads`]' threads can each
/// listen on it too. Call it within a runtime.
pub fn listen(addr: SocketAddr, reuseport: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// What every accept loop of one server shares: the connection builder, the
/// handler and the connection limits.
struct Accept<H> {
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    handler: H,
    permits: Arc<Semaphore>,
    per_address: PerAddress,
}

impl<H> Accept<H> {
    fn new(limits: Limits, handler: H) -> Self {
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
        Accept {
            builder,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_address: PerAddress::new(limits.max_connections_per_address.max(1)),
            limits,
            handler,
        }
    }
}

/// A response as the connection writes it: its body's ready data frames joined
/// into one write ([`Frames`]).
pub fn for_connection(resp: Response<Body>) -> Response<Frames<Body>> {
    resp.map(Frames::new)
}

/// Accepts on `listener` and serves each connection on the current runtime until
/// `shutdown` resolves, then lets in-flight requests finish for up to the grace.
async fn accept_loop<H, Fut>(
    listener: TcpListener,
    ctx: Arc<Accept<H>>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let limits = &ctx.limits;
    let permits = &ctx.permits;
    let per_address = &ctx.per_address;
    let graceful = GracefulShutdown::new();
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
        let deadline = tokio::time::Instant::now() + limits.header_read_timeout;
        let Some(slot) = per_address.take(peer.ip()) else {
            tracing::debug!(%peer, "connection over the per-address cap, closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let h = ctx.handler.clone();
        let svc = service_fn(move |req| {
            let fut = h(req, peer);
            async move { Ok::<_, Infallible>(for_connection(fut.await)) }
        });
        let builder = ctx.builder.clone();
        let watcher = graceful.watcher();
        let tls = limits.tls.as_ref().map(|t| t.acceptor().clone());
        let sendfile = limits.sendfile;
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let ended = match tls {
                None => {
                    let stream = crate::zerocopy::ZeroCopyStream::new(stream, sendfile);
                    let io = TokioIo::new(FirstHead::new(stream, deadline));
                    watcher
                        .watch(builder.serve_connection(io, svc).into_owned())
                        .await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
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
                    let io = TokioIo::new(FirstHead::new(stream, deadline));
                    watcher
                        .watch(builder.serve_connection(io, svc).into_owned())
                        .await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(limits.grace) => tracing::warn!("grace period over, dropping open connections"),
    }
}

/// Connections open per client address, capped.
struct PerAddress {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(cap: usize) -> Self {
        PerAddress {
            cap,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the cap.
    fn take(&self, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

/// One connection's place in [`PerAddress`], given back on drop.
struct AddressSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The HTTP/2 connection preface, which settles a connection as h2c.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose first request head must arrive by a deadline set at accept.
///
/// hyper's own header timeout starts only once a connection has sent bytes (the
/// version detection before it waits without one), so a client that connects and
/// stays silent would hold its slot forever. Until the first head is in (an
/// HTTP/1 head up to its blank line, or the HTTP/2 preface, after which HTTP/2's
/// keep-alive takes over), a read past the deadline fails with `TimedOut`, and the
/// connection closes. After that it is the stream itself, one branch per read.
struct FirstHead<S> {
    inner: S,
    watch: Option<HeadWatch>,
}

/// What [`FirstHead`] keeps until the first head is in.
struct HeadWatch {
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Bytes read so far, up to the preface's length.
    seen: usize,
    /// Still possibly the HTTP/2 preface.
    h2: bool,
    /// The last bytes of an HTTP/1 head, to find `\r\n\r\n` across reads.
    tail: u32,
}

impl<S> FirstHead<S> {
    fn new(inner: S, deadline: tokio::time::Instant) -> Self {
        FirstHead {
            inner,
            watch: Some(HeadWatch {
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                seen: 0,
                h2: true,
                tail: 0,
            }),
        }
    }
}

impl HeadWatch {
    /// Looks at bytes read; true once the first head is complete.
    fn saw(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.h2 {
                if H2_PREFACE.get(self.seen) == Some(&b) {
                    self.seen += 1;
                    if self.seen == H2_PREFACE.len() {
                        return true;
                    }
                } else {
                    self.h2 = false;
                }
            }
            self.tail = (self.tail << 8) | u32::from(b);
            if self.tail == u32::from_be_bytes(*b"\r\n\r\n") {
                return true;
            }
        }
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstHead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(watch) = &mut this.watch else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if watch.saw(&buf.filled()[before..]) {
                    this.watch = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if watch.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request head within the header timeout",
                )))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstHead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A short `text/plain` answer (health checks).
pub fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> HeadWatch {
        HeadWatch {
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(1))),
            seen: 0,
            h2: true,
            tail: 0,
        }
    }

    #[tokio::test]
    async fn the_first_head_ends_at_its_blank_line_or_the_h2_preface() {
        let mut w = watch();
        assert!(!w.saw(b"GET / HTTP/1.1\r\nHost: a\r"));
        assert!(!w.saw(b"\n"));
        assert!(!w.saw(b"\r"));
        assert!(w.saw(b"\n"));
        let mut w = watch();
        assert!(!w.saw(&H2_PREFACE[..10]));
        assert!(w.saw(&H2_PREFACE[10..]));
        // The start of the preface, then something else: an HTTP/1 head after all.
        let mut w = watch();
        assert!(!w.saw(b"PRI * HTTP/1.1\r\n"));
        assert!(w.saw(b"\r\n"));
    }

    /// One request on a new connection to `addr`; the answer's body.
    async fn get(addr: SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.expect("answer");
        answer
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn threads_each_listen_on_the_address_and_all_stop() {
        let listener = listen("127.0.0.1:0".parse().expect("addr"), true).expect("listen");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on_threads(
            listener,
            Limits::default(),
            2,
            |_req, _peer| async {
                let name = std::thread::current().name().unwrap_or("?").to_string();
                Response::new(full(name))
            },
            async {
                let _ = stopped.await;
            },
        ));
        // SO_REUSEPORT spreads connections over both threads' listeners (by their
        // ports): both answer within a few connections.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(get(addr).await);
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(
            seen,
            ["keyframe-serve-0", "keyframe-serve-1"]
                .map(String::from)
                .into(),
            "each thread serves on its own runtime"
        );
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("every thread stops on shutdown")
            .expect("serve");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no thread listens after shutdown"
        );
    }

    #[test]
    fn one_address_has_at_most_its_cap() {
        let table = PerAddress::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        let s1 = table.take(a).expect("first");
        let _s2 = table.take(a).expect("second");
        assert!(table.take(a).is_none(), "a third over the cap");
        let _other = table.take(b).expect("another address has its own");
        drop(s1);
        assert!(
            table.take(a).is_some(),
            "a closed connection gives its slot back"
        );
        assert_eq!(per_address_default(100), 25);
        assert_eq!(per_address_default(1), 1);
    }
}
