//! Fetches from upstream into the cache: the one coalesced request per missing
//! or stale object (`object`), the chunk fetches of a known representation
//! (`ensure_chunk`, `fetch_chunk`), and the pump that feeds an upstream body into
//! the chunks it covers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::chunks::{InFlight, Source};
use crate::entry::{judge, parse_content_range, Candidate, Entry, Judged, ANSWER_LIMIT};
use crate::pass::{upstream_path, upstream_path_from_key};
use crate::policy::{self, upstream_request_headers, variant_key_for, vary_names};
use crate::server::{Server, TARGETED};
use crate::upstream::Upstream;

/// Bodies of non-2xx upstream answers shared with coalesced waiters, at most.
pub(crate) const SHARED_BODY_LIMIT: usize = 64 * 1024;

/// Outcome of a coalesced object-level fetch (a miss or a revalidation).
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// An entry to serve from: fresh from upstream (`revalidated` when a 304 renewed
    /// it), with the upstream's status for `Cache-Status`.
    Entry { entry: Arc<Entry>, fwd_status: u16 },
    /// A small non-2xx answer, shared as is.
    Shared {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// Not storable: every waiter forwards its own request.
    Pass,
    /// No upstream answered.
    Failed { status: StatusCode, why: String },
}

pub(crate) type ObjectFlight = watch::Sender<Option<Outcome>>;

