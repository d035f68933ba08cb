//! The scriptable test origin: an HTTP/1.1 server that answers each case's
//! requests from the script the case put, and records every request it got.
//!
//! Control API (JSON):
//!
//! * `PUT /_script/{case}` with `{"answers": [Answer, …]}`: the answers for the
//!   paths under `/{case}/`, given in order, one per request (the last one
//!   repeats); resets the case's log.
//! * `GET /_log/{case}`: `[{"method", "target", "headers": [[name, value], …],
//!   "body"}, …]`, every request that reached the origin under `/{case}/`.
//!
//! The answer to the `n`th request of a case has the body `rn` unless its script
//! gives one. Anything else (a proxy's health probe, say) gets a 404 and is not
//! recorded.
//! A 200 answer offers `Accept-Ranges: bytes` and honours one `Range` (with `If-Range`), `If-None-Match` and
//! `If-Modified-Since`, as an ordinary origin does, unless the answer is `plain`;
//! its 304 carries the answer's fields but the representation metadata.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::dsl::{default_body, Answer};

/// A case's script, as `PUT /_script/{case}` carries it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    pub answers: Vec<Answer>,
}

/// One request that reached the origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Logged {
    /// The field's lines joined with ", ", if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

#[derive(Default)]
struct CaseState {
    answers: Vec<Answer>,
    next: usize,
    log: Vec<Logged>,
}

type State = Arc<Mutex<HashMap<String, CaseState>>>;

