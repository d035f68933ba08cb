//! The response plan both byte servers answer a GET or HEAD of a stored
//! representation by: preconditions (RFC 9110 §13.2.2), then ranges (§14), turned
//! into a status, the headers that go with it and what the body holds. Pure: the
//! origin (from object storage) and the edge (from cached chunks) each only add
//! their own headers and produce the bytes the plan names, so the two cannot
//! drift apart on a status or a header.

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use keyframe_core::ErrorCode;

use crate::conditional::{self, Precondition, Validators};
use crate::range::{self, ByteRange, RangeDecision};

/// What is known of the representation a request selects.
pub struct Representation<'a> {
    pub validators: Validators<'a>,
    /// Its length in bytes.
    pub len: u64,
    /// Its media type, for the parts of a multipart answer.
    pub content_type: &'a str,
    /// Whether it is served in ranges (`Accept-Ranges: bytes`). An edge's stored
    /// answer other than 200 is served whole, never in ranges (RFC 9110 §14.2).
    pub ranges: bool,
    /// The multipart boundary, made only for a multipart answer.
    pub boundary: &'a (dyn Fn() -> String + Sync),
}

/// The server's limits on what a request may ask.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most ranges one request may ask for after merging.
    pub max_ranges: usize,
}

/// What the body of the answer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanBody {
    /// Nothing: a 304, or a HEAD.
    Empty,
    /// The whole representation.
    Whole,
    /// One range of it.
    Range(ByteRange),
    /// Several ranges, framed as `multipart/byteranges` with `boundary`.
    Multipart {
        boundary: String,
        ranges: Vec<ByteRange>,
    },
    /// A JSON error (`{"error","code"}`): 412 or 416.
    Error {
        code: ErrorCode,
        message: &'static str,
    },
}

/// The answer to a GET or HEAD: its status, the headers the plan sets (on top of
/// the representation's own), and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: PlanBody,
}

