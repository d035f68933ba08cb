//! The language of the case table: what the origin answers ([`Answer`]), what
//! the client sends and expects ([`Req`]), and the case around them ([`Case`]).
//!
//! A case reads as the exchange it tests:
//!
//! ```text
//! Case::new("fresh.max-age", "RFC 9111 §4.2.1", Should, "a response with max-age is reused while fresh")
//!     .answers([ok("max-age=3600")])
//!     .steps([get().from_origin(), get().from_cache(1)])
//! ```
//!
//! The origin gives its answers in order, one per request that reaches it for
//! the case (the last one repeats). The answer to the origin's `n`th request
//! has the body `rn` unless the answer says otherwise, so a body names the
//! origin request whose answer the client got: `from_origin()` checks that the
//! client got the answer its request caused, `from_cache(1)` the body step 1 got.

use serde::{Deserialize, Serialize};

/// How strongly the RFCs ask for what a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Required: a cache that does otherwise violates a MUST or MUST NOT.
    Must,
    /// Expected of a cache that caches at all (reusing what it may reuse), or a
    /// SHOULD, "ought to", or "encouraged" of the RFCs.
    Should,
    /// Permitted and useful, not required: heuristic freshness, serving stale
    /// with `stale-while-revalidate`, honouring advisory request directives.
    May,
    /// A documented Keyframe choice stricter than the RFCs (deploy/README.md,
    /// "What an edge caches"): 5xx, `Set-Cookie` and POST answers are not stored.
    Choice,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Must, Level::Should, Level::May, Level::Choice];

    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
            Level::Choice => "CHOICE",
        }
    }
}

/// One scripted origin response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Answer {
    pub status: u16,
    /// Header lines in order; a name may repeat. Values may hold times relative
    /// to the moment of answering: `{now}`, `{now+60}`, `{now-3600}`, in the
    /// IMF-fixdate form, or `{rfc850:now+60}` and `{asctime:now+60}`. A `Date`
    /// line is added unless one is given; an empty `Date` value means none.
    pub headers: Vec<(String, String)>,
    /// The body; `None`: `r{n}` for the origin's `n`th request of the case
    /// (empty for 204 and 304).
    pub body: Option<String>,
    /// A generated body of this many bytes instead (see [`pattern`]).
    pub pattern: Option<u64>,
    /// Milliseconds to wait before answering.
    pub delay_ms: u64,
    /// Ignore `Range` and preconditions (by default a 200 honours a single
    /// `Range`, `If-Range`, `If-None-Match` and `If-Modified-Since` as an
    /// ordinary origin does).
    pub plain: bool,
    /// Answer 206 with these bytes (inclusive) of the body, whatever was asked.
    pub slice: Option<(u64, u64)>,
    /// Close the connection without answering.
    pub drop: bool,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: None,
            pattern: None,
            delay_ms: 0,
            plain: false,
            slice: None,
            drop: false,
        }
    }
}

/// An answer with `status` and no headers.
pub fn answer(status: u16) -> Answer {
    Answer {
        status,
        ..Answer::default()
    }
}

/// A 200 with `Cache-Control: cc` (none if `cc` is empty).
pub fn ok(cc: &str) -> Answer {
    with_cc(200, cc)
}

/// An answer with `status` and `Cache-Control: cc` (none if `cc` is empty).
pub fn with_cc(status: u16, cc: &str) -> Answer {
    let a = answer(status);
    if cc.is_empty() {
        a
    } else {
        a.h("cache-control", cc)
    }
}

/// The origin closes the connection without answering.
pub fn dropped() -> Answer {
    Answer {
        drop: true,
        ..Answer::default()
    }
}

