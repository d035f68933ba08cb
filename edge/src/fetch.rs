//! Fetches from upstream into the cache: the one coalesced request per missing
//! or stale object (`object`), the chunk fetches of a known representation
//! (`ensure_chunk`, `fetch_chunk`), and the pump that feeds an upstream body into
//! the chunks it covers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use keyframe_core::ErrorCode;
use tokio::sync::watch;

use crate::chunks::{InFlight, Source};
use crate::entry::{judge, parse_content_range, Candidate, Entry, Judged, ANSWER_LIMIT};
use crate::pass::{upstream_path, upstream_path_from_key};
use crate::policy::{self, upstream_request_headers, variant_key_for, vary_names};
use crate::server::{Server, TARGETED};
use crate::upstream::Upstream;

/// The most answers one chunk fetch takes from an origin that sends less than
/// the range asked for.
const SHORT_ANSWERS: usize = 32;

/// Bodies of non-2xx upstream answers shared with coalesced waiters, at most.
pub(crate) const SHARED_BODY_LIMIT: usize = 64 * 1024;

/// Outcome of a coalesced object-level fetch (a miss or a revalidation).
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// An entry to serve from: fresh from upstream (`revalidated` when a 304 renewed
    /// it), with the upstream's status for `Cache-Status`.
    Entry { entry: Arc<Entry>, fwd_status: u16 },
    /// A small 5xx answer that is not personal (no cookie, not `private`), shared
    /// as is: a failing origin is not asked again by every waiter.
    Shared {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// An answer that may not be stored nor shared: it is the leader's, whose
    /// request it answers (see [`Unshared`]); every waiter forwards its own.
    Unshared(Arc<Unshared>),
    /// Nothing to serve from: every waiter, the leader too, forwards its own
    /// request (a stored answer's body turned out too long or was cut).
    Pass,
    /// No upstream answered.
    Failed { status: StatusCode, why: String },
}

/// The error code of a request no upstream answered, by the status its failure
/// was given: a timeout, a request the edge could not send (400), or else a
/// failed or unreachable upstream.
pub(crate) fn failure_code(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::GATEWAY_TIMEOUT => ErrorCode::UpstreamTimeout,
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        _ => ErrorCode::UpstreamUnavailable,
    }
}

/// The upstream's answer to the leader's request, not storable: only the leader
/// takes it (once), the request that went upstream being its own.
#[derive(Debug)]
pub(crate) struct Unshared(Mutex<Option<Response<Incoming>>>);

impl Unshared {
    /// Takes the answer; None if it was taken.
    pub(crate) fn take(&self) -> Option<Response<Incoming>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub(crate) type ObjectFlight = watch::Sender<Option<Outcome>>;

impl Server {
    /// Runs (or joins) the one upstream fetch for an object: a miss, or the
    /// revalidation of `stale`. True with the outcome for the request that led the
    /// fetch (whose request went upstream), false for one that joined it.
    pub(crate) async fn object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> (Outcome, bool) {
        let mut leader = false;
        let mut rx = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(vkey) {
                Some(tx) => {
                    self.inner.chunks.stats.coalesced.inc();
                    tx.subscribe()
                }
                None => {
                    leader = true;
                    let (tx, rx) = watch::channel(None);
                    flights.insert(vkey.to_string(), tx);
                    drop(flights);
                    let me = self.clone();
                    let (k, v, p) = (key.to_string(), vkey.to_string(), parts.clone());
                    // The fetch runs on its own task, so a leader that hangs up does
                    // not strand the waiters.
                    tokio::spawn(async move {
                        let outcome = me.fetch_object(&k, &v, &p, stale).await;
                        let tx = me
                            .inner
                            .flights
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&v);
                        if let Some(tx) = tx {
                            let _ = tx.send(Some(outcome));
                        }
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                return (o, leader);
            }
            if rx.changed().await.is_err() {
                let failed = Outcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    why: "fetch abandoned".into(),
                };
                return (failed, leader);
            }
        }
    }

