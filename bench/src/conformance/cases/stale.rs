//! Stale responses (RFC 9111 §4.2.4): never served without permission;
//! `stale-while-revalidate` and `stale-if-error` (RFC 5861) give it; and the
//! advisory request directives (RFC 9111 §5.2.1).

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

/// Past a max-age=1 (with Date's one-second resolution).
const STALE: u64 = 2100;
/// Past a max-age=1 plus a one-second window.
const PAST_WINDOW: u64 = 2600;

/// A stored answer (`cc`), then after `after` ms the origin fails with
/// `failure`; `then` checks what the client gets.
fn failing(c: Case, cc: &str, failure: Answer, after: u64, then: Req) -> Case {
    c.answers([ok(cc), failure])
        .steps([get().from_origin(), then.after(after)])
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        failing(
            Case::new(
                "stale.not-on-500",
                "RFC 9111 §4.2.4",
                Must,
                "without permission a stale response is not served when the origin answers 500",
            ),
            "max-age=1",
            with_cc(500, ""),
            STALE,
            get().fwd().status(500),
        ),
        failing(
            Case::new(
                "stale.not-on-503",
                "RFC 9111 §4.2.4",
                Must,
                "without permission a stale response is not served when the origin answers 503",
            ),
            "max-age=1",
            with_cc(503, ""),
            STALE,
            get().fwd().status(503),
        ),
        failing(
            Case::new(
                "stale.must-revalidate",
                "RFC 9111 §5.2.2.2",
                Must,
                "must-revalidate: an error, never the stale response, when validation fails",
            ),
            "max-age=1, must-revalidate",
            with_cc(503, ""),
            STALE,
            get().fwd_any().status_in(&[503, 504]),
        ),
        failing(
            Case::new(
                "stale.proxy-revalidate",
                "RFC 9111 §5.2.2.8",
                Must,
                "proxy-revalidate: an error, never the stale response, when validation fails",
            ),
            "max-age=1, proxy-revalidate",
            with_cc(503, ""),
            STALE,
            get().fwd_any().status_in(&[503, 504]),
        ),
        failing(
            Case::new(
                "stale.s-maxage",
                "RFC 9111 §5.2.2.10",
                Must,
                "s-maxage implies proxy-revalidate: no stale response when validation fails",
            ),
            "s-maxage=1",
            with_cc(503, ""),
            STALE,
            get().fwd_any().status_in(&[503, 504]),
        ),
        Case::new(
            "stale.not-served-while-fetching",
            "RFC 9111 §4.2.4",
            Must,
            "without permission a stale response is not served while a slow origin answers",
        )
        .answers([ok("max-age=1"), ok("max-age=3600").delay(300)])
        .steps([get().from_origin(), get().after(STALE).from_origin()]),
        failing(
            Case::new(
                "stale-if-error.500",
                "RFC 5861 §4",
                May,
                "stale-if-error serves the stale response when the origin answers 500",
            ),
            "max-age=1, stale-if-error=60",
            with_cc(500, ""),
            STALE,
            get().fwd_any().status(200).same_as(1),
        ),
        failing(
            Case::new(
                "stale-if-error.503",
                "RFC 5861 §4",
                May,
                "stale-if-error serves the stale response when the origin answers 503",
            ),
            "max-age=1, stale-if-error=60",
            with_cc(503, ""),
            STALE,
            get().fwd_any().status(200).same_as(1),
        ),
        failing(
            Case::new(
                "stale-if-error.unreachable",
                "RFC 5861 §4",
                May,
                "stale-if-error serves the stale response when the origin drops the connection",
            ),
            "max-age=1, stale-if-error=60",
            dropped(),
            STALE,
            get().fwd_any().status(200).same_as(1),
        ),
        failing(
            Case::new(
                "stale-if-error.not-on-404",
                "RFC 5861 §4",
                Must,
                "a 404 is not an error stale-if-error covers: the client gets the 404",
            ),
            "max-age=1, stale-if-error=60",
            with_cc(404, ""),
            STALE,
            get().fwd().status(404),
        ),
        failing(
            Case::new(
                "stale-if-error.window-passed",
                "RFC 5861 §4",
                Must,
                "past the stale-if-error window the error reaches the client",
            ),
            "max-age=1, stale-if-error=1",
            with_cc(500, ""),
            PAST_WINDOW,
            get().fwd().status(500),
        ),
        failing(
            Case::new(
                "stale-if-error.request",
                "RFC 5861 §4",
                May,
                "stale-if-error on the request permits the stale response too",
            ),
            "max-age=1",
            with_cc(500, ""),
            STALE,
            get()
                .cc("stale-if-error=60")
                .fwd_any()
                .status(200)
                .same_as(1),
        ),
        Case::new(
            "stale-while-revalidate.serves",
            "RFC 5861 §3",
            May,
            "within stale-while-revalidate the stale response is served and refreshed behind",
        )
        .answers([
            ok("max-age=1, stale-while-revalidate=30"),
            ok("max-age=3600"),
        ])
        .steps([
            get().from_origin(),
            get().after(STALE).fwd_any().status(200).same_as(1),
            get().after(800).hit().status(200).latest(),
        ])
        .total(2),
        Case::new(
            "stale-while-revalidate.window-passed",
            "RFC 9111 §4.2.4",
            Must,
            "past the stale-while-revalidate window the origin is asked first",
        )
        .after_miss(
            ok("max-age=1, stale-while-revalidate=1"),
            get().after(PAST_WINDOW).from_origin(),
        ),
        Case::new(
            "stale-while-revalidate.no-cache",
            "RFC 9111 §5.2.2.4",
            Must,
            "no-cache overrides stale-while-revalidate",
        )
        .after_miss(
            ok("max-age=1, no-cache, stale-while-revalidate=30"),
            get().after(STALE).from_origin(),
        ),
    ];
    // Request directives (RFC 9111 §5.2.1: advisory, a cache MAY honour them).
    v.extend([
        Case::new(
            "request.no-cache",
            "RFC 9111 §5.2.1.4",
            May,
            "Cache-Control: no-cache on the request goes to the origin",
        )
        .after_miss(ok("max-age=3600"), get().cc("no-cache").from_origin()),
        Case::new(
            "request.pragma-no-cache",
            "RFC 9111 §5.4",
            May,
            "Pragma: no-cache without Cache-Control acts as no-cache",
        )
        .after_miss(
            ok("max-age=3600"),
            get().h("pragma", "no-cache").from_origin(),
        ),
        Case::new(
            "request.max-age-zero",
            "RFC 9111 §5.2.1.1",
            May,
            "max-age=0 on the request goes to the origin",
        )
        .after_miss(
            ok("max-age=3600"),
            get().after(1100).cc("max-age=0").from_origin(),
        ),
        Case::new(
            "request.max-age-older",
            "RFC 9111 §5.2.1.1",
            May,
            "max-age=50 refuses a stored response aged 100",
        )
        .after_miss(
            ok("max-age=3600").h("age", "100"),
            get().cc("max-age=50").from_origin(),
        ),
        Case::new(
            "request.min-fresh",
            "RFC 9111 §5.2.1.3",
            May,
            "min-fresh=7200 refuses a response fresh for less",
        )
        .after_miss(ok("max-age=3600"), get().cc("min-fresh=7200").from_origin()),
        Case::new(
            "request.max-stale",
            "RFC 9111 §5.2.1.2",
            May,
            "max-stale=60 accepts a response stale by a second",
        )
        .after_miss(
            ok("max-age=1"),
            get().after(STALE).cc("max-stale=60").from_cache(1),
        ),
        Case::new(
            "request.max-stale-exceeded",
            "RFC 9111 §4.2.4",
            Must,
            "max-stale=1 does not permit a response stale by more",
        )
        .after_miss(
            ok("max-age=1"),
            get().after(3000).cc("max-stale=1").from_origin(),
        ),
        Case::new(
            "request.only-if-cached-miss",
            "RFC 9111 §5.2.1.7",
            May,
            "only-if-cached with nothing stored gets a 504 without the origin",
        )
        .answers([ok("max-age=3600")])
        .steps([get().cc("only-if-cached").hit().status(504)]),
        Case::new(
            "request.only-if-cached-hit",
            "RFC 9111 §5.2.1.7",
            May,
            "only-if-cached with a fresh stored response gets it",
        )
        .after_miss(ok("max-age=3600"), get().cc("only-if-cached").from_cache(1)),
        Case::new(
            "request.no-store",
            "RFC 9111 §5.2.1.5",
            May,
            "no-store on the request: its response is not stored",
        )
        .answers([ok("max-age=3600")])
        .steps([get().cc("no-store").from_origin(), get().from_origin()]),
    ]);
    v
}
