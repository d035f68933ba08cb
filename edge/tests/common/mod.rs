//! A controllable test origin and an edge started on port 0.

#![allow(dead_code)]

pub mod scripted;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyframe_edge::{Config, Server};
use keyframe_http::http_server::{Body, BoxError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One object the test origin serves.
#[derive(Clone)]
pub struct Obj {
    pub data: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// Whether Range requests get 206.
    pub ranges: bool,
}

impl Obj {
    /// A cacheable object with an ETag and max-age.
    pub fn cacheable(data: Vec<u8>, max_age: u64) -> Obj {
        let etag = format!(
            "\"{:x}\"",
            data.len() as u64 * 31 + data.first().copied().unwrap_or(0) as u64
        );
        Obj {
            data: Bytes::from(data),
            headers: vec![
                ("cache-control", format!("max-age={max_age}")),
                ("etag", etag),
                ("content-type", "video/mp4".into()),
            ],
            ranges: true,
        }
    }
}

/// What the origin saw and how it behaves.
#[derive(Default)]
pub struct OriginState {
    pub objects: Mutex<HashMap<String, Obj>>,
    pub gets: AtomicUsize,
    pub body_bytes: AtomicU64,
    pub requests: Mutex<Vec<(String, HeaderMap)>>,
    /// Send half of each body, then fail the connection.
    pub fail_mid_body: AtomicBool,
    /// Answer 503 to everything.
    pub down: AtomicBool,
    /// Delay before each response head, in ms.
    pub delay_ms: AtomicU64,
}

/// A test origin on 127.0.0.1:0.
pub struct TestOrigin {
    pub addr: SocketAddr,
    pub state: Arc<OriginState>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestOrigin {
    pub async fn start() -> TestOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(OriginState::default());
        let (tx, mut rx) = oneshot::channel::<()>();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = &mut rx => break,
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(respond(&st, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestOrigin {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put(&self, path: &str, obj: Obj) {
        self.state
            .objects
            .lock()
            .expect("lock")
            .insert(path.to_string(), obj);
    }

    pub fn gets(&self) -> usize {
        self.state.gets.load(Ordering::SeqCst)
    }

    /// Stops accepting connections (existing ones keep going).
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_range(h: &HeaderMap, len: u64) -> Option<(u64, u64)> {
    let v = h.get("range")?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return Some((len.saturating_sub(n), len - 1));
    }
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        len - 1
    } else {
        b.parse::<u64>().ok()?.min(len - 1)
    };
    Some((a, b))
}

fn body_of(st: Arc<OriginState>, data: Bytes) -> Body {
    let fail = st.fail_mid_body.load(Ordering::SeqCst);
    let pieces: Vec<Bytes> = data.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
    let half = pieces.len() / 2;
    let stream = futures::stream::iter(pieces.into_iter().enumerate()).then(move |(i, p)| {
        let st = st.clone();
        async move {
            if fail && i >= half.max(1) {
                return Err::<Frame<Bytes>, BoxError>("origin died mid-body".into());
            }
            st.body_bytes.fetch_add(p.len() as u64, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Frame::data(p))
        }
    });
    use futures::StreamExt;
    StreamBody::new(stream).boxed_unsync()
}

async fn respond(st: &Arc<OriginState>, req: Request<Incoming>) -> Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    st.requests
        .lock()
        .expect("lock")
        .push((path.clone(), req.headers().clone()));
    if req.method() == http::Method::GET {
        st.gets.fetch_add(1, Ordering::SeqCst);
    }
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mk = |status: StatusCode, body: Body| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        r
    };
    if st.down.load(Ordering::SeqCst) {
        return mk(
            StatusCode::SERVICE_UNAVAILABLE,
            keyframe_http::http_server::full("down"),
        );
    }
    let obj = st
        .objects
        .lock()
        .expect("lock")
        .get(req.uri().path())
        .cloned();
    let Some(obj) = obj else {
        let mut r = mk(
            StatusCode::NOT_FOUND,
            keyframe_http::http_server::full("nope"),
        );
        r.headers_mut()
            .insert("cache-control", "max-age=60".parse().expect("v"));
        return r;
    };
    let etag = obj
        .headers
        .iter()
        .find(|(n, _)| *n == "etag")
        .map(|(_, v)| v.clone());
    let mut resp;
    if let (Some(inm), Some(etag)) = (req.headers().get("if-none-match"), &etag) {
        if inm.to_str().ok() == Some(etag.as_str()) {
            resp = mk(
                StatusCode::NOT_MODIFIED,
                keyframe_http::http_server::empty(),
            );
            for (n, v) in &obj.headers {
                resp.headers_mut().append(*n, v.parse().expect("v"));
            }
            return resp;
        }
    }
    let len = obj.data.len() as u64;
    let range = if obj.ranges && len > 0 {
        parse_range(req.headers(), len)
    } else {
        None
    };
    match range {
        Some((a, b)) if a < len => {
            resp = mk(
                StatusCode::PARTIAL_CONTENT,
                body_of(st.clone(), obj.data.slice(a as usize..=b as usize)),
            );
            resp.headers_mut().insert(
                "content-range",
                format!("bytes {a}-{b}/{len}").parse().expect("v"),
            );
            resp.headers_mut()
                .insert("content-length", (b - a + 1).into());
        }
        Some(_) => {
            resp = mk(
                StatusCode::RANGE_NOT_SATISFIABLE,
                keyframe_http::http_server::empty(),
            );
            resp.headers_mut().insert(
                "content-range",
                format!("bytes */{len}").parse().expect("v"),
            );
            return resp;
        }
        None => {
            resp = mk(StatusCode::OK, body_of(st.clone(), obj.data.clone()));
            resp.headers_mut().insert("content-length", len.into());
        }
    }
    if obj.ranges {
        resp.headers_mut()
            .insert("accept-ranges", "bytes".parse().expect("v"));
    }
    if req.method() == http::Method::HEAD {
        *resp.body_mut() = keyframe_http::http_server::empty();
    }
    for (n, v) in &obj.headers {
        resp.headers_mut().append(*n, v.parse().expect("v"));
    }
    resp.headers_mut().insert(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now())
            .parse()
            .expect("v"),
    );
    resp
}

/// An edge on 127.0.0.1:0.
pub struct TestEdge {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestEdge {
    pub async fn start(config: Config) -> TestEdge {
        let server = Server::new(config).expect("edge config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async move {
            let _ = rx.await;
        }));
        TestEdge {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /_keyframe/purge` with `body`, presenting `token` as the admin token.
    pub async fn purge(
        &self,
        client: &reqwest::Client,
        token: &str,
        body: &str,
    ) -> reqwest::Response {
        client
            .post(self.url("/_keyframe/purge"))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
            .await
            .expect("purge")
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An edge config in front of `upstreams` with a small chunk size.
pub fn config(upstreams: &[String], chunk: u64) -> Config {
    Config {
        upstream: upstreams.to_vec(),
        chunk_size: keyframe_core::size::ByteSize(chunk),
        cache_memory: keyframe_core::size::ByteSize(64 << 20),
        upstream_timeout_secs: 5,
        // Probes would show up in the origins' request counts.
        health_check_secs: 0,
        ..Config::default()
    }
}

/// Deterministic bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// GET with an optional Range; returns status, headers and the body (or the error
/// that cut it short).
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Result<Bytes, String>) {
    let mut rb = client.get(url);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| e.to_string());
    (status, headers, body)
}
