//! HTTP byte ranges (RFC 9110 §14): parsing a `Range` header against an object's
//! length, and the framing of `multipart/byteranges` bodies.
//!
//! The rules, in one place: no header → the whole object; a header that does not
//! parse → the whole object (RFC 9110 §14.2 lets a server ignore it); ranges that
//! start at or past the end are dropped, and if none is left → 416; suffixes clamp
//! to the object; overlapping and adjacent ranges merge; more ranges than a limit
//! after merging → the whole object, so a request can never amplify a response.

use bytes::Bytes;

/// A half-open byte range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// What to send for a request's `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole object.
    Full,
    /// 206 with these ranges: sorted, disjoint, non-adjacent, within the object.
    Partial(Vec<ByteRange>),
    /// 416.
    Unsatisfiable,
}

/// A parsed byte-range-spec before it meets the object's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (last = None).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in s {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses `bytes=…` into specs; None when the header does not parse.
fn parse(header: &[u8]) -> Option<Vec<Spec>> {
    let h = trim(header);
    let eq = h.iter().position(|&b| b == b'=')?;
    if !trim(&h[..eq]).eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for part in h[eq + 1..].split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() {
            // RFC 9110 list syntax tolerates empty elements.
            continue;
        }
        let dash = part.iter().position(|&b| b == b'-')?;
        let (a, b) = (trim(&part[..dash]), trim(&part[dash + 1..]));
        if a.is_empty() {
            specs.push(Spec::Suffix(parse_u64(b)?));
        } else {
            let first = parse_u64(a)?;
            let last = if b.is_empty() {
                None
            } else {
                Some(parse_u64(b)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            specs.push(Spec::From { first, last });
        }
    }
    (!specs.is_empty()).then_some(specs)
}

/// Decides what a `Range` header asks of an object of `len` bytes.
pub fn evaluate(header: Option<&[u8]>, len: u64, max_ranges: usize) -> RangeDecision {
    let Some(header) = header else {
        return RangeDecision::Full;
    };
    let Some(specs) = parse(header) else {
        return RangeDecision::Full;
    };
    let mut ranges: Vec<ByteRange> = specs
        .into_iter()
        .filter_map(|s| match s {
            Spec::From { first, last } if first < len => Some(ByteRange {
                start: first,
                end: last.map_or(len, |l| l.saturating_add(1).min(len)),
            }),
            Spec::From { .. } => None,
            Spec::Suffix(0) => None,
            Spec::Suffix(n) if len > 0 => Some(ByteRange {
                start: len.saturating_sub(n),
                end: len,
            }),
            Spec::Suffix(_) => None,
        })
        .collect();
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() > max_ranges.max(1) {
        return RangeDecision::Full;
    }
    RangeDecision::Partial(merged)
}

/// `Content-Range` of a partial response.
pub fn content_range(r: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end - 1, len)
}

/// `Content-Range` of a 416.
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// A multipart boundary derived from `seed` (e.g. the ETag): 40 hex digits after a
/// fixed prefix. Part bodies are object bytes, so no boundary can be guaranteed
/// absent from them; a 160-bit digest makes a collision practically impossible.
pub fn boundary_for(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(seed.as_bytes());
    format!("KEYFRAME_{}", hex::encode(&d[..20]))
}

/// What precedes each part: `\r\n--B\r\nContent-Type: …\r\nContent-Range: …\r\n\r\n`.
pub fn part_head(boundary: &str, content_type: &str, r: ByteRange, len: u64) -> Bytes {
    Bytes::from(format!(
        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
        content_range(r, len)
    ))
}

/// What ends the body: `\r\n--B--\r\n`.
pub fn closing(boundary: &str) -> Bytes {
    Bytes::from(format!("\r\n--{boundary}--\r\n"))
}

