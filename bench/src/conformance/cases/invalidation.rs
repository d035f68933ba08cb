//! Invalidation (RFC 9111 §4.4): a non-error answer to an unsafe method
//! invalidates the target URI (and may invalidate `Location` and
//! `Content-Location` on the same origin); safe methods invalidate nothing.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

/// A GET stored for an hour (a hit shows it is), then `unsafe_req` answered
/// with `answer`, then a GET that `after` checks.
fn around(c: Case, unsafe_req: Req, answer: Answer, after: Req) -> Case {
    c.answers([ok("max-age=3600"), answer, ok("max-age=3600")])
        .steps([
            get().from_origin(),
            get().from_cache(1).given(),
            unsafe_req,
            after,
        ])
}

/// The GET after an invalidation: the origin's third answer.
fn refetched() -> Req {
    get().from_origin()
}

/// The GET after a request that invalidates nothing: still the stored answer.
fn still_stored() -> Req {
    get().from_cache(1)
}

pub fn cases() -> Vec<Case> {
    let invalidating = [
        ("invalidate.post", "POST", 200),
        ("invalidate.put", "PUT", 201),
        ("invalidate.delete", "DELETE", 204),
        ("invalidate.patch", "PATCH", 200),
        ("invalidate.unknown-method", "REBIND", 200),
        ("invalidate.post-303", "POST", 303),
    ];
    let mut v: Vec<Case> = invalidating
        .into_iter()
        .map(|(id, m, status)| {
            around(
                Case::new(id, "RFC 9111 §4.4", Must, "a non-error answer to an unsafe (or unknown) method invalidates the target URI"),
                method(m).fwd().status(status),
                answer(status).h("location", "/elsewhere"),
                refetched(),
            )
        })
        .collect();
    v.extend([
        around(
            Case::new(
                "invalidate.post-error",
                "RFC 9111 §4.4",
                May,
                "an error answer to POST need not invalidate",
            ),
            method("POST").fwd().status(500),
            answer(500),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.location",
                "RFC 9111 §4.4",
                May,
                "a POST elsewhere invalidates the URI its Location names on the same host",
            ),
            method("POST").at("/form").fwd().status(201),
            answer(201).h("location", "http://{host}{prefix}/obj"),
            refetched(),
        ),
        around(
            Case::new(
                "invalidate.location-relative",
                "RFC 9111 §4.4",
                May,
                "a relative Location is invalidated too",
            ),
            method("POST").at("/form").fwd().status(201),
            answer(201).h("location", "{prefix}/obj"),
            refetched(),
        ),
        around(
            Case::new(
                "invalidate.content-location",
                "RFC 9111 §4.4",
                May,
                "a PUT elsewhere invalidates the URI its Content-Location names",
            ),
            method("PUT").at("/form").fwd().status(200),
            ok("").h("content-location", "{prefix}/obj"),
            refetched(),
        ),
        around(
            Case::new(
                "invalidate.location-other-host",
                "RFC 9111 §4.4",
                Must,
                "a Location on another host invalidates nothing here",
            ),
            method("POST").at("/form").fwd().status(201),
            answer(201).h("location", "http://other.example{prefix}/obj"),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.content-location-other-host",
                "RFC 9111 §4.4",
                Must,
                "a Content-Location on another host invalidates nothing here",
            ),
            method("POST").at("/form").fwd().status(200),
            ok("").h("content-location", "http://other.example{prefix}/obj"),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.not-by-options",
                "RFC 9111 §4.4",
                Should,
                "an OPTIONS (a CORS preflight) invalidates nothing",
            ),
            method("OPTIONS").fwd().status(200),
            ok("").h("allow", "GET, HEAD, OPTIONS"),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.not-by-trace",
                "RFC 9111 §4.4",
                Should,
                "a TRACE invalidates nothing",
            ),
            method("TRACE").fwd_any().status_in(&[200, 405, 501]),
            ok(""),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.not-by-head",
                "RFC 9111 §4.4",
                Should,
                "a HEAD invalidates nothing",
            ),
            head().fwd_any().status(200),
            ok(""),
            still_stored(),
        ),
        around(
            Case::new(
                "invalidate.other-uri-untouched",
                "RFC 9111 §4.4",
                Should,
                "a POST to another URI without Location leaves this one stored",
            ),
            method("POST").at("/form").fwd().status(200),
            ok(""),
            still_stored(),
        ),
        Case::new(
            "invalidate.all-variants",
            "RFC 9111 §4.4",
            Must,
            "an invalidation removes every stored variant of the URI",
        )
        .answers([
            ok("max-age=3600").h("vary", "Accept-Language"),
            ok("max-age=3600").h("vary", "Accept-Language"),
            ok(""),
            ok("max-age=3600").h("vary", "Accept-Language"),
        ])
        .steps([
            get().h("accept-language", "en").from_origin(),
            get().h("accept-language", "fr").from_origin(),
            method("POST").fwd().status(200),
            get().h("accept-language", "en").from_origin(),
            get().h("accept-language", "fr").from_origin(),
        ]),
    ]);
    v
}
