//! Validation (RFC 9111 §4.3): conditional requests a cache sends, what a 304
//! updates and what it keeps (§3.2, §4.3.4), and clients' own preconditions.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

const INM: &str = "if-none-match";
const IMS: &str = "if-modified-since";
const LM: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

/// A response with ETag "v1" (and `X-Version: 1`) that goes stale after a second.
fn short() -> Answer {
    ok("max-age=1").h("etag", "\"v1\"").h("x-version", "1")
}

/// The same representation fresh for an hour, with `X-Version: 2` and `more`
/// header lines: the origin answers a revalidation with a 304 carrying them
/// (but representation metadata), and an unconditional request with a 200 `r2`.
fn again(more: &[(&str, &str)]) -> Answer {
    more.iter().fold(
        ok("max-age=3600").h("etag", "\"v1\"").h("x-version", "2"),
        |a, (n, v)| a.h(n, v),
    )
}

/// A GET once the stored response is stale: it reaches the origin and gets its
/// answer (`X-Version: 2`, with the stored body after a 304), never the stale
/// response served while the origin is asked behind it.
fn validated() -> Req {
    get()
        .after(2100)
        .fwd()
        .status(200)
        .body_in(&["r1", "r2"])
        .has("x-version", "2")
}

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "validate.etag",
            "RFC 9111 §4.3.1",
            Should,
            "a stale response with an ETag is revalidated with If-None-Match",
        )
        .answers([short(), again(&[])])
        .steps([get().from_origin(), validated().up_has(INM, "\"v1\"").same_as(1)]),
        Case::new(
            "validate.last-modified",
            "RFC 9111 §4.3.1",
            Should,
            "a stale response with Last-Modified is revalidated with If-Modified-Since",
        )
        .answers([
            ok("max-age=1").h("last-modified", LM).h("x-version", "1"),
            ok("max-age=3600").h("last-modified", LM).h("x-version", "2"),
        ])
        .steps([get().from_origin(), validated().up_has(IMS, LM).same_as(1)]),
        Case::new(
            "validate.304-serves-stored-body",
            "RFC 9111 §4.3.3",
            Must,
            "after a 304 the client gets a 200 with the stored body, never the 304 nor the stale response",
        )
        .answers([short(), again(&[])])
        .steps([get().from_origin(), validated()]),
        Case::new(
            "validate.304-updates-fields",
            "RFC 9111 §3.2",
            Must,
            "a 304's header fields replace the stored ones",
        )
        .answers([short(), again(&[])])
        .steps([get().from_origin().has("x-version", "1"), validated()]),
        Case::new(
            "validate.304-updates-stored",
            "RFC 9111 §4.3.4",
            Must,
            "a later hit carries the fields the 304 brought",
        )
        .answers([short(), again(&[])])
        .steps([
            get().from_origin(),
            validated(),
            get().hit().given().status(200).same_as(2).has("x-version", "2"),
        ]),
        Case::new(
            "validate.304-keeps-fields",
            "RFC 9111 §3.2",
            Must,
            "fields a 304 does not carry (Content-Type) are kept",
        )
        .answers([
            short().h("content-type", "text/x-test"),
            again(&[("content-type", "text/x-test")]),
        ])
        .steps([get().from_origin(), validated().has("content-type", "text/x-test")]),
        Case::new(
            "validate.304-freshens",
            "RFC 9111 §4.3.4",
            Should,
            "a 304 with max-age=3600 makes the stored response fresh again",
        )
        .answers([short(), again(&[])])
        .steps([get().from_origin(), validated(), get().hit().status(200).same_as(2)]),
        Case::new(
            "validate.304-without-set-cookie",
            "deploy/README.md",
            Choice,
            "a Set-Cookie on a 304 is not merged into the stored response",
        )
        .answers([short(), again(&[("set-cookie", "session=alice")])])
        .steps([
            get().from_origin(),
            validated(),
            get().fwd_any().status(200).lacks_if_cached("set-cookie"),
        ]),
        Case::new(
            "validate.200-replaces",
            "RFC 9111 §4.3.3",
            Must,
            "a full 200 to a revalidation replaces the stored response",
        )
        .answers([short(), ok("max-age=3600").h("etag", "\"v2\"").plain()])
        .steps([
            get().from_origin(),
            get().after(2100).from_origin(),
            get().hit().given().status(200).same_as(2),
        ]),
        Case::new(
            "validate.404-replaces",
            "RFC 9111 §4.3.3",
            Must,
            "a 404 to a revalidation reaches the client, not the stale response",
        )
        .answers([short(), answer(404)])
        .steps([
            get().from_origin(),
            get().after(2100).fwd().status(404).latest(),
        ]),
        // Clients' own preconditions (RFC 9111 §4.3.2, RFC 9110 §13).
        Case::new(
            "conditional.inm-hit",
            "RFC 9111 §4.3.2",
            Should,
            "If-None-Match matching a fresh stored ETag gets a 304 from the cache",
        )
        .after_miss(
            ok("max-age=3600").h("etag", "\"v1\""),
            get().h(INM, "\"v1\"").hit().status(304),
        ),
        Case::new(
            "conditional.inm-other",
            "RFC 9111 §4.3.2",
            Should,
            "If-None-Match with another ETag gets the stored 200",
        )
        .after_miss(
            ok("max-age=3600").h("etag", "\"v1\""),
            get().h(INM, "\"v0\"").from_cache(1),
        ),
        Case::new(
            "conditional.ims-hit",
            "RFC 9111 §4.3.2",
            Should,
            "If-Modified-Since at Last-Modified gets a 304 from the cache",
        )
        .after_miss(
            ok("max-age=3600").h("last-modified", LM),
            get().h(IMS, LM).hit().status(304),
        ),
        Case::new(
            "conditional.inm-pass",
            "RFC 9110 §13.2.1",
            Should,
            "on an uncacheable URL, If-None-Match goes to the origin, which answers 304",
        )
        .after_miss(
            ok("no-store").h("etag", "\"v1\""),
            get()
                .h(INM, "\"v1\"")
                .fwd()
                .up_has(INM, "\"v1\"")
                .status(304),
        ),
        Case::new(
            "conditional.ims-pass",
            "RFC 9110 §13.2.1",
            Should,
            "on an uncacheable URL, If-Modified-Since goes to the origin, which answers 304",
        )
        .after_miss(
            ok("no-store").h("last-modified", LM),
            get().h(IMS, LM).fwd().up_has(IMS, LM).status(304),
        ),
        Case::new(
            "conditional.if-match-pass",
            "RFC 9110 §13.1.1",
            Should,
            "on an uncacheable URL, If-Match reaches the origin",
        )
        .after_miss(
            ok("no-store").h("etag", "\"v1\""),
            get()
                .h("if-match", "\"v1\"")
                .fwd()
                .up_has("if-match", "\"v1\"")
                .status(200),
        ),
    ]
}
