//! What travels through the cache: hop-by-hop and `Connection`-named fields
//! (RFC 9110 §7.6.1), the client's own end-to-end fields and never another
//! client's (RFC 9111 §4.3.1), and one origin request per client request on a
//! miss, whatever the answer.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new(
            "hop.connection-named-response",
            "RFC 9110 §7.6.1",
            Must,
            "a response field named in Connection is not forwarded, on a miss or a hit",
        )
        .answers([ok("max-age=3600")
            .h("connection", "x-hop")
            .h("x-hop", "1")
            .h("x-end", "1")])
        .steps([
            get().from_origin().lacks("x-hop").has("x-end", "1"),
            get().from_cache(1).lacks("x-hop").has("x-end", "1"),
        ]),
        Case::new(
            "hop.connection-named-two",
            "RFC 9110 §7.6.1",
            Must,
            "every field Connection names is removed (x-a, x-b)",
        )
        .answers([ok("max-age=3600")
            .h("connection", "x-a, x-b")
            .h("x-a", "1")
            .h("x-b", "2")])
        .steps([
            get().from_origin().lacks("x-a").lacks("x-b"),
            get().from_cache(1).lacks("x-a").lacks("x-b"),
        ]),
        Case::new(
            "hop.connection-named-request",
            "RFC 9110 §7.6.1",
            Must,
            "a request field named in Connection does not reach the origin",
        )
        .answers([ok("")])
        .steps([get()
            .h("connection", "x-hop")
            .h("x-hop", "1")
            .from_origin()
            .up_lacks("x-hop")]),
        Case::new(
            "hop.keep-alive-response",
            "RFC 9110 §7.6.1",
            Should,
            "Keep-Alive from the origin is not forwarded",
        )
        .answers([ok("max-age=3600").h("keep-alive", "timeout=5")])
        .steps([
            get().from_origin().lacks("keep-alive"),
            get().from_cache(1).lacks("keep-alive"),
        ]),
        Case::new(
            "hop.proxy-connection-request",
            "RFC 9110 §7.6.1",
            Should,
            "Proxy-Connection from the client is not forwarded",
        )
        .answers([ok("")])
        .steps([get()
            .h("proxy-connection", "keep-alive")
            .from_origin()
            .up_lacks("proxy-connection")]),
        Case::new(
            "hop.end-to-end-request",
            "RFC 9110 §7.6",
            Should,
            "an end-to-end request field reaches the origin",
        )
        .answers([ok("")])
        .steps([get()
            .h("x-client", "c1")
            .from_origin()
            .up_has("x-client", "c1")]),
        Case::new(
            "hop.cache-control-request-forwarded",
            "RFC 9111 §5.2",
            Must,
            "a proxy passes the client's cache directives on (an extension too)",
        )
        .answers([ok("")])
        .steps([get()
            .cc("ext=1")
            .from_origin()
            .up_contains("cache-control", "ext=1")]),
        Case::new(
            "hop.query-forwarded",
            "RFC 9110 §7.1",
            Must,
            "the query reaches the origin unchanged",
        )
        .answers([ok("")])
        .steps([get()
            .at("/obj?b=2&a=1")
            .from_origin()
            .up_target("/obj?b=2&a=1")]),
        // Another client's fields never reach the origin (RFC 9111 §4.3.1: a
        // validation starts from the request being satisfied).
        Case::new(
            "client.cookie-not-on-refresh",
            "RFC 9111 §4.3.1",
            Should,
            "a refresh for Bob never carries the Cookie Alice sent",
        )
        .answers([ok("max-age=1").h("etag", "\"v1\"")])
        .steps([
            get().h("cookie", "session=alice").from_origin(),
            get().after(2100).fwd().status(200).up_lacks("cookie"),
        ]),
        Case::new(
            "client.authorization-not-on-refresh",
            "RFC 9111 §4.3.1",
            Should,
            "a refresh for Bob never carries Alice's Authorization",
        )
        .answers([ok("public, max-age=1").h("etag", "\"v1\"")])
        .steps([
            get().h("authorization", "Bearer alice").from_origin(),
            get()
                .after(2100)
                .fwd()
                .status(200)
                .up_lacks("authorization"),
        ]),
        Case::new(
            "client.fields-not-on-refresh",
            "RFC 9111 §4.3.1",
            Should,
            "a refresh carries the current client's fields, not the first one's",
        )
        .answers([ok("max-age=1").h("etag", "\"v1\"")])
        .steps([
            get()
                .h("accept-language", "en")
                .h("user-agent", "alice-agent")
                .from_origin(),
            get()
                .after(2100)
                .h("user-agent", "bob-agent")
                .fwd()
                .status(200)
                .up_lacks("accept-language")
                .up_has("user-agent", "bob-agent"),
        ]),
        Case::new(
            "client.own-cookie-on-miss",
            "RFC 9110 §7.6",
            Should,
            "the client's own Cookie reaches the origin on a miss",
        )
        .answers([ok("")])
        .steps([get()
            .h("cookie", "session=bob")
            .from_origin()
            .up_has("cookie", "session=bob")]),
        Case::new(
            "client.post-body",
            "RFC 9110 §9.3.3",
            Must,
            "a POST body reaches the origin intact",
        )
        .answers([ok("")])
        .steps([method("POST")
            .send_body("hello, origin")
            .from_origin()
            .up_body("hello, origin")
            .up_method("POST")]),
    ];
    // One origin request per client request on a miss, whatever the answer
    // says; the second request is a miss too where storing is forbidden.
    let uncacheable = [
        ("one-request.no-store", ok("no-store"), true),
        ("one-request.private", ok("private, max-age=3600"), true),
        ("one-request.no-cache", ok("no-cache"), true),
        (
            "one-request.vary-star",
            ok("max-age=3600").h("vary", "*"),
            true,
        ),
        ("one-request.status-403", answer(403), true),
        (
            "one-request.status-500",
            with_cc(500, "max-age=3600"),
            false,
        ),
        (
            "one-request.set-cookie",
            ok("max-age=3600").h("set-cookie", "session=alice"),
            false,
        ),
        ("one-request.no-freshness", ok(""), false),
    ];
    for (id, a, forbidden) in uncacheable {
        let s = a.status;
        let second = if forbidden {
            get().once()
        } else {
            get().fwd_any()
        };
        v.push(
            Case::new(
                id,
                "RFC 9111 §4",
                Should,
                "each client request on a miss costs exactly one origin request",
            )
            .answers([a])
            .steps([get().once().status(s).body("r1"), second.status(s)]),
        );
    }
    v.extend([
        Case::new(
            "hop.connection-named-304",
            "RFC 9110 §7.6.1",
            Must,
            "a field a 304 names in Connection is neither forwarded nor merged into the stored response",
        )
        .answers([
            ok("max-age=1").h("etag", "\"v1\""),
            ok("max-age=3600")
                .h("etag", "\"v1\"")
                .h("connection", "x-hop")
                .h("x-hop", "1"),
        ])
        .steps([
            get().from_origin(),
            get().after(2100).fwd().status(200).lacks("x-hop"),
            get().fwd_any().status(200).lacks("x-hop"),
        ]),
        Case::new(
            "one-request.cacheable",
            "RFC 9111 §4",
            Should,
            "a cacheable miss costs exactly one origin request, the hit none",
        )
        .answers([ok("max-age=3600")])
        .steps([get().once().status(200).body("r1"), get().from_cache(1)]),
        Case::new(
            "one-request.range-no-store",
            "RFC 9111 §4",
            Should,
            "a ranged miss on an uncacheable URL costs exactly one origin request",
        )
        .answers([ok("no-store").pattern(100)])
        .steps([get().range("bytes=10-19").once().range_of(100, 10, 19)]),
        Case::new(
            "one-request.post",
            "RFC 9111 §4",
            Should,
            "a POST costs exactly one origin request",
        )
        .answers([ok("")])
        .steps([method("POST").send_body("x").once().status(200).body("r1")]),
    ]);
    v
}