    /// The one upstream request of a miss or a revalidation: the client's request
    /// with its range widened to chunk boundaries (`policy::fill_range`), its
    /// validators replaced by the stored entry's. Whatever comes back serves the
    /// client: stored (a 200 or 206 as chunks, fed as it streams; a small other
    /// answer inline), or, not storable, handed to the leader as it is.
    pub(crate) async fn fetch_object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let cs = self.inner.chunk_size;
        let mut h = upstream_request_headers(&parts.headers);
        let client_range = parts
            .headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok());
        let fill = policy::fill_range(client_range, cs);
        if let Some(v) = fill.as_deref().and_then(|f| HeaderValue::from_str(f).ok()) {
            h.insert(header::RANGE, v);
            // The client's If-Range still decides between its range and the whole
            // representation; the origin judges it against what it has now.
            if let Some(ir) = parts.headers.get(header::IF_RANGE) {
                h.insert(header::IF_RANGE, ir.clone());
            }
        }
        if let Some(e) = &stale {
            if let Some(etag) = e.headers.get(header::ETAG) {
                h.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = e.last_modified() {
                h.insert(header::IF_MODIFIED_SINCE, lm.clone());
            }
        }
        let path_q = upstream_path(&parts.uri);
        let request_time = SystemTime::now();
        let (resp, upstream) = match self.send(Method::GET, &path_q, h.clone(), key).await {
            Ok(x) => x,
            Err(f) => return f,
        };
        let response_time = SystemTime::now();
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            if let Some(old) = &stale {
                let renewed =
                    Arc::new(old.refreshed(resp.headers(), request_time, response_time, TARGETED));
                self.store_entry(vkey.to_string(), renewed.clone());
                return Outcome::Entry {
                    entry: renewed,
                    fwd_status: 304,
                };
            }
        }
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let candidate = judge(Judged {
            key,
            request_headers: &h,
            status,
            headers: resp.headers(),
            request_time,
            response_time,
            generation,
            targeted: TARGETED,
        });
        match candidate {
            Candidate::Store { entry, body_offset } => {
                let sent_last = fill.as_deref().and_then(policy::fill_range_last);
                // A 200 to a Range without If-Range: the origin ignores ranges.
                let ignored_range = fill.is_some() && !h.contains_key(header::IF_RANGE);
                self.store_body(
                    *entry,
                    body_offset,
                    ignored_range,
                    sent_last,
                    resp,
                    key,
                    parts,
                    stale,
                    upstream,
                )
            }
            Candidate::Answer(entry) => self.store_answer(*entry, resp, key, parts, stale).await,
            Candidate::Pass(why) => {
                tracing::debug!(key, why, "not storable; the answer goes to its client");
                if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
                    // Not storable because of this request's credentials says
                    // nothing of the URL: marking it would let any client make a
                    // popular object uncacheable for everyone by sending a header.
                    if !h.contains_key(header::AUTHORIZATION) {
                        self.inner.pass_marks.insert(key.to_string(), ());
                    }
                }
                if status.is_server_error() && !personal(resp.headers()) {
                    return self.shared_outcome(resp).await;
                }
                Outcome::Unshared(Arc::new(Unshared(Mutex::new(Some(resp)))))
            }
        }
    }

    /// Stores a 200 or 206 as an entry and feeds its body into the whole chunks it
    /// holds, from the first chunk boundary in it: up to the last chunk the request
    /// named, or, for a request open to the end, read-ahead's worth; all of it
    /// from an origin that does not answer ranges (every chunk would cost the
    /// whole body again).
    #[allow(clippy::too_many_arguments)]
    fn store_body(
        &self,
        mut entry: Entry,
        offset: u64,
        ignored_range: bool,
        sent_last: Option<u64>,
        resp: Response<Incoming>,
        key: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
        upstream: Arc<Upstream>,
    ) -> Outcome {
        let cs = self.inner.chunk_size;
        let status = resp.status();
        let body_end = if status == StatusCode::PARTIAL_CONTENT {
            resp.headers()
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range)
                .map_or(offset, |(_, b, _)| b + 1)
        } else {
            entry.length
        };
        if status == StatusCode::OK {
            // A 200 to a plain range request: the origin ignores ranges. Else it
            // says whether it takes them.
            entry.ranges = !ignored_range
                && resp
                    .headers()
                    .get_all(header::ACCEPT_RANGES)
                    .iter()
                    .any(|v| v.as_bytes().eq_ignore_ascii_case(b"bytes"));
        }
        let vkey = self.record_vary(key, resp.headers(), &parts.headers);
        let entry = Arc::new(entry);
        self.replace_entry(vkey, &entry, stale.as_deref());
        let count = entry.chunk_count(cs);
        let first = offset.div_ceil(cs);
        // The last whole chunk in the body.
        let mut last = if body_end >= entry.length {
            count.checked_sub(1)
        } else {
            (body_end / cs).checked_sub(1)
        };
        if entry.ranges {
            let cap = match sent_last {
                Some(l) => l / cs,
                None => first + self.inner.config.read_ahead as u64,
            };
            last = last.map(|l| l.min(cap));
        }
        let fwd_status = status.as_u16();
        match last {
            Some(last) if first <= last && first < count => {
                let flights = self.claim_flights(&entry, first, last);
                let skip = first * cs - offset;
                let me = self.clone();
                let e = entry.clone();
                let body = resp.into_body();
                tokio::spawn(async move { me.pump(body, e, skip, first, flights, upstream).await });
            }
            // No whole chunk in it: the chunks come by chunk fetches.
            _ => {}
        }
        Outcome::Entry { entry, fwd_status }
    }

    /// Stores an answer other than 200 (a 404, a redirect, …) with its body, which
    /// every waiter is then served from.
    pub(crate) async fn store_answer(
        &self,
        mut entry: Entry,
        resp: Response<Incoming>,
        key: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let (head, body) = resp.into_parts();
        let body = match Limited::new(body, ANSWER_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            // Too long after all (no Content-Length), or cut short: each waiter
            // forwards its own request.
            Err(_) => return Outcome::Pass,
        };
        let vkey = self.record_vary(key, &head.headers, &parts.headers);
        entry.length = body.len() as u64;
        entry.inline = Some(body);
        let entry = Arc::new(entry);
        self.replace_entry(vkey, &entry, stale.as_deref());
        Outcome::Entry {
            entry,
            fwd_status: head.status.as_u16(),
        }
    }

    /// Records the fields a response varies on, so later requests find their
    /// variant; returns the key of the variant `req` selects.
    pub(crate) fn record_vary(&self, key: &str, resp: &HeaderMap, req: &HeaderMap) -> String {
        let names = vary_names(resp);
        if names.is_empty() {
            return key.to_string();
        }
        let vkey = variant_key_for(key, &names, req);
        self.inner.vary.insert(key.to_string(), Arc::new(names));
        vkey
    }

    /// Stores `entry` under `vkey` in place of `stale`, whose chunks go unless it
    /// is the same representation renewed.
    pub(crate) fn replace_entry(&self, vkey: String, entry: &Arc<Entry>, stale: Option<&Entry>) {
        self.store_entry(vkey, entry.clone());
        if let Some(old) = stale {
            if old.generation != entry.generation {
                self.drop_generation(old.generation);
            }
        }
    }

    /// Reads a small non-2xx answer to share with every waiter.
    pub(crate) async fn shared_outcome(&self, resp: Response<Incoming>) -> Outcome {
        let (mut parts, body) = resp.into_parts();
        match Limited::new(body, SHARED_BODY_LIMIT).collect().await {
            Ok(c) => {
                policy::strip_hop_by_hop(&mut parts.headers);
                parts.headers.remove(header::CONTENT_LENGTH);
                Outcome::Shared {
                    status: parts.status,
                    headers: parts.headers,
                    body: c.to_bytes(),
                }
            }
            Err(_) => Outcome::Pass,
        }
    }

    /// Takes the lead on chunks `first..=last` of `entry` where nobody else has.
    pub(crate) fn claim_flights(
        &self,
        entry: &Arc<Entry>,
        first: u64,
        last: u64,
    ) -> Vec<Option<Arc<InFlight>>> {
        if entry.length == 0 {
            return Vec::new();
        }
        (first..=last)
            .map(|i| self.claim_flight(entry, i))
            .collect()
    }

    /// Takes the lead on chunk `i` of `entry` unless somebody else has it (or
    /// it is stored).
    fn claim_flight(&self, entry: &Arc<Entry>, i: u64) -> Option<Arc<InFlight>> {
        let cs = self.inner.chunk_size;
        match self
            .inner
            .chunks
            .source((entry.generation, i), entry.chunk_len(i, cs))
        {
            Source::Flight {
                flight,
                leader: true,
            } => Some(flight),
            _ => None,
        }
    }

    /// Feeds an upstream body into the chunks it covers: its first `skip` bytes
    /// are dropped, then chunk `first` starts. Returns when the last flight is
    /// done (the rest of the body is not read) or the body fails.
    pub(crate) async fn pump(
        self,
        mut body: Incoming,
        entry: Arc<Entry>,
        mut skip: u64,
        first: u64,
        mut flights: Vec<Option<Arc<InFlight>>>,
        upstream: Arc<Upstream>,
    ) {
        let cs = self.inner.chunk_size;
        let chunks = &self.inner.chunks;
        let mut idx = first;
        let mut slot = 0usize;
        let mut filled = 0u64;
        let total = flights.len();
        let fail = |flights: &mut Vec<Option<Arc<InFlight>>>, from: usize, why: String| {
            for f in flights.iter_mut().skip(from).flatten() {
                chunks.abort(f, why.clone());
            }
        };
        if entry.length == 0 {
            return;
        }
        loop {
            let frame = match tokio::time::timeout(self.inner.upstream_timeout, body.frame()).await
            {
                Ok(Some(Ok(f))) => f,
                Ok(Some(Err(e))) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    fail(&mut flights, slot, format!("upstream body: {e}"));
                    return;
                }
                Ok(None) => {
                    if slot < total {
                        self.inner.metrics.upstream_errors.inc();
                        fail(&mut flights, slot, "upstream body ended early".into());
                    }
                    return;
                }
                Err(_) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    fail(&mut flights, slot, "upstream body stalled".into());
                    return;
                }
            };
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            self.inner.metrics.upstream_bytes.inc_by(data.len() as u64);
            if skip > 0 {
                let n = skip.min(data.len() as u64);
                let _ = data.split_to(n as usize);
                skip -= n;
            }
            while !data.is_empty() && slot < total {
                let len = entry.chunk_len(idx, cs);
                let take = (len - filled).min(data.len() as u64) as usize;
                let piece = data.split_to(take);
                if let Some(f) = &flights[slot] {
                    f.push(piece);
                }
                filled += take as u64;
                if filled == len {
                    if let Some(f) = flights[slot].take() {
                        if let Err(e) = chunks.complete(&f, entry.favoured(idx, cs)) {
                            tracing::warn!(error = %e, "chunk incomplete");
                        }
                    }
                    idx += 1;
                    slot += 1;
                    filled = 0;
                }
            }
            if slot >= total {
                return;
            }
        }
    }

    /// Starts fetching chunk `idx` of `entry` if nobody holds or fetches it;
    /// `ahead` for read-ahead, whose fetch is marked before it starts (so a fetch
    /// that finishes at once still goes to the window of recent chunks).
    pub(crate) fn ensure_chunk(&self, entry: &Arc<Entry>, idx: u64, ahead: bool) -> Source {
        let cs = self.inner.chunk_size;
        let src = self
            .inner
            .chunks
            .source((entry.generation, idx), entry.chunk_len(idx, cs));
        if let (true, Source::Flight { flight, .. }) = (ahead, &src) {
            flight.mark_ahead();
        }
        if let Source::Flight {
            flight,
            leader: true,
        } = &src
        {
            let me = self.clone();
            let (e, f) = (entry.clone(), flight.clone());
            let on_disk = self
                .inner
                .disk
                .as_ref()
                .is_some_and(|d| d.contains(&(entry.generation, idx)));
            tokio::spawn(async move {
                if on_disk {
                    if let Some(d) = &me.inner.disk {
                        if let Some(b) = d.read((e.generation, idx)).await {
                            if b.len() as u64 == f.len {
                                f.push(b);
                                let _ = me.inner.chunks.complete(&f, e.favoured(idx, cs));
                                return;
                            }
                        }
                    }
                }
                me.fetch_chunk(e, idx, f).await
            });
        }
        src
    }

    /// Fetches one chunk of a known representation, with only what selects its
    /// variant (never the headers of the client that asked), `If-Range` keeping
    /// it to the same representation. An origin that answers another range than
    /// asked is taken at its word: the bytes of the chunk it holds are kept and
    /// the rest asked again; one that answers the whole 200 (of the same
    /// representation) fills every chunk from it.
    pub(crate) async fn fetch_chunk(self, entry: Arc<Entry>, idx: u64, flight: Arc<InFlight>) {
        let cs = self.inner.chunk_size;
        let start = idx * cs;
        let len = entry.chunk_len(idx, cs);
        let path_q = upstream_path_from_key(&entry.key);
        let mut filled = 0u64;
        // Each answer must bring some of the chunk (an origin may cap the length
        // of the ranges it sends); a bound stops one that never finishes it.
        for _ in 0..SHORT_ANSWERS {
            let mut h = entry.upstream_headers.clone();
            h.append(header::VIA, HeaderValue::from_static("1.1 keyframe"));
            if entry.ranges {
                let from = start + filled;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes={from}-{}", start + len - 1)) {
                    h.insert(header::RANGE, v);
                }
                if let Some(v) = if_range_value(&entry) {
                    h.insert(header::IF_RANGE, v);
                }
            }
            let (resp, upstream) = match self.send(Method::GET, &path_q, h, &entry.key).await {
                Ok(x) => x,
                Err(o) => {
                    self.inner.chunks.abort(&flight, format!("{o:?}"));
                    return;
                }
            };
            let status = resp.status();
            let part = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range);
            match (status, part) {
                (StatusCode::PARTIAL_CONTENT, Some((a, b, total)))
                    if total == entry.length && a <= start + filled && b >= start + filled =>
                {
                    let want = (b + 1).min(start + len) - (start + filled);
                    let skip = start + filled - a;
                    match self
                        .fill(resp.into_body(), &flight, skip, want, &upstream)
                        .await
                    {
                        Ok(()) => filled += want,
                        Err(why) => {
                            self.inner.chunks.abort(&flight, why);
                            return;
                        }
                    }
                    if filled == len {
                        if let Err(e) = self.inner.chunks.complete(&flight, entry.favoured(idx, cs))
                        {
                            tracing::warn!(error = %e, "chunk incomplete");
                        }
                        return;
                    }
                }
                (StatusCode::OK, _)
                    if filled == 0 && same_representation(&entry, resp.headers()) =>
                {
                    // No ranges (or not any more): read the whole object and keep
                    // every chunk.
                    let mut flights: Vec<Option<Arc<InFlight>>> = Vec::new();
                    for i in 0..entry.chunk_count(cs) {
                        flights.push(if i == idx {
                            Some(flight.clone())
                        } else {
                            self.claim_flight(&entry, i)
                        });
                    }
                    self.pump(resp.into_body(), entry, 0, 0, flights, upstream)
                        .await;
                    return;
                }
                _ => {
                    // The representation changed under us (If-Range sent the whole
                    // new one, or another length) or the upstream misbehaves:
                    // forget this entry and fail.
                    self.invalidate_generation(&entry);
                    self.inner.chunks.abort(
                        &flight,
                        format!("upstream answered {status} to a chunk request"),
                    );
                    return;
                }
            }
        }
        self.inner
            .chunks
            .abort(&flight, "upstream kept answering short ranges".into());
    }

    /// Pushes `want` bytes of `body`, after its first `skip`, into `flight`.
    async fn fill(
        &self,
        mut body: Incoming,
        flight: &InFlight,
        mut skip: u64,
        mut want: u64,
        upstream: &Upstream,
    ) -> Result<(), String> {
        while want > 0 {
            let frame = match tokio::time::timeout(self.inner.upstream_timeout, body.frame()).await
            {
                Ok(Some(Ok(f))) => f,
                Ok(Some(Err(e))) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    return Err(format!("upstream body: {e}"));
                }
                Ok(None) => {
                    self.inner.metrics.upstream_errors.inc();
                    return Err("upstream body ended early".into());
                }
                Err(_) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    return Err("upstream body stalled".into());
                }
            };
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            self.inner.metrics.upstream_bytes.inc_by(data.len() as u64);
            let n = skip.min(data.len() as u64);
            let _ = data.split_to(n as usize);
            skip -= n;
            let take = want.min(data.len() as u64);
            flight.push(data.split_to(take as usize));
            want -= take;
        }
        Ok(())
    }

    pub(crate) fn invalidate_generation(&self, entry: &Entry) {
        let generation = entry.generation;
        let keys: Vec<String> = self
            .inner
            .entries
            .iter()
            .filter(|(_, e)| e.generation == generation)
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            self.inner.entries.invalidate(&k);
        }
        self.drop_generation(generation);
    }
}

/// `If-Range` for a chunk fetch: the strong ETag, else `Last-Modified`.
fn if_range_value(entry: &Entry) -> Option<HeaderValue> {
    entry
        .strong_etag()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .or_else(|| entry.last_modified().cloned())
}

/// Whether a 200 to a chunk fetch is the entry's representation: the same strong
/// ETag, or (without one) the same `Last-Modified`, and the same length.
fn same_representation(entry: &Entry, h: &HeaderMap) -> bool {
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length != Some(entry.length) {
        return false;
    }
    match (entry.strong_etag(), entry.last_modified()) {
        (Some(t), _) => h
            .get(header::ETAG)
            .is_some_and(|v| v.as_bytes() == t.as_bytes()),
        (None, Some(lm)) => h.get(header::LAST_MODIFIED) == Some(lm),
        // Nothing to tell representations apart by: the length must do.
        (None, None) => true,
    }
}

/// Whether an answer is meant for its client alone: it sets a cookie, or says
/// `private` or `no-store`.
fn personal(h: &HeaderMap) -> bool {
    let d = policy::ResponseDirectives::for_shared_cache(h, TARGETED);
    h.contains_key(header::SET_COOKIE) || d.private || d.no_store
}
