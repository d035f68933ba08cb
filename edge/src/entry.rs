//! A cached representation: what the edge knows of an object besides its bytes.
//!
//! An entry holds the stored response headers, validators, length, the times that
//! RFC 9111's age calculation needs, and a generation number that keys its chunks.
//! Entries never change once built; revalidation builds a new one (keeping the
//! generation when the origin answers 304) and swaps it in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::policy::{self, ResponseDirectives};

/// A stored representation of a `200 OK` response, cached as chunks.
#[derive(Debug)]
pub struct Entry {
    /// Keys this representation's chunks.
    pub generation: u64,
    /// The cache key (path and query, without the token).
    pub key: String,
    /// The stored status: 200 for a representation kept in chunks, or that of a
    /// small stored answer (`inline`).
    pub status: StatusCode,
    /// The body of a stored answer other than 200 (a 404, a 301, …), kept whole
    /// with the entry: such answers are small and are never served in ranges.
    pub inline: Option<bytes::Bytes>,
    /// Stored response headers: no framing, range or hop-by-hop headers.
    pub headers: HeaderMap,
    /// Length of the whole representation.
    pub length: u64,
    /// Whether the upstream answers range requests with 206.
    pub ranges: bool,
    /// When the request that produced these headers was sent, and its answer came.
    pub request_time: SystemTime,
    pub response_time: SystemTime,
    /// The age when the answer came (RFC 9111 §4.2.3's `corrected_initial_age`),
    /// parsed once from `Age` and `Date`: [`Entry::age`] adds the resident time.
    pub initial_age: Duration,
    /// Freshness lifetime (zero when none applies).
    pub lifetime: Duration,
    pub directives: ResponseDirectives,
    /// The fields of the request that fetched this representation which its
    /// `Vary` names, with their values: sent with every chunk fetch, so that each
    /// chunk comes from the same variant, and nothing else of that request.
    pub upstream_headers: HeaderMap,
    /// Set by a soft purge: serve nothing from this entry without revalidating.
    pub purged: AtomicBool,
    /// Favour the first and last chunks (media: players read the index there).
    pub favour_ends: bool,
    /// Where the last range read from this entry ended (`u64::MAX`: none yet), to
    /// tell a sequential reader (a player) that read-ahead helps.
    pub last_end: AtomicU64,
}

impl Entry {
    /// The strong ETag, if the representation has one.
    pub fn strong_etag(&self) -> Option<&str> {
        self.headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|t| t.starts_with('"'))
    }

    /// `Last-Modified`, as sent.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(header::LAST_MODIFIED)
    }

    /// The current age of this entry at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age + now.duration_since(self.response_time).unwrap_or_default()
    }

    /// Number of chunks of `chunk_size`.
    pub fn chunk_count(&self, chunk_size: u64) -> u64 {
        self.length.div_ceil(chunk_size)
    }

    /// Length of chunk `idx`.
    pub fn chunk_len(&self, idx: u64, chunk_size: u64) -> u64 {
        let start = idx * chunk_size;
        chunk_size.min(self.length.saturating_sub(start))
    }

    /// Whether chunk `idx` is one the cache favours.
    pub fn favoured(&self, idx: u64, chunk_size: u64) -> bool {
        self.favour_ends && (idx == 0 || idx + 1 == self.chunk_count(chunk_size))
    }

    /// Whether a soft purge marked this entry.
    pub fn is_purged(&self) -> bool {
        self.purged.load(Ordering::Relaxed)
    }

    /// A copy refreshed by a 304: headers merged, times and lifetime renewed, the
    /// generation (and so the chunks) kept.
    pub fn refreshed(
        &self,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        targeted: &[&str],
    ) -> Entry {
        let mut headers = self.headers.clone();
        policy::merge_not_modified(&mut headers, not_modified);
        let headers = detached(&headers);
        let directives = ResponseDirectives::for_shared_cache(&headers, targeted);
        let lifetime =
            policy::freshness_lifetime(&headers, &directives, self.status).unwrap_or_default();
        let initial_age = policy::current_age(&headers, request_time, response_time, response_time);
        Entry {
            generation: self.generation,
            key: self.key.clone(),
            status: self.status,
            inline: self.inline.clone(),
            headers,
            length: self.length,
            ranges: self.ranges,
            initial_age,
            request_time,
            response_time,
            lifetime,
            directives,
            upstream_headers: self.upstream_headers.clone(),
            purged: AtomicBool::new(false),
            favour_ends: self.favour_ends,
            last_end: AtomicU64::new(u64::MAX),
        }
    }
}

