//! Runs cases against a proxy: scripts the origin, sends each step through the
//! proxy, and checks what the client got and which requests reached the origin.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::task::JoinSet;

use super::dsl::{pattern, Case, Expect, Fwd, Level, Req, UpCheck};
use super::origin::{Logged, Script};

/// How long one client request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after its last step a case waits for stray origin requests.
pub const SETTLE: Duration = Duration::from_millis(300);

/// How long after each response a step waits before reading the origin's log,
/// so that a request the proxy sends behind its answer (a background refresh)
/// counts for the step that caused it.
pub const STEP_SETTLE: Duration = Duration::from_millis(100);

/// The result of one case.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub id: String,
    pub rfc: String,
    pub level: Level,
    pub title: String,
    pub passed: bool,
    /// A precondition did not hold (the proxy did not store what the case
    /// needs): the case could not check what it is about. Not passed either.
    #[serde(default)]
    pub unmet: bool,
    /// Why it failed: the first check that did not hold.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub ms: u64,
}

/// Where the cases run: the proxy under test and the origin behind it.
#[derive(Debug, Clone)]
pub struct Target {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port` of the proxy, as clients address it.
    proxy: String,
    /// The proxy's authority (for `{host}` in scripts).
    host: String,
    /// `http://host:port` of the origin's control API.
    origin: String,
    /// A prefix unique to this run, so runs against a long-lived proxy do not
    /// meet each other's cached answers.
    run: String,
}

impl Target {
    pub fn new(proxy: &str, origin: &str) -> anyhow::Result<Target> {
        let uri: Uri = proxy
            .parse()
            .with_context(|| format!("--proxy {proxy}: not a URL"))?;
        let (Some("http"), Some(host)) = (uri.scheme_str(), uri.authority()) else {
            bail!("--proxy {proxy}: an http:// URL with a host is needed");
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Ok(Target {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
            proxy: format!("http://{host}"),
            host: host.to_string(),
            origin: origin.trim_end_matches('/').to_owned(),
            run: format!("kfc{:x}", (nanos as u64) & 0xff_ffff),
        })
    }

    /// Whether the proxy accepts connections at all (else every case would
    /// fail the same way).
    pub async fn reachable(&self) -> anyhow::Result<()> {
        match tokio::time::timeout(REQUEST_TIMEOUT, tokio::net::TcpStream::connect(&self.host))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => bail!("--proxy {}: cannot connect: {e}", self.proxy),
            Err(_) => bail!(
                "--proxy {}: no connection within {} s",
                self.proxy,
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    }

    fn key(&self, case: &Case) -> String {
        format!("{}.{}", self.run, case.id)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<&str>,
    ) -> anyhow::Result<Got> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))?;
        for (n, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes())?,
                HeaderValue::from_str(v)?,
            );
        }
        let exchange = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Got {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("{e:#}")),
            Err(_) => bail!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        }
    }

    async fn script(&self, key: &str, script: &Script) -> anyhow::Result<()> {
        let url = format!("{}/_script/{key}", self.origin);
        let got = self
            .send(
                Method::PUT,
                &url,
                &[],
                Some(&serde_json::to_string(script)?),
            )
            .await
            .context("scripting the test origin")?;
        if got.status != 204 {
            bail!("the test origin refused the script: {}", got.status);
        }
        Ok(())
    }

    async fn log(&self, key: &str) -> anyhow::Result<Vec<Logged>> {
        let got = self
            .send(
                Method::GET,
                &format!("{}/_log/{key}", self.origin),
                &[],
                None,
            )
            .await
            .context("reading the test origin's log")?;
        serde_json::from_slice(&got.body).context("the test origin's log")
    }

    /// `{host}` (the proxy's authority) and `{prefix}` (the case's path) in `v`.
    fn fill(&self, key: &str, v: &str) -> String {
        v.replace("{host}", &self.host)
            .replace("{prefix}", &format!("/{key}"))
    }
}