impl Answer {
    /// Adds a header line.
    pub fn h(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// A generated body of `len` bytes.
    pub fn pattern(mut self, len: u64) -> Self {
        self.pattern = Some(len);
        self
    }

    pub fn plain(mut self) -> Self {
        self.plain = true;
        self
    }

    /// A 206 of bytes `first..=last` of the body, whatever the request asked.
    pub fn slice(mut self, first: u64, last: u64) -> Self {
        self.status = 206;
        self.slice = Some((first, last));
        self
    }

    pub fn delay(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }

    /// The body this answer sends whole: its text, or its generated bytes.
    pub fn full_body(&self) -> Vec<u8> {
        match self.pattern {
            Some(len) => pattern(0, len),
            None => self.body.clone().unwrap_or_default().into_bytes(),
        }
    }
}

/// Bytes `start..start+len` of the generated body every `pattern` answer uses:
/// lowercase letters, shifted every 26 bytes, so no two nearby ranges are equal.
pub fn pattern(start: u64, len: u64) -> Vec<u8> {
    (start..start + len)
        .map(|i| b'a' + ((i + i / 26) % 26) as u8)
        .collect()
}

/// What the client must see.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Status(u16),
    /// One of these statuses.
    StatusIn(Vec<u16>),
    Body(Vec<u8>),
    /// The body of the answer to the origin's latest request (`rN` after the
    /// origin's `N`th request of the case).
    Latest,
    /// The same body the client got at this step (from 1).
    SameAs(usize),
    /// One of these bodies.
    BodyIn(Vec<Vec<u8>>),
    /// The field's lines, joined with ", ", equal this.
    Header(String, String),
    /// The joined field value contains this.
    Contains(String, String),
    Present(String),
    Absent(String),
    /// Absent when the response came from the cache (the step reached no origin).
    AbsentIfCached(String),
    /// `Age` is an integer ≥ this.
    AgeAtLeast(u64),
    /// A range of a `pattern(len)` body: a 206 with exactly bytes `first..=last`
    /// and a matching `Content-Range`, or a 200 with the whole body.
    Range {
        len: u64,
        first: u64,
        last: u64,
    },
}

/// Whether a step's request must reach the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Exactly this many origin requests while the step runs (0: a hit).
    Exactly(usize),
    /// At least this many: the request must reach the origin, and how many
    /// requests that costs is left to the cases about it (`one-request.*`).
    AtLeast(usize),
    /// Not checked (a background refresh may or may not have started).
    Any,
}

/// What the origin must have seen, for each request the step caused.
#[derive(Debug, Clone, PartialEq)]
pub enum UpCheck {
    Header(String, String),
    Contains(String, String),
    Absent(String),
    Method(String),
    /// The request target (path and query) ends with this.
    TargetEnds(String),
    Body(String),
}

/// One client request of a case, and what must follow from it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Milliseconds to wait before sending (for freshness to run out).
    pub after_ms: u64,
    pub method: String,
    /// Path below the case's own prefix (`/obj` unless set).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub fwd: Fwd,
    /// `fwd` is a precondition: when it does not hold (the proxy did not store
    /// the response a later check needs), the case is reported n/a, not failed.
    pub given: bool,
    pub expect: Vec<Expect>,
    pub upstream: Vec<UpCheck>,
}

/// A GET of the case's object that must reach the origin unless told otherwise.
pub fn get() -> Req {
    method("GET")
}

pub fn head() -> Req {
    method("HEAD")
}

pub fn method(m: &str) -> Req {
    Req {
        after_ms: 0,
        method: m.to_owned(),
        path: "/obj".to_owned(),
        headers: Vec::new(),
        body: None,
        fwd: Fwd::AtLeast(1),
        given: false,
        expect: Vec::new(),
        upstream: Vec::new(),
    }
}

impl Req {
    pub fn after(mut self, ms: u64) -> Self {
        self.after_ms = ms;
        self
    }