/// A copy of `h` whose values own their bytes. hyper parses header values as slices
/// of the connection's read buffer, which also holds the start of the body: a
/// stored entry keeping those slices would pin that whole buffer (hundreds of KiB
/// on a busy upstream connection) for as long as the entry lives, unseen by the
/// entries' weigher and the memory bound.
pub fn detached(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(h.len());
    for (name, v) in h {
        let mut copy = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
        copy.set_sensitive(v.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

/// What an upstream answered to the edge's (ranged) GET, seen as a candidate entry.
#[derive(Debug)]
pub enum Candidate {
    /// Storable: the entry, and the byte offset where the response body starts.
    Store { entry: Box<Entry>, body_offset: u64 },
    /// A storable answer other than 200/206 (its body still to be read, at most
    /// `ANSWER_LIMIT` bytes, into `inline`).
    Answer(Box<Entry>),
    /// Not storable, for this reason (serve it, but do not keep it).
    Pass(String),
}

/// The largest body of a stored answer other than 200 (larger ones pass).
pub const ANSWER_LIMIT: usize = 64 * 1024;

/// Headers a cache must not store with a representation.
const UNSTORED: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// Parses `bytes a-b/total` into (a, b, total).
pub fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < total).then_some((a, b, total))
}

/// `Content-Length`, if present and a number.
fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Everything needed to judge an upstream response.
#[derive(Debug)]
pub struct Judged<'a> {
    pub key: &'a str,
    pub request_headers: &'a HeaderMap,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub request_time: SystemTime,
    pub response_time: SystemTime,
    pub generation: u64,
    pub targeted: &'a [&'a str],
}