/// A running origin; stops when dropped.
#[derive(Debug)]
pub struct Origin {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Origin {
    /// Starts the origin on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Origin> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("the test origin cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let state = State::default();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((s, _)) => s,
                        Err(_) => {
                            // Out of descriptors, say: give the others time to close.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                    _ = stopped.changed() => break,
                };
                let state = state.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(state.clone(), req));
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.auto_date_header(false);
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
        Ok(Origin { addr, stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Why a request got no answer: hyper closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("the script drops this connection")]
struct Dropped;

async fn serve(state: State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let path = parts.uri.path();
    if let Some(case) = path.strip_prefix("/_script/") {
        return Ok(put_script(&state, &parts.method, case, &body));
    }
    if let Some(case) = path.strip_prefix("/_log/") {
        let log = lock(&state)
            .get(case)
            .map(|c| c.log.clone())
            .unwrap_or_default();
        return Ok(json(StatusCode::OK, &log));
    }
    let case = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let answer = {
        let mut cases = lock(&state);
        let Some(c) = cases.get_mut(case).filter(|c| !c.answers.is_empty()) else {
            return Ok(text(StatusCode::NOT_FOUND, "no such case"));
        };
        c.log.push(Logged {
            method: parts.method.to_string(),
            target,
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let mut a = c.answers[c.next.min(c.answers.len() - 1)].clone();
        c.next += 1;
        if a.body.is_none() && a.pattern.is_none() {
            a.body = Some(default_body(c.next, a.status));
        }
        a
    };
    if answer.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
    }
    if answer.drop {
        return Err(Dropped);
    }
    Ok(respond(
        &answer,
        &parts.method,
        &parts.headers,
        SystemTime::now(),
    ))
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, HashMap<String, CaseState>> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn put_script(state: &State, method: &Method, case: &str, body: &[u8]) -> Response<Full<Bytes>> {
    if method != Method::PUT {
        return text(StatusCode::METHOD_NOT_ALLOWED, "PUT a script");
    }
    if case.is_empty() || case.contains('/') {
        return text(StatusCode::BAD_REQUEST, "a case is one path segment");
    }
    match serde_json::from_slice::<Script>(body) {
        Ok(script) if !script.answers.is_empty() => {
            lock(state).insert(
                case.to_owned(),
                CaseState {
                    answers: script.answers,
                    ..CaseState::default()
                },
            );
            text(StatusCode::NO_CONTENT, "")
        }
        Ok(_) => text(
            StatusCode::BAD_REQUEST,
            "a script needs at least one answer",
        ),
        Err(e) => text(StatusCode::BAD_REQUEST, &format!("bad script: {e}")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let mut r = text(status, &serde_json::to_string(value).unwrap_or_default());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The response `a` scripts for a request with `method` and `headers`, at `now`.
pub fn respond(
    a: &Answer,
    method: &Method,
    headers: &HeaderMap,
    now: SystemTime,
) -> Response<Full<Bytes>> {
    let mut out = HeaderMap::new();
    for (n, v) in &a.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&expand_times(v, now)),
        ) else {
            continue;
        };
        out.append(name, value);
    }
    match out.get(header::DATE) {
        Some(d) if d.is_empty() => {
            out.remove(header::DATE);
        }
        Some(_) => {}
        None => {
            out.insert(header::DATE, http_date(now));
        }
    }
    let full = a.full_body();
    let len = full.len() as u64;
    let mut status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = Bytes::from(full);
    if let Some((first, last)) = a.slice {
        let last = last.min(len.saturating_sub(1));
        body = body.slice(first.min(last) as usize..=last as usize);
        out.insert(header::CONTENT_RANGE, content_range(first, last, len));
    } else if status == StatusCode::OK && !a.plain {
        if not_modified(headers, &out) {
            status = StatusCode::NOT_MODIFIED;
            body = Bytes::new();
            // RFC 9110 §15.4.5: no representation metadata beyond what guides
            // cache updates.
            for h in REPRESENTATION_METADATA {
                out.remove(h);
            }
        } else if let Some(spec) = range_wanted(method, headers, &out) {
            match satisfiable(&spec, len) {
                Some((first, last)) => {
                    status = StatusCode::PARTIAL_CONTENT;
                    body = body.slice(first as usize..=last as usize);
                    out.insert(header::CONTENT_RANGE, content_range(first, last, len));
                }
                None => {
                    status = StatusCode::RANGE_NOT_SATISFIABLE;
                    body = Bytes::new();
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        out.insert(header::CONTENT_RANGE, v);
                    }
                }
            }
        }
    }
    if !a.plain && matches!(status.as_u16(), 200 | 206) {
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let bodiless = matches!(status.as_u16(), 204 | 304) || status.is_informational();
    if !bodiless {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if bodiless || method == Method::HEAD {
        body = Bytes::new();
    }
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    *r.headers_mut() = out;
    r
}

/// Fields a 304 leaves out (RFC 9110 §15.4.5), as ordinary origins do.
const REPRESENTATION_METADATA: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::CONTENT_LANGUAGE,
    header::CONTENT_ENCODING,
    header::LAST_MODIFIED,
];

fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap_or(HeaderValue::from_static(""))
}

fn content_range(first: u64, last: u64, len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {first}-{last}/{len}"))
        .unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// Replaces `{now}`, `{now±N}`, `{rfc850:now±N}`, `{asctime:now±N}` in `value`.
pub fn expand_times(value: &str, now: SystemTime) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let token = &rest[open + 1..open + close];
        match format_time(token, now) {
            Some(t) => out.push_str(&t),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn format_time(token: &str, now: SystemTime) -> Option<String> {
    let (form, expr) = token.split_once(':').unwrap_or(("imf", token));
    let offset = expr.strip_prefix("now")?;
    let secs: i64 = if offset.is_empty() {
        0
    } else {
        offset.trim_start_matches('+').parse().ok()?
    };
    let t = if secs >= 0 {
        now + Duration::from_secs(secs.unsigned_abs())
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    };
    let imf = httpdate::fmt_http_date(t);
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let p: Vec<&str> = imf.split(' ').collect();
    let [wd, day, mon, year, time, _gmt] = p.as_slice() else {
        return None;
    };
    let wd = wd.trim_end_matches(',');
    Some(match form {
        "imf" => imf.clone(),
        "rfc850" => format!(
            "{}, {day}-{mon}-{} {time} GMT",
            long_weekday(wd),
            &year[2..]
        ),
        "asctime" => format!(
            "{wd} {mon} {:>2} {time} {year}",
            day.trim_start_matches('0')
        ),
        _ => return None,
    })
}

fn long_weekday(short: &str) -> &'static str {
    match short {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    }
}

/// Whether a precondition of the request makes this 200 a 304.
fn not_modified(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let etag = resp.get(header::ETAG).and_then(|v| v.to_str().ok());
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return etag.is_some_and(|e| {
            inm.split(',')
                .any(|t| t.trim() == "*" || weak(t) == weak(e))
        });
    }
    let since = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let modified = resp
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((since, modified), (Some(s), Some(m)) if m <= s)
}

/// One range asked for by a GET whose `If-Range` (if any) matches.
fn range_wanted(method: &Method, req: &HeaderMap, resp: &HeaderMap) -> Option<String> {
    if method != Method::GET {
        return None;
    }
    let spec = req
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    if let Some(cond) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let strong_etag = resp
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|e| !e.starts_with("W/"));
        let last_modified = resp
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok());
        if Some(cond) != strong_etag && Some(cond) != last_modified {
            return None;
        }
    }
    Some(spec.trim().to_owned())
}