    pub fn at(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// Adds a request header line.
    pub fn h(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Cache-Control: cc` on the request.
    pub fn cc(self, cc: &str) -> Self {
        self.h("cache-control", cc)
    }

    pub fn range(self, spec: &str) -> Self {
        self.h("range", spec)
    }

    pub fn send_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    /// The step reaches the origin (the default).
    pub fn fwd(mut self) -> Self {
        self.fwd = Fwd::AtLeast(1);
        self
    }

    /// The step reaches the origin exactly once.
    pub fn once(mut self) -> Self {
        self.fwd = Fwd::Exactly(1);
        self
    }

    /// The step is answered without the origin.
    pub fn hit(mut self) -> Self {
        self.fwd = Fwd::Exactly(0);
        self
    }

    /// What this step says about reaching the origin is a precondition of the
    /// case (a hit the later checks need), not what the case checks.
    pub fn given(mut self) -> Self {
        self.given = true;
        self
    }

    pub fn fwd_any(mut self) -> Self {
        self.fwd = Fwd::Any;
        self
    }

    fn expect(mut self, e: Expect) -> Self {
        self.expect.push(e);
        self
    }

    fn upstream(mut self, c: UpCheck) -> Self {
        self.upstream.push(c);
        self
    }

    pub fn status(self, s: u16) -> Self {
        self.expect(Expect::Status(s))
    }

    pub fn status_in(self, s: &[u16]) -> Self {
        self.expect(Expect::StatusIn(s.to_vec()))
    }

    pub fn body(self, b: &str) -> Self {
        self.expect(Expect::Body(b.as_bytes().to_vec()))
    }

    pub fn body_in(self, bodies: &[&str]) -> Self {
        self.expect(Expect::BodyIn(
            bodies.iter().map(|b| b.as_bytes().to_vec()).collect(),
        ))
    }

    pub fn has(self, name: &str, value: &str) -> Self {
        self.expect(Expect::Header(name.to_owned(), value.to_owned()))
    }

    pub fn contains(self, name: &str, part: &str) -> Self {
        self.expect(Expect::Contains(name.to_owned(), part.to_owned()))
    }

    pub fn present(self, name: &str) -> Self {
        self.expect(Expect::Present(name.to_owned()))
    }

    pub fn lacks(self, name: &str) -> Self {
        self.expect(Expect::Absent(name.to_owned()))
    }

    pub fn lacks_if_cached(self, name: &str) -> Self {
        self.expect(Expect::AbsentIfCached(name.to_owned()))
    }

    pub fn age_at_least(self, secs: u64) -> Self {
        self.expect(Expect::AgeAtLeast(secs))
    }

    /// Bytes `first..=last` of a `pattern(len)` body (206), or all of it (200).
    pub fn range_of(self, len: u64, first: u64, last: u64) -> Self {
        self.expect(Expect::Range { len, first, last })
    }

    /// A 206 with exactly bytes `first..=last` of a `pattern(len)` body.
    pub fn partial(self, len: u64, first: u64, last: u64) -> Self {
        self.status(206)
            .range_of(len, first, last)
            .has("content-range", &format!("bytes {first}-{last}/{len}"))
    }

    /// A 200 with the whole `pattern(len)` body.
    pub fn whole(self, len: u64) -> Self {
        self.status(200).expect(Expect::Body(pattern(0, len)))
    }

    pub fn up_has(self, name: &str, value: &str) -> Self {
        self.upstream(UpCheck::Header(name.to_owned(), value.to_owned()))
    }

    pub fn up_contains(self, name: &str, part: &str) -> Self {
        self.upstream(UpCheck::Contains(name.to_owned(), part.to_owned()))
    }

    pub fn up_lacks(self, name: &str) -> Self {
        self.upstream(UpCheck::Absent(name.to_owned()))
    }

    pub fn up_method(self, m: &str) -> Self {
        self.upstream(UpCheck::Method(m.to_owned()))
    }

    pub fn up_target(self, ends: &str) -> Self {
        self.upstream(UpCheck::TargetEnds(ends.to_owned()))
    }

    pub fn up_body(self, body: &str) -> Self {
        self.upstream(UpCheck::Body(body.to_owned()))
    }

    /// The body of the origin's latest answer: one this step caused.
    pub fn latest(self) -> Self {
        self.expect(Expect::Latest)
    }

    /// The body the client got at `step` (from 1).
    pub fn same_as(self, step: usize) -> Self {
        self.expect(Expect::SameAs(step))
    }

    /// Reaches the origin and gets a 200 with the body the origin just sent.
    pub fn from_origin(self) -> Self {
        self.fwd().status(200).latest()
    }

    /// Answered without the origin with a 200 and the body of `step`'s answer.
    pub fn from_cache(self, step: usize) -> Self {
        self.hit().status(200).same_as(step)
    }
}

/// One conformance case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique and stable: `group.what` (used in paths, lists and reports).
    pub id: &'static str,
    /// Where the requirement is written, e.g. `RFC 9111 §4.2.1`.
    pub rfc: &'static str,
    pub level: Level,
    /// What a conforming cache does, in one line.
    pub title: &'static str,
    pub answers: Vec<Answer>,
    pub steps: Vec<Req>,
    /// Origin requests in all, when a step's count is not checked (`fwd_any`).
    pub total: Option<usize>,
}

impl Case {
    pub fn new(id: &'static str, rfc: &'static str, level: Level, title: &'static str) -> Case {
        Case {
            id,
            rfc,
            level,
            title,
            answers: Vec::new(),
            steps: Vec::new(),
            total: None,
        }
    }

    pub fn answers(mut self, answers: impl IntoIterator<Item = Answer>) -> Case {
        self.answers = answers.into_iter().collect();
        self
    }

    pub fn steps(mut self, steps: impl IntoIterator<Item = Req>) -> Case {
        self.steps = steps.into_iter().collect();
        self
    }

    pub fn total(mut self, n: usize) -> Case {
        self.total = Some(n);
        self
    }

    /// The origin answers `a`; a first GET gets it from the origin, then `next`.
    pub fn after_miss(self, a: Answer, next: Req) -> Case {
        self.answers([a]).steps([get().from_origin(), next])
    }

    /// Origin answers `a` twice; the second GET must come from the cache.
    pub fn reused(self, a: Answer) -> Case {
        self.reused_after(0, a)
    }

    /// As [`Case::reused`], the second GET `ms` after the first.
    pub fn reused_after(self, ms: u64, a: Answer) -> Case {
        let s = a.status;
        self.answers([a.clone(), a]).steps([
            fresh(get().fwd().status(s), s),
            get().after(ms).hit().status(s).same_as(1),
        ])
    }

    /// Origin answers `a` twice; the second GET must reach it and get its answer.
    pub fn not_reused(self, a: Answer) -> Case {
        self.not_reused_after(0, a)
    }

    /// As [`Case::not_reused`], the second GET `ms` after the first.
    pub fn not_reused_after(self, ms: u64, a: Answer) -> Case {
        let s = a.status;
        self.answers([a.clone(), a]).steps([
            fresh(get().fwd().status(s), s),
            fresh(get().after(ms).fwd().status(s), s),
        ])
    }

    /// Origin requests the steps must cause in all, if every step says exactly.
    pub fn expected_total(&self) -> Option<usize> {
        self.total.or_else(|| {
            self.steps
                .iter()
                .map(|s| match s.fwd {
                    Fwd::Exactly(n) => Some(n),
                    Fwd::AtLeast(_) | Fwd::Any => None,
                })
                .sum()
        })
    }
}

/// `req` gets the origin's latest answer (an empty body for 204 and 304).
fn fresh(req: Req, status: u16) -> Req {
    if matches!(status, 204 | 304) {
        req.body("")
    } else {
        req.latest()
    }
}

/// The body the origin gives its `i`th request (from 1) of a case when the
/// answer, of `status`, names none.
pub fn default_body(i: usize, status: u16) -> String {
    if matches!(status, 204 | 304) {
        String::new()
    } else {
        format!("r{i}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_between_nearby_ranges() {
        let p = pattern(0, 100);
        assert_eq!(&p[..3], b"abc");
        assert_ne!(p[0..26], p[26..52]);
        assert_eq!(pattern(30, 5), p[30..35].to_vec());
    }

    #[test]
    fn totals_come_from_the_steps_unless_given() {
        let c = Case::new("x", "RFC", Level::Must, "t").steps([get().once(), get().hit()]);
        assert_eq!(c.expected_total(), Some(1));
        let c = c.steps([get().once(), get().fwd_any()]);
        assert_eq!(c.expected_total(), None);
        assert_eq!(c.total(2).expected_total(), Some(2));
    }
}