/// Plans the answer to a `method` (GET or HEAD) request with `headers` for
/// `rep`: a 304 or 412 when its preconditions say so, else 416 for a range that
/// misses the representation, 206 for one or several ranges (`If-Range`
/// allowing), 200 for the whole. Every answer of a representation served in
/// ranges but the 304 says `Accept-Ranges: bytes` (a 304 carries only the
/// validator and caching fields, §15.4.5).
pub fn plan(
    method: &Method,
    headers: &HeaderMap,
    rep: &Representation<'_>,
    limits: Limits,
) -> Plan {
    let head = method == Method::HEAD;
    let mut h = HeaderMap::new();
    let bytes = HeaderValue::from_static("bytes");
    match conditional::evaluate(method, headers, &rep.validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Plan {
                status: StatusCode::NOT_MODIFIED,
                headers: h,
                body: PlanBody::Empty,
            }
        }
        Precondition::Failed => {
            if rep.ranges {
                h.insert(header::ACCEPT_RANGES, bytes);
            }
            return Plan {
                status: StatusCode::PRECONDITION_FAILED,
                headers: h,
                body: PlanBody::Error {
                    code: ErrorCode::PreconditionFailed,
                    message: "a precondition of the request does not hold",
                },
            };
        }
    }
    if rep.ranges {
        h.insert(header::ACCEPT_RANGES, bytes);
    }
    let range_header = headers.get(header::RANGE).map(|v| v.as_bytes());
    let decision = if rep.ranges
        && range_header.is_some()
        && conditional::if_range_allows(headers, &rep.validators)
    {
        range::evaluate(range_header, rep.len, limits.max_ranges.max(1))
    } else {
        RangeDecision::Full
    };
    let (status, body) = match decision {
        RangeDecision::Full => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(rep.len));
            (StatusCode::OK, PlanBody::Whole)
        }
        RangeDecision::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(rep.len)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            let body = PlanBody::Error {
                code: ErrorCode::RangeNotSatisfiable,
                message: "no requested range overlaps the object",
            };
            return Plan {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                headers: h,
                body,
            };
        }
        RangeDecision::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
            if let Ok(v) = HeaderValue::from_str(&range::content_range(r, rep.len)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, PlanBody::Range(r))
        }
        RangeDecision::Partial(ranges) => {
            let boundary = (rep.boundary)();
            let total = range::multipart_len(&boundary, rep.content_type, &ranges, rep.len);
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                h.insert(header::CONTENT_TYPE, v);
            }
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            (
                StatusCode::PARTIAL_CONTENT,
                PlanBody::Multipart { boundary, ranges },
            )
        }
    };
    Plan {
        status,
        headers: h,
        body: if head { PlanBody::Empty } else { body },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const ETAG: &str = "\"abc\"";

    fn lm() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn run(method: Method, req: &[(&str, &str)], ranges: bool) -> Plan {
        let mut h = HeaderMap::new();
        for (n, v) in req {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let rep = Representation {
            validators: Validators {
                etag: ETAG,
                last_modified: Some(lm()),
            },
            len: 1000,
            content_type: "video/mp4",
            ranges,
            boundary: &|| "B".to_string(),
        };
        plan(&method, &h, &rep, Limits { max_ranges: 4 })
    }

    fn hv<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The status, body and headers of every kind of answer, for GET and HEAD.
    #[test]
    fn the_table() {
        let old = httpdate::fmt_http_date(lm() - Duration::from_secs(10));
        let same = httpdate::fmt_http_date(lm());
        let ims_same = [("if-modified-since", same.as_str())];
        let ims_old = [("if-modified-since", old.as_str())];
        let ius_old = [("if-unmodified-since", old.as_str())];
        type Row<'a> = (
            &'a [(&'a str, &'a str)],
            u16,
            PlanBody,
            &'a [(&'a str, &'a str)],
        );
        let r = |start, end| ByteRange { start, end };
        let rows: Vec<Row<'_>> = vec![
            (&[], 200, PlanBody::Whole, &[("content-length", "1000")]),
            (
                &[("range", "bytes=0-9")],
                206,
                PlanBody::Range(r(0, 10)),
                &[
                    ("content-length", "10"),
                    ("content-range", "bytes 0-9/1000"),
                ],
            ),
            (
                &[("range", "bytes=-10")],
                206,
                PlanBody::Range(r(990, 1000)),
                &[("content-range", "bytes 990-999/1000")],
            ),
            (
                &[("range", "bytes=0-9, 20-29")],
                206,
                PlanBody::Multipart {
                    boundary: "B".into(),
                    ranges: vec![r(0, 10), r(20, 30)],
                },
                &[("content-type", "multipart/byteranges; boundary=B")],
            ),
            (
                &[("range", "bytes=5000-")],
                416,
                PlanBody::Error {
                    code: ErrorCode::RangeNotSatisfiable,
                    message: "no requested range overlaps the object",
                },
                &[("content-range", "bytes */1000")],
            ),
            // A Range unit we do not know, or a malformed one: the whole (§14.2).
            (&[("range", "items=0-9")], 200, PlanBody::Whole, &[]),
            (&[("if-none-match", ETAG)], 304, PlanBody::Empty, &[]),
            (&[("if-none-match", "W/\"abc\"")], 304, PlanBody::Empty, &[]),
            (&ims_same, 304, PlanBody::Empty, &[]),
            (&ims_old, 200, PlanBody::Whole, &[]),
            (
                &[("if-match", "\"other\"")],
                412,
                PlanBody::Error {
                    code: ErrorCode::PreconditionFailed,
                    message: "a precondition of the request does not hold",
                },
                &[],
            ),
            (
                &ius_old,
                412,
                PlanBody::Error {
                    code: ErrorCode::PreconditionFailed,
                    message: "a precondition of the request does not hold",
                },
                &[],
            ),
            // If-Range that no longer matches: the whole representation.
            (
                &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
                200,
                PlanBody::Whole,
                &[("content-length", "1000")],
            ),
            (
                &[("range", "bytes=0-9"), ("if-range", ETAG)],
                206,
                PlanBody::Range(r(0, 10)),
                &[],
            ),
        ];
        for (req, status, body, want) in rows {
            for method in [Method::GET, Method::HEAD] {
                let p = run(method.clone(), req, true);
                assert_eq!(p.status.as_u16(), status, "{method} {req:?}");
                let body = match (&method, body.clone()) {
                    (&Method::HEAD, PlanBody::Error { .. }) | (_, PlanBody::Empty) => body.clone(),
                    (&Method::HEAD, _) => PlanBody::Empty,
                    (_, b) => b,
                };
                assert_eq!(p.body, body, "{method} {req:?}");
                for (n, v) in want {
                    assert_eq!(hv(&p, n), Some(*v), "{method} {req:?}: {n}");
                }
                // Every answer but the 304 says ranges are served.
                let ar = (status != 304).then_some("bytes");
                assert_eq!(hv(&p, "accept-ranges"), ar, "{method} {req:?}");
            }
        }
    }

    /// A representation not served in ranges: whole, whatever the Range, and no
    /// `Accept-Ranges`; its preconditions still hold.
    #[test]
    fn without_ranges_the_whole_is_served() {
        let p = run(Method::GET, &[("range", "bytes=0-9")], false);
        assert_eq!((p.status, &p.body), (StatusCode::OK, &PlanBody::Whole));
        assert_eq!(hv(&p, "accept-ranges"), None);
        let p = run(Method::GET, &[("range", "bytes=5000-")], false);
        assert_eq!(p.status, StatusCode::OK);
        let p = run(Method::GET, &[("if-none-match", ETAG)], false);
        assert_eq!(p.status, StatusCode::NOT_MODIFIED);
        let p = run(Method::GET, &[("if-match", "\"x\"")], false);
        assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(hv(&p, "accept-ranges"), None);
    }

    /// The boundary is made only for a multipart answer.
    #[test]
    fn the_boundary_is_made_only_when_needed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let made = AtomicUsize::new(0);
        let boundary = || {
            made.fetch_add(1, Ordering::Relaxed);
            "B".to_string()
        };
        let rep = Representation {
            validators: Validators {
                etag: ETAG,
                last_modified: None,
            },
            len: 100,
            content_type: "video/mp4",
            ranges: true,
            boundary: &boundary,
        };
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        plan(&Method::GET, &h, &rep, Limits { max_ranges: 4 });
        assert_eq!(made.load(Ordering::Relaxed), 0);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,5-6"));
        plan(&Method::GET, &h, &rep, Limits { max_ranges: 4 });
        assert_eq!(made.load(Ordering::Relaxed), 1);
    }
}