impl Server {
    /// Runs (or joins) the one upstream fetch for an object: a miss, or the
    /// revalidation of `stale`.
    pub(crate) async fn object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let mut rx = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(vkey) {
                Some(tx) => {
                    self.inner.chunks.stats.coalesced.inc();
                    tx.subscribe()
                }
                None => {
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
                return o;
            }
            if rx.changed().await.is_err() {
                return Outcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    why: "fetch abandoned".into(),
                };
            }
        }
    }

    pub(crate) async fn fetch_object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let cs = self.inner.chunk_size;
        let want = first_wanted_offset(&parts.headers).unwrap_or(0);
        let mut headers = match &stale {
            Some(e) => e.upstream_headers.clone(),
            None => upstream_request_headers(&parts.headers),
        };
        if let Some(e) = &stale {
            if let Some(etag) = e.headers.get(header::ETAG) {
                headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = e.last_modified() {
                headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
            }
        }
        let path_q = upstream_path(&parts.uri);
        let mut chunk = want / cs;
        let mut ranged = true;
        for _attempt in 0..2 {
            let mut h = headers.clone();
            if ranged {
                let start = chunk * cs;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-{}", start, start + cs - 1))
                {
                    h.insert(header::RANGE, v);
                }
            }
            let request_time = SystemTime::now();
            let (resp, upstream) = match self.send(Method::GET, &path_q, h.clone(), key).await {
                Ok(x) => x,
                Err(f) => return f,
            };
            let response_time = SystemTime::now();
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                if let Some(old) = &stale {
                    let renewed = Arc::new(old.refreshed(
                        resp.headers(),
                        request_time,
                        response_time,
                        TARGETED,
                    ));
                    self.store_entry(vkey.to_string(), renewed.clone());
                    return Outcome::Entry {
                        entry: renewed,
                        fwd_status: 304,
                    };
                }
            }
            if status == StatusCode::RANGE_NOT_SATISFIABLE && ranged {
                // Past the end (the client asked beyond it) or an empty object:
                // ask for the first chunk, then for the whole object.
                if chunk > 0 {
                    chunk = 0;
                } else {
                    ranged = false;
                }
                continue;
            }
            let whole_or_part = status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT;
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
            let (entry, offset) = match candidate {
                Candidate::Store { entry, body_offset } => (*entry, body_offset),
                Candidate::Answer(entry) => {
                    return self.store_answer(*entry, resp, key, parts, stale).await;
                }
                Candidate::Pass(why) if whole_or_part => {
                    tracing::debug!(key, why, "not storable; passing");
                    // Not storable because of this request's credentials says
                    // nothing of the URL: marking it would let any client make a
                    // popular object uncacheable for everyone by sending a header.
                    if !h.contains_key(header::AUTHORIZATION) {
                        self.inner.pass_marks.insert(key.to_string(), ());
                    }
                    return Outcome::Pass;
                }
                Candidate::Pass(_) => return self.shared_outcome(resp).await,
            };
            if offset % cs != 0 {
                return Outcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    why: format!("upstream answered an unaligned range at {offset}"),
                };
            }
            let vkey = self.record_vary(key, resp.headers(), &parts.headers);
            let entry = Arc::new(entry);
            let first = offset / cs;
            let last = if status == StatusCode::OK {
                entry.chunk_count(cs).saturating_sub(1)
            } else {
                first
            };
            let flights = self.claim_flights(&entry, first, last);
            self.replace_entry(vkey, &entry, stale.as_deref());
            let me = self.clone();
            let e = entry.clone();
            let body = resp.into_body();
            tokio::spawn(async move { me.pump(body, e, first, flights, upstream).await });
            return Outcome::Entry {
                entry,
                fwd_status: status.as_u16(),
            };
        }
        Outcome::Failed {
            status: StatusCode::BAD_GATEWAY,
            why: "upstream kept refusing the range".into(),
        }
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
        let cs = self.inner.chunk_size;
        if entry.length == 0 {
            return Vec::new();
        }
        (first..=last)
            .map(|i| {
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
            })
            .collect()
    }

    /// Feeds an upstream body into the chunks it covers, starting at chunk `first`.
    pub(crate) async fn pump(
        self,
        mut body: Incoming,
        entry: Arc<Entry>,
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

    /// Fetches one chunk of a known representation.
    pub(crate) async fn fetch_chunk(self, entry: Arc<Entry>, idx: u64, flight: Arc<InFlight>) {
        let cs = self.inner.chunk_size;
        let start = idx * cs;
        let end = start + entry.chunk_len(idx, cs) - 1;
        let mut h = entry.upstream_headers.clone();
        if entry.ranges {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{end}")) {
                h.insert(header::RANGE, v);
            }
            if let Some(etag) = entry
                .strong_etag()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                h.insert(header::IF_RANGE, etag);
            } else if let Some(lm) = entry.last_modified() {
                h.insert(header::IF_RANGE, lm.clone());
            }
        }
        let path_q = upstream_path_from_key(&entry.key);
        let (resp, upstream) = match self.send(Method::GET, &path_q, h, &entry.key).await {
            Ok(x) => x,
            Err(o) => {
                self.inner.chunks.abort(&flight, format!("{o:?}"));
                return;
            }
        };
        let status = resp.status();
        let matches = match (
            status,
            resp.headers()
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range),
        ) {
            (StatusCode::PARTIAL_CONTENT, Some((a, b, total))) => {
                a == start && b == end && total == entry.length
            }
            _ => false,
        };
        if entry.ranges && !matches {
            // The representation changed under us (If-Range sent the whole new
            // one) or the upstream misbehaves: forget this entry and fail.
            self.invalidate_generation(&entry);
            self.inner.chunks.abort(
                &flight,
                format!("upstream answered {status} to a chunk request"),
            );
            return;
        }
        if !entry.ranges {
            if status != StatusCode::OK {
                self.inner
                    .chunks
                    .abort(&flight, format!("upstream answered {status}"));
                return;
            }
            // No range support: read the whole object and keep every chunk.
            let mut flights: Vec<Option<Arc<InFlight>>> = Vec::new();
            for i in 0..entry.chunk_count(cs) {
                if i == idx {
                    flights.push(Some(flight.clone()));
                } else {
                    flights.push(
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
                        },
                    );
                }
            }
            self.pump(resp.into_body(), entry, 0, flights, upstream)
                .await;
            return;
        }
        self.pump(resp.into_body(), entry, idx, vec![Some(flight)], upstream)
            .await;
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

/// The first byte a request wants (to fetch the right chunk on a miss).
pub(crate) fn first_wanted_offset(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, _) = first.split_once('-')?;
    a.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_offsets() {
        let mut h = HeaderMap::new();
        assert_eq!(first_wanted_offset(&h), None);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=500-999,0-1"));
        assert_eq!(first_wanted_offset(&h), Some(500));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-500"));
        assert_eq!(first_wanted_offset(&h), None);
    }
}