/// What the client got.
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// Runs `cases` at once against `target`; the outcomes in the cases' order.
pub async fn run_all(target: &Target, cases: Vec<Case>) -> Vec<Outcome> {
    let mut set = JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    for (i, case) in cases.iter().enumerate() {
        let (target, case) = (target.clone(), case.clone());
        let task = set.spawn(async move { run_case(&target, &case).await });
        tasks.insert(task.id(), i);
    }
    let mut out: Vec<Option<Outcome>> = vec![None; cases.len()];
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((id, outcome)) => out[tasks[&id]] = Some(outcome),
            Err(e) => {
                let case = &cases[tasks[&e.id()]];
                out[tasks[&e.id()]] = Some(outcome(
                    case,
                    Err(anyhow::anyhow!("the case's task failed: {e}")),
                    0,
                ));
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// Runs one case.
pub async fn run_case(target: &Target, case: &Case) -> Outcome {
    let started = Instant::now();
    let result = execute(target, case).await;
    outcome(case, result, started.elapsed().as_millis() as u64)
}

fn outcome(case: &Case, result: anyhow::Result<()>, ms: u64) -> Outcome {
    let error = result.err();
    Outcome {
        id: case.id.to_owned(),
        rfc: case.rfc.to_owned(),
        level: case.level,
        title: case.title.to_owned(),
        passed: error.is_none(),
        unmet: error.as_ref().is_some_and(|e| e.is::<Unmet>()),
        reason: error.map(|e| format!("{e:#}")),
        ms,
    }
}

async fn execute(t: &Target, case: &Case) -> anyhow::Result<()> {
    let key = t.key(case);
    let mut answers = case.answers.clone();
    for a in &mut answers {
        for (_, v) in &mut a.headers {
            *v = t.fill(&key, v);
        }
    }
    t.script(&key, &Script { answers }).await?;
    let mut bodies: Vec<Bytes> = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        if step.after_ms > 0 {
            tokio::time::sleep(Duration::from_millis(step.after_ms)).await;
        }
        let what = describe(i + 1, step);
        let before = t.log(&key).await?.len();
        let headers: Vec<(String, String)> = step
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), t.fill(&key, v)))
            .collect();
        let method = Method::from_bytes(step.method.as_bytes())?;
        let url = format!("{}/{key}{}", t.proxy, step.path);
        let got = t
            .send(method, &url, &headers, step.body.as_deref())
            .await
            .with_context(|| what.clone())?;
        tokio::time::sleep(STEP_SETTLE).await;
        let log = t.log(&key).await?;
        let at = Seen {
            now: log.get(before..).unwrap_or_default(),
            total: log.len(),
            bodies: &bodies,
        };
        if let Err(e) = check_count(step, &got, at.now) {
            let e = format!("{what}: {e}");
            return Err(if step.given {
                Unmet(e).into()
            } else {
                anyhow::anyhow!(e)
            });
        }
        check_step(step, &got, &at).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        bodies.push(got.body);
    }
    if let Some(total) = case.expected_total() {
        tokio::time::sleep(SETTLE).await;
        let log = t.log(&key).await?;
        if log.len() != total {
            bail!(
                "after the last step the origin had seen {} request(s), expected {total}: {}",
                log.len(),
                summarize(&log)
            );
        }
    }
    Ok(())
}

fn describe(n: usize, step: &Req) -> String {
    let mut s = format!("step {n} ({} {}", step.method, step.path);
    for (name, v) in &step.headers {
        s.push_str(&format!(", {name}: {v}"));
    }
    if step.after_ms > 0 {
        s.push_str(&format!(", after {} ms", step.after_ms));
    }
    s.push(')');
    s
}

