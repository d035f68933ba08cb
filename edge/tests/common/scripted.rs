//! A scripted origin: each test says how it answers (any status, headers and
//! body, however an RFC-abiding or a misbehaving origin would), and reads back
//! every request that reached it, with its headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyframe_http::http_server::{full, Body};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The request body, read whole.
    pub body: Bytes,
}

impl Seen {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What the origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn delay(mut self, ms: u64) -> Reply {
        self.delay = Duration::from_millis(ms);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((
            HeaderName::try_from(name).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        ));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }
}

/// How the origin answers a request.
pub type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A scripted origin on 127.0.0.1:0.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
    stop: Option<oneshot::Sender<()>>,
}

impl ScriptedOrigin {
    pub async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> ScriptedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(script)));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (st, sc) = (seen.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = &mut rx => break,
                };
                let (st, sc) = (st.clone(), sc.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (st, sc) = (st.clone(), sc.clone());
                        async move { Ok::<_, Infallible>(answer(&st, &sc, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ScriptedOrigin {
            addr,
            seen,
            script,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers from now on with `script`.
    pub fn set(&self, script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) {
        *self.script.lock().expect("lock") = Arc::new(script);
    }

    /// Every request so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(
    seen: &Mutex<Vec<Seen>>,
    script: &Mutex<Script>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let s = Seen {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    seen.lock().expect("lock").push(s.clone());
    let f = script.lock().expect("lock").clone();
    let reply = f(&s);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut r = Response::new(if s.method == Method::HEAD {
        keyframe_http::http_server::empty()
    } else {
        full(reply.body.clone())
    });
    *r.status_mut() = reply.status;
    for (n, v) in reply.headers {
        r.headers_mut().append(n, v);
    }
    if s.method == Method::HEAD && !r.headers().contains_key("content-length") {
        r.headers_mut()
            .insert("content-length", HeaderValue::from(reply.body.len()));
    }
    r
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` of a request, resolved
/// against `len` (None: no Range, several ranges, or not satisfiable).
pub fn single_range(req: &Seen, len: u64) -> Option<(u64, u64)> {
    let spec = req.header("range").strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len - 1)
    } else {
        let a: u64 = a.parse().ok()?;
        let b = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (a, b)
    };
    (a <= b && a < len).then_some((a, b))
}

/// The answer of an origin that honours a single range: a 206 of it, else the
/// whole 200, with `headers` added.
pub fn ranged(data: &Bytes, req: &Seen, headers: &[(&str, &str)]) -> Reply {
    let len = data.len() as u64;
    let mut r = match single_range(req, len) {
        Some((a, b)) => Reply::new(206)
            .header("content-range", &format!("bytes {a}-{b}/{len}"))
            .body(data.slice(a as usize..=b as usize)),
        None => Reply::new(200).body(data.clone()),
    };
    r = r.header("accept-ranges", "bytes");
    for (n, v) in headers {
        r = r.header(n, v);
    }
    r
}