/// The exact length of a multipart body with these parts.
pub fn multipart_len(boundary: &str, content_type: &str, ranges: &[ByteRange], len: u64) -> u64 {
    let parts: u64 = ranges
        .iter()
        .map(|r| part_head(boundary, content_type, *r, len).len() as u64 + r.len())
        .sum();
    parts + closing(boundary).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn ev(h: &str, len: u64) -> RangeDecision {
        evaluate(Some(h.as_bytes()), len, 16)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate(None, 100, 16), RangeDecision::Full);
        assert_eq!(ev("bytes=0-9", 100), RangeDecision::Partial(vec![r(0, 10)]));
        assert_eq!(
            ev("bytes=90-", 100),
            RangeDecision::Partial(vec![r(90, 100)])
        );
        assert_eq!(
            ev("bytes=-10", 100),
            RangeDecision::Partial(vec![r(90, 100)])
        );
        assert_eq!(
            ev("bytes=-1000", 100),
            RangeDecision::Partial(vec![r(0, 100)])
        );
        assert_eq!(
            ev("bytes=50-5000", 100),
            RangeDecision::Partial(vec![r(50, 100)])
        );
        assert_eq!(
            ev("BYTES = 1-1", 100),
            RangeDecision::Partial(vec![r(1, 2)])
        );
        assert_eq!(
            ev("bytes=99-99", 100),
            RangeDecision::Partial(vec![r(99, 100)])
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(ev("bytes=100-", 100), RangeDecision::Unsatisfiable);
        assert_eq!(ev("bytes=100-200", 100), RangeDecision::Unsatisfiable);
        assert_eq!(ev("bytes=-0", 100), RangeDecision::Unsatisfiable);
        assert_eq!(ev("bytes=0-0", 0), RangeDecision::Unsatisfiable);
        assert_eq!(ev("bytes=-5", 0), RangeDecision::Unsatisfiable);
        assert_eq!(ev("bytes=200-300,400-", 100), RangeDecision::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=0x10-",
            "bytes=18446744073709551616-",
            "bytes=1 2-3",
        ] {
            assert_eq!(ev(h, 100), RangeDecision::Full, "{h:?}");
        }
        assert_eq!(
            ev("bytes=18446744073709551615-", 100),
            RangeDecision::Unsatisfiable,
            "huge but valid"
        );
        assert_eq!(
            ev("bytes=0-18446744073709551615", 100),
            RangeDecision::Partial(vec![r(0, 100)])
        );
    }

    #[test]
    fn several_ranges_merge_and_sort() {
        assert_eq!(
            ev("bytes=50-59, 0-9", 100),
            RangeDecision::Partial(vec![r(0, 10), r(50, 60)])
        );
        assert_eq!(
            ev("bytes=0-9,10-19", 100),
            RangeDecision::Partial(vec![r(0, 20)])
        );
        assert_eq!(
            ev("bytes=0-50,20-30,-60", 100),
            RangeDecision::Partial(vec![r(0, 100)])
        );
        assert_eq!(
            ev("bytes=0-1,,5-6,", 100),
            RangeDecision::Partial(vec![r(0, 2), r(5, 7)])
        );
        assert_eq!(
            ev("bytes=0-1,200-300", 100),
            RangeDecision::Partial(vec![r(0, 2)])
        );
    }

    #[test]
    fn too_many_ranges_get_the_whole_object() {
        let many: Vec<String> = (0..20).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
        let h = format!("bytes={}", many.join(","));
        assert_eq!(evaluate(Some(h.as_bytes()), 1000, 16), RangeDecision::Full);
        assert!(
            matches!(evaluate(Some(h.as_bytes()), 1000, 32), RangeDecision::Partial(v) if v.len() == 20)
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range(r(0, 10), 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_content_range(100), "bytes */100");
    }

    #[test]
    fn multipart_length_is_exact() {
        let b = boundary_for("\"etag\"");
        let ranges = [r(0, 10), r(50, 60), r(90, 100)];
        let data: Vec<u8> = (0..100u8).collect();
        let mut body = Vec::new();
        for x in ranges {
            body.extend_from_slice(&part_head(&b, "video/mp4", x, 100));
            body.extend_from_slice(&data[x.start as usize..x.end as usize]);
        }
        body.extend_from_slice(&closing(&b));
        assert_eq!(
            body.len() as u64,
            multipart_len(&b, "video/mp4", &ranges, 100)
        );
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches(&format!("--{b}\r\n")).count(), 3);
        assert!(text.ends_with(&format!("--{b}--\r\n")));
        assert!(text.contains("Content-Range: bytes 50-59/100"));
    }

    /// A slow, obvious reference: mark every byte a range covers.
    fn reference(specs: &[(Option<u64>, Option<u64>)], len: u64) -> Option<Vec<bool>> {
        let mut covered = vec![false; len as usize];
        let mut any = false;
        for &(a, b) in specs {
            let (s, e) = match (a, b) {
                (Some(a), Some(b)) => (a, b.saturating_add(1)),
                (Some(a), None) => (a, len),
                (None, Some(n)) if n > 0 => (len.saturating_sub(n), len),
                _ => continue,
            };
            if s >= len {
                continue;
            }
            any = true;
            for c in covered
                .iter_mut()
                .take(e.min(len) as usize)
                .skip(s as usize)
            {
                *c = true;
            }
        }
        any.then_some(covered)
    }

    proptest! {
        #[test]
        fn matches_the_reference(
            len in 0u64..300,
            specs in proptest::collection::vec((proptest::option::of(0u64..400), proptest::option::of(0u64..400)), 1..6),
        ) {
            // Only well-formed specs: first <= last, not both missing.
            let specs: Vec<_> = specs.into_iter()
                .filter(|(a, b)| !(a.is_none() && b.is_none()))
                .map(|(a, b)| match (a, b) { (Some(a), Some(b)) if b < a => (Some(b), Some(a)), x => x })
                .collect();
            prop_assume!(!specs.is_empty());
            let header = format!("bytes={}", specs.iter().map(|(a, b)| format!(
                "{}-{}", a.map(|x| x.to_string()).unwrap_or_default(), b.map(|x| x.to_string()).unwrap_or_default()
            )).collect::<Vec<_>>().join(","));
            let got = evaluate(Some(header.as_bytes()), len, 1000);
            match reference(&specs, len) {
                None => prop_assert_eq!(got, RangeDecision::Unsatisfiable),
                Some(covered) => {
                    let RangeDecision::Partial(ranges) = got else { return Err(TestCaseError::fail("not partial")) };
                    let mut mine = vec![false; len as usize];
                    for w in ranges.windows(2) {
                        prop_assert!(w[0].end < w[1].start, "not disjoint and non-adjacent");
                    }
                    for x in &ranges {
                        prop_assert!(x.start < x.end && x.end <= len);
                        for c in mine.iter_mut().take(x.end as usize).skip(x.start as usize) { *c = true; }
                    }
                    prop_assert_eq!(mine, covered);
                }
            }
        }

        #[test]
        fn never_panics(h in proptest::collection::vec(any::<u8>(), 0..64), len in any::<u64>()) {
            let _ = evaluate(Some(&h), len, 16);
        }
    }
}