/// Decides whether an upstream's answer to a GET becomes an entry.
pub fn judge(j: Judged<'_>) -> Candidate {
    let dirs = ResponseDirectives::for_shared_cache(j.headers, j.targeted);
    // A 206 is stored as the 200 it is part of.
    let as_status = if j.status == StatusCode::PARTIAL_CONTENT {
        StatusCode::OK
    } else {
        j.status
    };
    if j.status == StatusCode::RANGE_NOT_SATISFIABLE {
        // The answer to one request's range, not to the URL.
        return Candidate::Pass("416".into());
    }
    if as_status.is_server_error() {
        // Stored, a 5xx would stand in for an origin that may be back a second
        // later, and failover and stale-if-error treat it as a failure anyway.
        return Candidate::Pass(format!("status {}", j.status.as_u16()));
    }
    if let Err(why) = policy::storable(&Method::GET, j.request_headers, as_status, j.headers, &dirs)
    {
        return Candidate::Pass(format!("{why:?}"));
    }
    let answer = as_status != StatusCode::OK;
    if answer && content_length(j.headers).is_some_and(|n| n > ANSWER_LIMIT as u64) {
        return Candidate::Pass(format!(
            "a {} body over {ANSWER_LIMIT} bytes",
            j.status.as_u16()
        ));
    }
    let (length, ranges, body_offset) = if answer {
        // The length is the body's, once read.
        (0, false, 0)
    } else if j.status == StatusCode::PARTIAL_CONTENT {
        match j
            .headers
            .get(header::CONTENT_RANGE)
            .and_then(parse_content_range)
        {
            Some((a, _, total)) => (total, true, a),
            None => return Candidate::Pass("206 without a usable Content-Range".into()),
        }
    } else {
        match content_length(j.headers) {
            Some(len) => (len, false, 0),
            None => return Candidate::Pass("no Content-Length".into()),
        }
    };
    if j.headers.contains_key(header::CONTENT_ENCODING) && j.status == StatusCode::PARTIAL_CONTENT {
        // Ranges of an encoded representation are ranges of the encoding; fine, as
        // long as every chunk comes from the same encoding, which Vary ensures.
    }
    let mut headers = j.headers.clone();
    policy::strip_hop_by_hop(&mut headers);
    for h in UNSTORED {
        headers.remove(h);
    }
    let lifetime = policy::freshness_lifetime(j.headers, &dirs, as_status).unwrap_or_default();
    let favour_ends = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("video/") || t.starts_with("audio/"));
    // Only what selects this variant: a chunk fetch for another client must not
    // carry this one's cookies or credentials.
    let upstream_headers = policy::vary_request_headers(j.headers, j.request_headers);
    let (headers, upstream_headers) = (detached(&headers), detached(&upstream_headers));
    let entry = Box::new(Entry {
        generation: j.generation,
        key: j.key.to_string(),
        status: as_status,
        inline: None,
        initial_age: policy::current_age(
            &headers,
            j.request_time,
            j.response_time,
            j.response_time,
        ),
        headers,
        length,
        ranges,
        request_time: j.request_time,
        response_time: j.response_time,
        lifetime,
        directives: dirs,
        upstream_headers,
        purged: AtomicBool::new(false),
        favour_ends,
        last_end: AtomicU64::new(u64::MAX),
    });
    if answer {
        Candidate::Answer(entry)
    } else {
        Candidate::Store { entry, body_offset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_headers_do_not_share_the_parsed_buffer() {
        let buf = bytes::Bytes::from(b"video/mp4 and then the body...".repeat(1000));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_maybe_shared(buf.slice(0..9)).expect("value"),
        );
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        h.append(header::SET_COOKIE, secret);
        let d = detached(&h);
        assert_eq!(d, h);
        let v = d.get(header::CONTENT_TYPE).expect("content-type");
        let at = v.as_bytes().as_ptr() as usize;
        let (lo, hi) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        assert!(
            !(lo..hi).contains(&at),
            "the value still points into the buffer"
        );
        assert!(d.get(header::SET_COOKIE).expect("cookie").is_sensitive());
    }

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::try_from(*k).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn judged<'a>(status: u16, headers: &'a HeaderMap, req: &'a HeaderMap) -> Candidate {
        let now = SystemTime::now();
        judge(Judged {
            key: "/k",
            request_headers: req,
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            request_time: now,
            response_time: now,
            generation: 1,
            targeted: &[],
        })
    }

    #[test]
    fn content_ranges_parse_strictly() {
        let p = |s: &str| parse_content_range(&HeaderValue::from_str(s).expect("v"));
        assert_eq!(p("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(p("bytes 0-99/*"), None);
        assert_eq!(p("bytes 100-99/1000"), None);
        assert_eq!(p("bytes 0-1000/1000"), None);
        assert_eq!(p("items 0-1/2"), None);
    }

    #[test]
    fn partial_responses_become_whole_entries() {
        let req = hm(&[("range", "bytes=0-9"), ("accept", "*/*")]);
        let h = hm(&[
            ("content-range", "bytes 0-9/100"),
            ("content-length", "10"),
            ("cache-control", "max-age=60"),
            ("etag", "\"abc\""),
            ("content-type", "video/mp4"),
            ("connection", "close"),
        ]);
        let Candidate::Store { entry, body_offset } = judged(206, &h, &req) else {
            panic!("not stored")
        };
        assert_eq!(entry.length, 100);
        assert_eq!(body_offset, 0);
        assert!(entry.ranges && entry.favour_ends);
        assert_eq!(entry.lifetime, Duration::from_secs(60));
        assert!(!entry.headers.contains_key("content-range"));
        assert!(!entry.headers.contains_key("content-length"));
        assert!(!entry.headers.contains_key("connection"));
        assert!(
            entry.upstream_headers.is_empty(),
            "no Vary: nothing of the request"
        );
        assert_eq!(entry.strong_etag(), Some("\"abc\""));
        assert_eq!(entry.chunk_count(32), 4);
        assert_eq!(entry.chunk_len(3, 32), 4);
    }

    // Statuses other than 200 are stored when RFC 9111 allows it: explicit
    // freshness, or a heuristically cacheable status with a validator.
    #[test]
    fn other_statuses_are_stored_as_answers() {
        let req = HeaderMap::new();
        for (status, h) in [
            (
                404,
                vec![("content-length", "5"), ("cache-control", "max-age=9")],
            ),
            (
                410,
                vec![("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
            ),
            (
                301,
                vec![("location", "/b"), ("cache-control", "max-age=9")],
            ),
            (
                302,
                vec![("location", "/b"), ("cache-control", "s-maxage=9")],
            ),
            (403, vec![("expires", "Mon, 01 Jan 2024 00:00:00 GMT")]),
        ] {
            let h = hm(&h);
            let Candidate::Answer(e) = judged(status, &h, &req) else {
                panic!("{status} {h:?}: expected an answer")
            };
            assert_eq!(e.status.as_u16(), status);
            assert!(!e.ranges && e.inline.is_none());
        }
    }

    #[test]
    fn unstorable_answers_pass() {
        let req = HeaderMap::new();
        let no_store = hm(&[("content-length", "5"), ("cache-control", "no-store")]);
        assert!(matches!(judged(200, &no_store, &req), Candidate::Pass(_)));
        let private = hm(&[
            ("content-length", "5"),
            ("cache-control", "private, max-age=9"),
        ]);
        assert!(matches!(judged(200, &private, &req), Candidate::Pass(_)));
        let big = hm(&[("content-length", "70000"), ("cache-control", "max-age=9")]);
        assert!(matches!(judged(404, &big, &req), Candidate::Pass(_)));
        let failed = hm(&[("content-length", "5"), ("cache-control", "max-age=9")]);
        assert!(matches!(judged(503, &failed, &req), Candidate::Pass(_)));
        let bare = hm(&[("content-length", "5")]);
        assert!(matches!(judged(403, &bare, &req), Candidate::Pass(_)));
        let chunked = hm(&[("cache-control", "max-age=9")]);
        assert!(matches!(judged(200, &chunked, &req), Candidate::Pass(_)));
        let no_total = hm(&[
            ("content-range", "bytes 0-4/*"),
            ("cache-control", "max-age=9"),
        ]);
        assert!(matches!(judged(206, &no_total, &req), Candidate::Pass(_)));
    }
}
