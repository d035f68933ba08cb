//! A scripted origin for policy tests: each path answers with the status, headers
//! and body a test sets (honouring `Range: bytes=a-b` on 200s, and answering 304
//! to an `If-None-Match` of its `ETag`), every request is
//! recorded with its method and headers, and the origin can play dead (every
//! connection dropped without an answer) and come back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Canned {
    pub fn new(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Canned {
        Canned {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Bytes::copy_from_slice(body),
        }
    }
}

/// A request the origin saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Canned>>,
    seen: Mutex<Vec<Seen>>,
    dead: AtomicBool,
}

/// The scripted origin, on 127.0.0.1:0.
pub struct Scripted {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    pub async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if st.dead.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { answer(&st, req) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Scripted { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `path` (any method, query ignored) with `canned` from now on.
    pub fn script(&self, path: &str, canned: Canned) {
        self.state
            .routes
            .lock()
            .expect("lock")
            .insert(path.to_string(), canned);
    }

    /// Answers `method` on `path` with `canned`, before any answer for all methods.
    pub fn script_method(&self, method: &Method, path: &str, canned: Canned) {
        self.state
            .routes
            .lock()
            .expect("lock")
            .insert(format!("{method} {path}"), canned);
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// Requests seen for `path` with `method`.
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == *method && s.path == path)
            .count()
    }

    /// Drops every connection, old and new, without answering (true), or answers
    /// again (false).
    pub fn set_dead(&self, dead: bool) {
        self.state.dead.store(dead, Ordering::SeqCst);
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

fn answer(st: &State, req: Request<Incoming>) -> Answer {
    if st.dead.load(Ordering::SeqCst) {
        // hyper closes the connection without an answer.
        return Err(std::io::Error::other("playing dead"));
    }
    let path = req.uri().path().to_string();
    st.seen.lock().expect("lock").push(Seen {
        method: req.method().clone(),
        path: path.clone(),
        headers: req.headers().clone(),
    });
    let canned = {
        let routes = st.routes.lock().expect("lock");
        routes
            .get(&format!("{} {path}", req.method()))
            .or_else(|| routes.get(&path))
            .cloned()
    };
    let canned = canned.unwrap_or_else(|| Canned::new(404, &[], b"no such path"));
    let etag = canned
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.as_str());
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if canned.status == 200 && etag.is_some() && inm == etag {
        // A 304 carries the canned fields, as origins send them.
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        for (n, v) in &canned.headers {
            resp.headers_mut().append(
                http::HeaderName::try_from(n.as_str()).expect("name"),
                v.parse().expect("value"),
            );
        }
        return Ok(resp);
    }
    let mut status = canned.status;
    let mut body = canned.body.clone();
    let mut content_range = None;
    if status == 200 {
        let len = body.len();
        let range = req
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        if let Some((a, b)) = range {
            if a < len {
                let b = b.min(len - 1);
                status = 206;
                content_range = Some(format!("bytes {a}-{b}/{len}"));
                body = body.slice(a..=b);
            }
        }
    }
    let mut resp = Response::new(Full::new(if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body.clone()
    }));
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    for (n, v) in &canned.headers {
        resp.headers_mut().append(
            http::HeaderName::try_from(n.as_str()).expect("name"),
            v.parse().expect("value"),
        );
    }
    if let Some(cr) = content_range {
        resp.headers_mut()
            .insert("content-range", cr.parse().expect("value"));
    }
    resp.headers_mut()
        .insert("content-length", body.len().into());
    resp.headers_mut().insert(
        "date",
        httpdate::fmt_http_date(std::time::SystemTime::now())
            .parse()
            .expect("value"),
    );
    Ok(resp)
}
