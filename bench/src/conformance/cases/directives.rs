//! Response `Cache-Control` (RFC 9111 §5.2.2) and its parsing, what may be
//! stored (§3), requests with `Authorization` (§3.5), and Keyframe's documented
//! choices.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

/// A GET carrying Alice's credentials.
fn alice() -> Req {
    get().h("authorization", "Bearer alice")
}

pub fn cases() -> Vec<Case> {
    // Directives that let a shared cache reuse an answer to an authorized request.
    let auth_reuse = [
        (
            "auth.public",
            "public, max-age=3600",
            "public lets a shared cache reuse an answer to an authorized request",
        ),
        (
            "auth.s-maxage",
            "s-maxage=3600",
            "s-maxage lets a shared cache reuse an answer to an authorized request",
        ),
        (
            "auth.must-revalidate",
            "max-age=3600, must-revalidate",
            "must-revalidate lets a shared cache reuse an answer to an authorized request",
        ),
    ]
    .map(|(id, cc, title)| {
        Case::new(id, "RFC 9111 §3.5", Should, title)
            .answers([ok(cc)])
            .steps([alice().from_origin(), get().from_cache(1)])
    });
    let mut v = vec![
        // Parsing (§5.2: tokens compare case-insensitively, arguments may be quoted).
        Case::new(
            "cc.case-insensitive",
            "RFC 9111 §5.2",
            Should,
            "directive names are case-insensitive (MAX-AGE=3600)",
        )
        .reused(ok("MAX-AGE=3600")),
        Case::new(
            "cc.no-store-uppercase",
            "RFC 9111 §5.2",
            Must,
            "NO-STORE in capitals still forbids storing",
        )
        .not_reused(ok("max-age=3600, NO-STORE")),
        Case::new(
            "cc.quoted-max-age",
            "RFC 9111 §5.2",
            Should,
            "max-age=\"3600\" (quoted) is accepted",
        )
        .reused(ok("max-age=\"3600\"")),
        Case::new(
            "cc.quoted-s-maxage-zero",
            "RFC 9111 §5.2",
            Should,
            "s-maxage=\"0\" (quoted) overrides max-age=3600",
        )
        .not_reused(ok("max-age=3600, s-maxage=\"0\"")),
        Case::new(
            "cc.whitespace",
            "RFC 9110 §5.6.1",
            Should,
            "optional whitespace around list commas is accepted",
        )
        .reused(ok("  public ,\tmax-age=3600  ")),
        Case::new(
            "cc.empty-elements",
            "RFC 9110 §5.6.1",
            Should,
            "empty list elements are ignored",
        )
        .reused(ok(", ,max-age=3600,,")),
        Case::new(
            "cc.two-lines",
            "RFC 9110 §5.3",
            Should,
            "directives on two Cache-Control lines combine (public + max-age)",
        )
        .reused(ok("public").h("cache-control", "max-age=3600")),
        Case::new(
            "cc.two-lines-no-store",
            "RFC 9110 §5.3",
            Must,
            "no-store on a second Cache-Control line forbids storing",
        )
        .not_reused(ok("max-age=3600").h("cache-control", "no-store")),
        Case::new(
            "cc.duplicate-max-age",
            "RFC 9111 §4.2.1",
            Should,
            "duplicate max-age: the first is used, or the response is stale",
        )
        .not_reused_after(2100, ok("max-age=1, max-age=3600")),
        Case::new(
            "cc.max-age-negative",
            "RFC 9111 §4.2.1",
            Should,
            "an invalid max-age=-1 makes the response stale",
        )
        .not_reused(ok("max-age=-1")),
        Case::new(
            "cc.max-age-decimal",
            "RFC 9111 §4.2.1",
            Should,
            "an invalid max-age=1.5 makes the response stale",
        )
        .not_reused(ok("max-age=1.5")),
        Case::new(
            "cc.max-age-garbage",
            "RFC 9111 §4.2.1",
            Should,
            "an invalid max-age=abc makes the response stale",
        )
        .not_reused(ok("max-age=abc")),
        Case::new(
            "cc.unknown-extension",
            "RFC 9111 §5.2.3",
            Should,
            "an unrecognized directive is ignored",
        )
        .reused(ok("max-age=3600, community=\"UCI\"")),
        Case::new(
            "cc.comma-in-quotes",
            "RFC 9111 §5.2",
            Should,
            "a comma inside a quoted argument does not split directives",
        )
        .reused(ok("foo=\"bar, no-store\", max-age=3600")),
        Case::new(
            "cc.no-store-in-quotes",
            "RFC 9111 §5.2",
            Must,
            "no-store next to a quoted argument still forbids storing",
        )
        .not_reused(ok("foo=\"a,b\", no-store, max-age=3600")),
        Case::new(
            "cc.passed-to-client",
            "RFC 9111 §5.2",
            Must,
            "unknown response directives reach the client, on a miss and on a hit",
        )
        .answers([ok("max-age=3600, ext=1")])
        .steps([
            get().from_origin().contains("cache-control", "ext=1"),
            get()
                .from_cache(1)
                .given()
                .contains("cache-control", "ext=1"),
        ]),
        // What may be stored (§3) and reused (§4).
        Case::new(
            "store.no-store",
            "RFC 9111 §5.2.2.5",
            Must,
            "no-store forbids storing",
        )
        .not_reused(ok("max-age=3600, no-store")),
        Case::new(
            "store.private",
            "RFC 9111 §5.2.2.7",
            Must,
            "a shared cache does not store a private response",
        )
        .not_reused(ok("max-age=3600, private")),
        Case::new(
            "store.private-qualified",
            "RFC 9111 §5.2.2.7",
            Must,
            "private=\"X-Secret\": a reused response lacks X-Secret",
        )
        .after_miss(
            ok("max-age=3600, private=\"X-Secret\"").h("x-secret", "s1"),
            get().fwd_any().status(200).lacks_if_cached("x-secret"),
        ),
        Case::new(
            "store.no-cache",
            "RFC 9111 §5.2.2.4",
            Must,
            "no-cache: every reuse goes to the origin first",
        )
        .not_reused(ok("max-age=3600, no-cache")),
        Case::new(
            "store.no-cache-second-line",
            "RFC 9111 §5.2.2.4",
            Must,
            "no-cache on its own line wins over max-age",
        )
        .not_reused(ok("no-cache").h("cache-control", "max-age=3600")),
        Case::new(
            "store.no-cache-validated",
            "RFC 9111 §5.2.2.4",
            Must,
            "no-cache with an ETag: each request is validated at the origin",
        )
        .answers([ok("max-age=3600, no-cache").h("etag", "\"v1\"")])
        .steps([
            get().from_origin(),
            get().fwd().status(200),
            get().fwd().status(200),
        ]),
        Case::new(
            "store.no-cache-qualified",
            "RFC 9111 §5.2.2.4",
            Must,
            "no-cache=\"X-Secret\": a reused response lacks X-Secret",
        )
        .after_miss(
            ok("max-age=3600, no-cache=\"X-Secret\"").h("x-secret", "s1"),
            get().fwd_any().status(200).lacks_if_cached("x-secret"),
        ),
        Case::new(
            "store.must-understand-unknown",
            "RFC 9111 §3",
            Must,
            "must-understand on a status the cache cannot know (299): not stored",
        )
        .not_reused(with_cc(299, "max-age=3600, must-understand")),
        Case::new(
            "store.must-understand-200",
            "RFC 9111 §5.2.2.3",
            May,
            "must-understand, no-store on a 200 a cache understands may be stored",
        )
        .reused(ok("max-age=3600, must-understand, no-store")),
        Case::new(
            "store.no-freshness-no-validator",
            "RFC 9111 §4.2.2",
            May,
            "a 200 with neither freshness nor validator may be stored heuristically",
        )
        .reused(ok("public")),
        Case::new(
            "store.headers-kept",
            "RFC 9111 §3.1",
            Must,
            "a hit carries every stored header field, repeated lines included",
        )
        .after_miss(
            ok("max-age=3600")
                .h("x-custom", "one")
                .h("x-multi", "a")
                .h("x-multi", "b")
                .h("content-type", "text/x-test"),
            get()
                .from_cache(1)
                .given()
                .has("x-custom", "one")
                .has("x-multi", "a, b")
                .has("content-type", "text/x-test"),
        ),
        Case::new(
            "store.query-distinct",
            "RFC 9111 §4",
            Must,
            "a different query is a different URI",
        )
        .answers([ok("max-age=3600")])
        .steps([
            get().at("/obj?a=1").from_origin().up_target("/obj?a=1"),
            get().at("/obj?a=2").fwd().up_target("/obj?a=2"),
        ]),
        Case::new(
            "store.query-same",
            "RFC 9111 §4",
            Should,
            "the same query is the same URI",
        )
        .answers([ok("max-age=3600")])
        .steps([
            get().at("/obj?a=1").from_origin(),
            get().at("/obj?a=1").from_cache(1),
        ]),
        Case::new(
            "store.path-case",
            "RFC 9111 §4",
            Must,
            "paths differing in case are different URIs",
        )
        .answers([ok("max-age=3600")])
        .steps([
            get().at("/obj").from_origin(),
            get().at("/OBJ").from_origin(),
        ]),
        Case::new(
            "store.head-from-get",
            "RFC 9111 §4.3.5",
            Should,
            "a HEAD is answered from a stored GET response",
        )
        .after_miss(
            ok("max-age=3600").h("x-custom", "one"),
            head().hit().status(200).body("").has("x-custom", "one"),
        ),
        Case::new(
            "store.get-not-from-head",
            "RFC 9111 §4",
            Must,
            "a GET is never answered with a stored HEAD response's empty body",
        )
        .answers([ok("max-age=3600")])
        .steps([
            head().fwd().status(200),
            get().fwd_any().status(200).body_in(&["r1", "r2"]),
        ]),
        Case::new(
            "store.status-301",
            "RFC 9111 §3",
            Should,
            "a 301 with max-age is reused",
        )
        .reused(with_cc(301, "max-age=3600").h("location", "/elsewhere")),
        Case::new(
            "store.status-302",
            "RFC 9111 §3",
            Should,
            "a 302 with max-age is reused",
        )
        .reused(with_cc(302, "max-age=3600").h("location", "/elsewhere")),
        Case::new(
            "store.status-307",
            "RFC 9111 §3",
            Should,
            "a 307 with max-age is reused",
        )
        .reused(with_cc(307, "max-age=3600").h("location", "/elsewhere")),
        Case::new(
            "store.status-404",
            "RFC 9111 §3",
            Should,
            "a 404 with max-age is reused (negative caching)",
        )
        .reused(with_cc(404, "max-age=3600")),
        Case::new(
            "store.status-410",
            "RFC 9111 §3",
            Should,
            "a 410 with max-age is reused",
        )
        .reused(with_cc(410, "max-age=3600")),
        Case::new(
            "store.status-204",
            "RFC 9111 §3",
            Should,
            "a 204 with max-age is reused",
        )
        .reused(with_cc(204, "max-age=3600")),
        Case::new(
            "store.status-203",
            "RFC 9111 §3",
            Should,
            "a 203 with max-age is reused",
        )
        .reused(with_cc(203, "max-age=3600")),
        Case::new(
            "store.status-206-not-for-whole",
            "RFC 9111 §3.3",
            Must,
            "a stored 206 never answers a request for the whole object",
        )
        .answers([ok("max-age=3600").pattern(100)])
        .steps([
            get().range("bytes=0-9").fwd().range_of(100, 0, 9),
            get().fwd_any().whole(100),
        ]),
        // Unsafe methods are written through (§4).
        Case::new(
            "write-through.post",
            "RFC 9111 §4",
            Must,
            "every POST reaches the origin",
        )
        .answers([ok("max-age=3600")])
        .steps([
            method("POST").send_body("p1").from_origin().up_body("p1"),
            method("POST").send_body("p2").from_origin().up_body("p2"),
        ]),
        Case::new(
            "write-through.put",
            "RFC 9111 §4",
            Must,
            "every PUT reaches the origin",
        )
        .answers([ok("max-age=3600")])
        .steps([
            method("PUT").from_origin().up_method("PUT"),
            method("PUT").from_origin(),
        ]),
        Case::new(
            "write-through.delete",
            "RFC 9111 §4",
            Must,
            "every DELETE reaches the origin",
        )
        .answers([ok("max-age=3600")])
        .steps([
            method("DELETE").from_origin().up_method("DELETE"),
            method("DELETE").from_origin(),
        ]),
        // Requests with Authorization (§3.5).
        Case::new(
            "auth.not-reused",
            "RFC 9111 §3.5",
            Must,
            "a response to a request with Authorization is not reused (max-age only)",
        )
        .answers([ok("max-age=3600")])
        .steps([alice().from_origin(), get().from_origin()]),
        Case::new(
            "auth.not-reused-other-user",
            "RFC 9111 §3.5",
            Must,
            "an answer to Alice's Authorization never serves Bob",
        )
        .answers([ok("max-age=3600")])
        .steps([
            alice().from_origin(),
            get()
                .h("authorization", "Bearer bob")
                .from_origin()
                .up_has("authorization", "Bearer bob"),
        ]),
        Case::new(
            "auth.forwarded",
            "RFC 9110 §11.6.2",
            Must,
            "a proxy forwards Authorization unchanged",
        )
        .answers([ok("")])
        .steps([get()
            .h("authorization", "Bearer alice")
            .from_origin()
            .up_has("authorization", "Bearer alice")]),
        // Keyframe's documented choices (deploy/README.md, "What an edge caches").
        Case::new(
            "choice.500-not-stored",
            "deploy/README.md",
            Choice,
            "a 500 is never stored, even with max-age",
        )
        .not_reused(with_cc(500, "max-age=3600")),
        Case::new(
            "choice.503-not-stored",
            "deploy/README.md",
            Choice,
            "a 503 is never stored, even with s-maxage",
        )
        .not_reused(with_cc(503, "s-maxage=3600")),
        Case::new(
            "choice.502-not-stored",
            "deploy/README.md",
            Choice,
            "a 502 is never stored, even with public, max-age",
        )
        .not_reused(with_cc(502, "public, max-age=3600")),
        Case::new(
            "choice.set-cookie",
            "deploy/README.md",
            Choice,
            "a response with Set-Cookie is never stored",
        )
        .not_reused(ok("max-age=3600").h("set-cookie", "session=alice")),
        Case::new(
            "choice.set-cookie-public",
            "deploy/README.md",
            Choice,
            "a response with Set-Cookie is never stored, even public with s-maxage",
        )
        .not_reused(ok("public, s-maxage=3600").h("set-cookie", "session=alice")),
        Case::new(
            "choice.post-not-stored",
            "deploy/README.md",
            Choice,
            "a POST answer is not stored for later GETs (even with Content-Location)",
        )
        .answers([ok("max-age=3600").h("content-location", "{prefix}/obj")])
        .steps([
            method("POST").send_body("x").from_origin(),
            get().from_origin(),
        ]),
    ];
    v.extend(auth_reuse);
    v
}