/// The inclusive bytes `spec` (`a-b`, `a-`, `-n`) selects of `len`, if any.
fn satisfiable(spec: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1));
    }
    let first: u64 = a.parse().ok()?;
    let last = if b.is_empty() {
        len.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (first < len && first <= last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::dsl::{answer, ok};

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn times_expand_in_all_three_formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784111777); // Sun, 06 Nov 1994 08:49:37
        assert_eq!(expand_times("{now}", t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            expand_times("x {now+60} y", t),
            "x Sun, 06 Nov 1994 08:50:37 GMT y"
        );
        assert_eq!(
            expand_times("{now-86400}", t),
            "Sat, 05 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            expand_times("{rfc850:now}", t),
            "Sunday, 06-Nov-94 08:49:37 GMT"
        );
        assert_eq!(expand_times("{asctime:now}", t), "Sun Nov  6 08:49:37 1994");
        assert_eq!(expand_times("{nope} and {", t), "{nope} and {");
        for s in ["{rfc850:now}", "{asctime:now}"] {
            let parsed = httpdate::parse_http_date(&expand_times(s, t)).expect(s);
            assert_eq!(parsed, t);
        }
    }

    #[test]
    fn ranges_and_preconditions_like_an_ordinary_origin() {
        let now = SystemTime::now();
        let a = ok("max-age=60").h("etag", "\"a\"").pattern(100);
        let get = Method::GET;
        let r = respond(&a, &get, &hdrs(&[("range", "bytes=10-19")]), now);
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], "bytes 10-19/100");
        let r = respond(&a, &get, &hdrs(&[("range", "bytes=-5")]), now);
        assert_eq!(r.headers()["content-range"], "bytes 95-99/100");
        let r = respond(&a, &get, &hdrs(&[("range", "bytes=200-")]), now);
        assert_eq!(r.status(), 416);
        let r = respond(&a, &get, &hdrs(&[("range", "bytes=0-1,5-6")]), now);
        assert_eq!(r.status(), 200);
        let r = respond(
            &a,
            &get,
            &hdrs(&[("range", "bytes=0-1"), ("if-range", "\"b\"")]),
            now,
        );
        assert_eq!(r.status(), 200);
        let r = respond(
            &a,
            &get,
            &hdrs(&[("range", "bytes=0-1"), ("if-range", "\"a\"")]),
            now,
        );
        assert_eq!(r.status(), 206);
        let r = respond(&a, &get, &hdrs(&[("if-none-match", "W/\"a\"")]), now);
        assert_eq!(r.status(), 304);
        assert!(r.headers().get("content-length").is_none());
        let r = respond(
            &a.clone().plain(),
            &get,
            &hdrs(&[("range", "bytes=0-1")]),
            now,
        );
        assert_eq!(r.status(), 200);
        let r = respond(
            &a.clone().slice(0, 49),
            &get,
            &hdrs(&[("range", "bytes=10-19")]),
            now,
        );
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], "bytes 0-49/100");
    }

    #[tokio::test]
    async fn scripts_answer_in_order_and_the_log_records_each_request() {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let origin = Origin::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("start");
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let call = |method: &str, path: &str, body: &str| {
            let req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", origin.url()))
                .header("x-test", "t")
                .body(Full::new(Bytes::from(body.to_owned())))
                .expect("request");
            let client = client.clone();
            async move {
                let resp = client.request(req).await.expect("send");
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let script = serde_json::to_string(&Script {
            answers: vec![ok("max-age=60"), answer(404).body("gone")],
        })
        .expect("json");
        assert_eq!(call("PUT", "/_script/c1", &script).await.0, 204);
        assert_eq!(call("PUT", "/_script/c2", "{\"answers\": []}").await.0, 400);
        assert_eq!(call("PUT", "/_script/c2", "not json").await.0, 400);
        assert_eq!(call("GET", "/_script/c1", "").await.0, 405);
        assert_eq!(call("GET", "/c1/obj", "").await, (200, "r1".into()));
        assert_eq!(
            call("POST", "/c1/form?x=1", "hi").await,
            (404, "gone".into())
        );
        assert_eq!(
            call("GET", "/c1/obj", "").await,
            (404, "gone".into()),
            "the last answer repeats"
        );
        assert_eq!(call("GET", "/nope/obj", "").await.0, 404);
        let (status, log) = call("GET", "/_log/c1", "").await;
        assert_eq!(status, 200);
        let log: Vec<Logged> = serde_json::from_str(&log).expect("log");
        assert_eq!(log.len(), 3);
        assert_eq!(
            (log[1].method.as_str(), log[1].target.as_str()),
            ("POST", "/c1/form?x=1")
        );
        assert_eq!(log[1].body, "hi");
        assert_eq!(log[1].header("X-Test").as_deref(), Some("t"));
    }

    #[test]
    fn dates_are_added_unless_scripted_or_suppressed() {
        let now = SystemTime::now();
        let r = respond(&ok(""), &Method::GET, &HeaderMap::new(), now);
        assert!(r.headers().contains_key("date"));
        let r = respond(&ok("").h("date", ""), &Method::GET, &HeaderMap::new(), now);
        assert!(!r.headers().contains_key("date"));
        let r = respond(
            &ok("").h("date", "{now-60}"),
            &Method::GET,
            &HeaderMap::new(),
            now,
        );
        assert_eq!(r.headers().get_all("date").iter().count(), 1);
    }
}