/// The requests `seen`, one short line each, for failure messages.
fn summarize(seen: &[Logged]) -> String {
    if seen.is_empty() {
        return "none".into();
    }
    seen.iter()
        .map(|l| {
            let path = l
                .target
                .trim_start_matches('/')
                .split_once('/')
                .map_or("", |x| x.1);
            let mut s = format!("{} /{path}", l.method);
            for h in [
                "range",
                "if-none-match",
                "if-modified-since",
                "cache-control",
            ] {
                if let Some(v) = l.header(h) {
                    s.push_str(&format!(" [{h}: {v}]"));
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a step is checked against besides its own response.
struct Seen<'a> {
    /// The origin requests the step caused.
    now: &'a [Logged],
    /// The origin requests of the case so far.
    total: usize,
    /// The bodies the client got at the earlier steps.
    bodies: &'a [Bytes],
}

/// A precondition of the case did not hold.
#[derive(Debug, thiserror::Error)]
#[error("n/a: {0}")]
struct Unmet(String);

/// Whether the step reached the origin as it says.
fn check_count(step: &Req, got: &Got, seen: &[Logged]) -> Result<(), String> {
    if let Fwd::AtLeast(n) = step.fwd {
        if seen.len() < n {
            return Err(format!(
                "expected the request to reach the origin, it was answered from the cache (client got {})",
                got.status
            ));
        }
    }
    if let Fwd::Exactly(n) = step.fwd {
        if seen.len() != n {
            let want = match n {
                0 => "to be answered from the cache".to_owned(),
                1 => "one origin request".to_owned(),
                n => format!("{n} origin requests"),
            };
            return Err(format!(
                "expected {want}, the origin saw {}: {} (client got {})",
                seen.len(),
                summarize(seen),
                got.status
            ));
        }
    }
    Ok(())
}

fn check_step(step: &Req, got: &Got, at: &Seen) -> Result<(), String> {
    let seen = at.now;
    for req in seen {
        for c in &step.upstream {
            check_upstream(c, req)?;
        }
    }
    for e in &step.expect {
        check_expect(e, got, at).map_err(|e| e + &request_hint(got, seen))?;
    }
    Ok(())
}

/// For a body `rN` (the answer to the origin's `N`th request of the case):
/// which request that was, and what reached the origin in this step.
fn request_hint(got: &Got, seen: &[Logged]) -> String {
    let n = std::str::from_utf8(&got.body)
        .ok()
        .and_then(|b| b.strip_prefix('r'))
        .and_then(|n| n.parse::<usize>().ok());
    match n {
        Some(n) => format!(
            " (the answer to origin request {n}; this step sent {}: {})",
            seen.len(),
            summarize(seen)
        ),
        None => String::new(),
    }
}

fn check_upstream(c: &UpCheck, req: &Logged) -> Result<(), String> {
    let at = format!("the origin's {} request", req.method);
    let ok = match c {
        UpCheck::Header(n, v) => req.header(n).as_deref() == Some(v.as_str()),
        UpCheck::Contains(n, part) => req.header(n).is_some_and(|v| v.contains(part.as_str())),
        UpCheck::Absent(n) => req.header(n).is_none(),
        UpCheck::Method(m) => req.method == *m,
        UpCheck::TargetEnds(s) => req.target.ends_with(s.as_str()),
        UpCheck::Body(b) => req.body == *b,
    };
    if ok {
        return Ok(());
    }
    Err(match c {
        UpCheck::Header(n, v) => format!("{at} had {n}: {}, expected {v}", shown(req.header(n))),
        UpCheck::Contains(n, part) => {
            format!(
                "{at} had {n}: {}, expected it to contain {part}",
                shown(req.header(n))
            )
        }
        UpCheck::Absent(n) => format!("{at} carried {n}: {}", shown(req.header(n))),
        UpCheck::Method(m) => format!("{at} should have been {m}"),
        UpCheck::TargetEnds(s) => format!("{at} was for {}, expected …{s}", req.target),
        UpCheck::Body(b) => format!("{at} had the body {:?}, expected {b:?}", req.body),
    })
}

fn shown(v: Option<String>) -> String {
    v.unwrap_or_else(|| "(none)".into())
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    if s.chars().count() > 48 {
        format!(
            "{:?}… ({} bytes)",
            s.chars().take(48).collect::<String>(),
            body.len()
        )
    } else {
        format!("{s:?}")
    }
}

fn check_expect(e: &Expect, got: &Got, at: &Seen) -> Result<(), String> {
    let cached = at.now.is_empty();
    let status = || format!("status {} with body {}", got.status, excerpt(&got.body));
    match e {
        Expect::Latest => {
            let want = format!("r{}", at.total);
            if got.body != want.as_bytes() {
                return Err(format!(
                    "expected the answer to the origin's latest request ({want:?}), got {}",
                    excerpt(&got.body)
                ));
            }
            Ok(())
        }
        Expect::SameAs(step) => match at.bodies.get(step.wrapping_sub(1)) {
            Some(b) if got.body == *b => Ok(()),
            Some(b) => Err(format!(
                "expected the body step {step} got ({}), got {}",
                excerpt(b),
                excerpt(&got.body)
            )),
            None => Err(format!(
                "the case compares with step {step}, which has not run"
            )),
        },
        Expect::Status(s) if got.status != *s => {
            Err(format!("expected status {s}, got {}", status()))
        }
        Expect::StatusIn(s) if !s.contains(&got.status) => {
            Err(format!("expected a status in {s:?}, got {}", status()))
        }
        Expect::Body(b) if got.body != b.as_slice() => Err(format!(
            "expected the body {}, got {}",
            excerpt(b),
            excerpt(&got.body)
        )),
        Expect::BodyIn(bodies) if !bodies.iter().any(|b| got.body == b.as_slice()) => Err(format!(
            "expected one of the bodies {}, got {}",
            bodies
                .iter()
                .map(|b| excerpt(b))
                .collect::<Vec<_>>()
                .join(" or "),
            excerpt(&got.body)
        )),
        Expect::Header(n, v) if got.header(n).as_deref() != Some(v.as_str()) => {
            Err(format!("expected {n}: {v}, got {}", shown(got.header(n))))
        }
        Expect::Contains(n, part) if !got.header(n).is_some_and(|v| v.contains(part.as_str())) => {
            Err(format!(
                "expected {n} to contain {part}, got {}",
                shown(got.header(n))
            ))
        }
        Expect::Present(n) if got.header(n).is_none() => {
            Err(format!("expected a {n} header, got none"))
        }
        Expect::Absent(n) if got.header(n).is_some() => Err(format!(
            "expected no {n} header, got {}",
            shown(got.header(n))
        )),
        Expect::AbsentIfCached(n) if cached && got.header(n).is_some() => Err(format!(
            "answered from the cache with {n}: {}, which must not be reused",
            shown(got.header(n))
        )),
        Expect::AgeAtLeast(min) => {
            match got.header("age").and_then(|a| a.trim().parse::<u64>().ok()) {
                Some(age) if age >= *min => Ok(()),
                other => Err(format!(
                    "expected Age ≥ {min}, got {}",
                    other.map_or_else(|| shown(got.header("age")), |a| a.to_string())
                )),
            }
        }
        Expect::Range { len, first, last } => check_range(got, *len, *first, *last),
        _ => Ok(()),
    }
}

/// A 206 of exactly `first..=last` of `pattern(len)`, or a 200 of all of it.
fn check_range(got: &Got, len: u64, first: u64, last: u64) -> Result<(), String> {
    match got.status {
        206 => {
            let want = format!("bytes {first}-{last}/{len}");
            if got.header("content-range").as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "expected Content-Range: {want}, got {}",
                    shown(got.header("content-range"))
                ));
            }
            if got.body != pattern(first, last - first + 1).as_slice() {
                return Err(format!(
                    "the 206 body is not bytes {first}-{last}: got {}",
                    excerpt(&got.body)
                ));
            }
            Ok(())
        }
        200 if got.body == pattern(0, len).as_slice() => Ok(()),
        200 => Err(format!(
            "a 200 for a range must carry the whole representation ({len} bytes), got {}",
            excerpt(&got.body)
        )),
        s => Err(format!(
            "expected 206 (bytes {first}-{last}) or 200 (all {len} bytes), got {s} with body {}",
            excerpt(&got.body)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::dsl::get;

    fn got(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Got {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        Got {
            status,
            headers: h,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn seen<'a>(now: &'a [Logged], total: usize, bodies: &'a [Bytes]) -> Seen<'a> {
        Seen { now, total, bodies }
    }

    #[test]
    fn ranges_are_the_exact_bytes_or_the_whole_body() {
        let whole = pattern(0, 100);
        assert!(check_range(&got(200, &[], &whole), 100, 10, 19).is_ok());
        assert!(check_range(&got(200, &[], &whole[..50]), 100, 10, 19).is_err());
        let part = pattern(10, 10);
        assert!(check_range(
            &got(206, &[("content-range", "bytes 10-19/100")], &part),
            100,
            10,
            19
        )
        .is_ok());
        let e = check_range(
            &got(206, &[("content-range", "bytes 0-49/100")], &part),
            100,
            10,
            19,
        );
        assert!(e.expect_err("wrong range").contains("bytes 10-19/100"));
        assert!(check_range(&got(502, &[], b"bad gateway"), 100, 10, 19).is_err());
    }

    #[test]
    fn bodies_name_the_origin_request_or_an_earlier_step() {
        let bodies = [Bytes::from_static(b"r1")];
        let at = seen(&[], 2, &bodies);
        assert!(check_expect(&Expect::Latest, &got(200, &[], b"r2"), &at).is_ok());
        assert!(check_expect(&Expect::Latest, &got(200, &[], b"r1"), &at).is_err());
        assert!(check_expect(&Expect::SameAs(1), &got(200, &[], b"r1"), &at).is_ok());
        assert!(check_expect(&Expect::SameAs(1), &got(200, &[], b"r2"), &at).is_err());
        assert!(check_expect(&Expect::SameAs(3), &got(200, &[], b"r1"), &at).is_err());
    }

    #[test]
    fn a_field_may_be_reused_only_when_the_origin_was_asked() {
        let secret = got(200, &[("x-secret", "s")], b"r1");
        let cached = seen(&[], 1, &[]);
        let e = Expect::AbsentIfCached("x-secret".into());
        assert!(check_expect(&e, &secret, &cached).is_err());
        let asked = [Logged {
            method: "GET".into(),
            target: "/c/obj".into(),
            headers: vec![("cookie".into(), "a=1".into())],
            body: String::new(),
        }];
        assert!(check_expect(&e, &secret, &seen(&asked, 1, &[])).is_ok());
        let step = get().up_lacks("cookie");
        let err =
            check_step(&step, &secret, &seen(&asked, 1, &[])).expect_err("cookie went upstream");
        assert!(err.contains("carried cookie: a=1"), "{err}");
    }

    #[test]
    fn counts_distinguish_hits_misses_and_duplicates() {
        let ok = got(200, &[], b"r1");
        let one = [Logged {
            method: "GET".into(),
            target: "/c/obj".into(),
            headers: Vec::new(),
            body: String::new(),
        }];
        let two = [one[0].clone(), one[0].clone()];
        assert!(check_count(&get().hit(), &ok, &[]).is_ok());
        assert!(check_count(&get().hit(), &ok, &one).is_err());
        assert!(check_count(&get().fwd(), &ok, &two).is_ok());
        assert!(check_count(&get().fwd(), &ok, &[]).is_err());
        let e = check_count(&get().once(), &ok, &two).expect_err("two requests");
        assert!(e.contains("the origin saw 2"), "{e}");
    }
}
