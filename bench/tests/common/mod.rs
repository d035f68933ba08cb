//! A small HTTP/1.1 server for the bench's tests: every `/v1/objects/<name>`
//! is the same in-memory object, unless `Options::files` names the path (an HLS
//! ladder's playlists and media), served whole (200) or as one range (206 with
//! Content-Range); it can corrupt one byte of one response, be slow, or demand a
//! header or query parameter.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Flip one byte of the body of the n-th (1-based) GET response.
    pub corrupt_nth: Option<u64>,
    /// Wait this long before every GET response.
    pub delay: Duration,
    /// Answer 401 to requests (HEAD too) without this header and value.
    pub require_header: Option<(&'static str, &'static str)>,
    /// Answer 403 to requests whose query lacks this `name=value` pair.
    pub require_query: Option<&'static str>,
    /// Objects by path, served instead of the one object.
    pub files: HashMap<String, Bytes>,
}

#[derive(Debug)]
pub struct State {
    pub data: Bytes,
    pub options: Options,
    pub gets: AtomicU64,
    /// How often each query string was requested.
    pub queries: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/v1/objects/{name}", self.addr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn query_counts(&self) -> HashMap<String, u64> {
        self.state.queries.lock().expect("lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reproducible object bytes.
pub fn object(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub async fn start(data: Vec<u8>, options: Options) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State {
        data: Bytes::from(data),
        options,
        gets: AtomicU64::new(0),
        queries: Mutex::new(HashMap::new()),
    });
    let shared = Arc::clone(&state);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(Arc::clone(&state), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer { addr, state, task }
}

fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let (s, e) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = s.parse().ok()?;
    let end: u64 = e.parse::<u64>().ok()?.min(len.checked_sub(1)?);
    (start <= end).then_some((start, end))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let data = state
        .options
        .files
        .get(req.uri().path())
        .unwrap_or(&state.data)
        .clone();
    let len = data.len() as u64;
    if let Some(q) = req.uri().query() {
        *state
            .queries
            .lock()
            .expect("lock")
            .entry(q.to_owned())
            .or_default() += 1;
    }
    if let Some((name, value)) = state.options.require_header {
        if req.headers().get(name).is_none_or(|v| v != value) {
            return Ok(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Full::new(Bytes::from_static(b"{\"error\":\"signed out\"}")))
                .expect("response"));
        }
    }
    if let Some(pair) = state.options.require_query {
        if !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == pair))
        {
            return Ok(Response::builder()
                .status(StatusCode::FORBIDDEN)
                .body(Full::new(Bytes::from_static(b"{\"error\":\"no token\"}")))
                .expect("response"));
        }
    }
    let builder = Response::builder().header("accept-ranges", "bytes");
    if req.method() == Method::HEAD {
        return Ok(builder
            .header("content-length", len)
            .body(Full::new(Bytes::new()))
            .expect("response"));
    }
    let n = state.gets.fetch_add(1, Ordering::SeqCst) + 1;
    if !state.options.delay.is_zero() {
        tokio::time::sleep(state.options.delay).await;
    }
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, mut body, builder) = match range {
        Some((s, e)) => (
            StatusCode::PARTIAL_CONTENT,
            data.slice(s as usize..=e as usize),
            builder.header("content-range", format!("bytes {s}-{e}/{len}")),
        ),
        None => (StatusCode::OK, data, builder),
    };
    if state.options.corrupt_nth == Some(n) && !body.is_empty() {
        let mut v = body.to_vec();
        let i = v.len() / 2;
        v[i] ^= 0x20;
        body = Bytes::from(v);
    }
    Ok(builder
        .status(status)
        .body(Full::new(body))
        .expect("response"))
}
