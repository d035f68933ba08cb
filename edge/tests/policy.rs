//! Shared-cache rules seen from outside, in front of a scripted origin: hop-by-hop
//! and `Connection`-named fields (RFC 9110 §7.6.1), `CDN-Cache-Control` (RFC 9213)
//! and invalidation by unsafe methods (RFC 9111 §4.4). Each case checks what the
//! client got and how many requests reached the origin.

use crate::common;
use crate::scripted;

use common::*;
use http::Method;
use scripted::{Canned, Scripted};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn edge_for(origin: &Scripted) -> TestEdge {
    TestEdge::start(config(&[origin.url()], 64 << 10)).await
}

/// Sends `method` to `url` with `headers`; returns status and response headers.
async fn send(
    c: &reqwest::Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap) {
    let mut rb = c.request(method, url);
    for (n, v) in headers {
        rb = rb.header(*n, *v);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let h = r.headers().clone();
    let _ = r.bytes().await;
    (status, h)
}

fn cache_status(h: &reqwest::header::HeaderMap) -> String {
    h.get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

// RFC 9110 §7.6.1: fields named in `Connection` (and the standard hop-by-hop
// set) are for one hop only: never stored, never served on a hit, never
// forwarded, whichever way the message goes and whether it is cached or passed.
#[tokio::test]
async fn connection_named_fields_never_cross_the_edge() {
    let origin = Scripted::start().await;
    let hop = [
        ("connection", "X-Hop, keep-alive"),
        ("x-hop", "secret"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
    ];
    let with_hop = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = extra.to_vec();
        h.extend_from_slice(&hop);
        h
    };
    origin.script(
        "/hop/cached",
        Canned::new(
            200,
            &with_hop(&[("cache-control", "max-age=60"), ("etag", "\"h1\"")]),
            b"cached body",
        ),
    );
    origin.script(
        "/hop/ranged",
        Canned::new(
            200,
            &with_hop(&[("cache-control", "max-age=60"), ("etag", "\"r1\"")]),
            b"0123456789",
        ),
    );
    origin.script(
        "/hop/stale",
        Canned::new(
            200,
            &with_hop(&[("cache-control", "max-age=0"), ("etag", "\"s1\"")]),
            b"stale",
        ),
    );
    origin.script(
        "/hop/passed",
        Canned::new(200, &with_hop(&[("cache-control", "no-store")]), b"passed"),
    );
    origin.script(
        "/hop/moved",
        Canned::new(
            301,
            &with_hop(&[("cache-control", "max-age=60"), ("location", "/hop/cached")]),
            b"",
        ),
    );
    origin.script(
        "/hop/missing",
        Canned::new(404, &with_hop(&[("cache-control", "no-store")]), b"none"),
    );
    let edge = edge_for(&origin).await;
    let c = client();
    let client_hop = [
        ("connection", "X-Client-Hop"),
        ("x-client-hop", "mine"),
        ("x-end-to-end", "kept"),
    ];
    for path in [
        "/hop/cached",
        "/hop/cached",
        "/hop/passed",
        "/hop/moved",
        "/hop/moved",
        "/hop/missing",
    ] {
        let (status, h) = send(&c, Method::GET, &edge.url(path), &client_hop).await;
        assert!(status < 500, "{path}: {status}");
        for name in ["x-hop", "keep-alive", "proxy-connection"] {
            assert!(
                !h.contains_key(name),
                "{path} ({}) carried the hop-by-hop `{name}`",
                cache_status(&h)
            );
        }
    }
    let (_, h) = send(&c, Method::GET, &edge.url("/hop/cached"), &[]).await;
    assert!(cache_status(&h).contains("hit"), "{}", cache_status(&h));
    // Ranges, HEAD, and a stale entry refreshed by a 304 that carries them too.
    for (method, path, extra) in [
        (Method::GET, "/hop/ranged", Some(("range", "bytes=2-5"))),
        (Method::GET, "/hop/ranged", Some(("range", "bytes=2-5"))),
        (Method::HEAD, "/hop/ranged", None),
        (Method::GET, "/hop/stale", None),
        (Method::GET, "/hop/stale", None),
        (Method::GET, "/hop/stale", Some(("if-none-match", "\"s1\""))),
    ] {
        let mut hs = client_hop.to_vec();
        hs.extend(extra);
        let (status, h) = send(&c, method.clone(), &edge.url(path), &hs).await;
        assert!(status < 500, "{method} {path}: {status}");
        for name in ["x-hop", "keep-alive", "proxy-connection"] {
            assert!(
                !h.contains_key(name),
                "{method} {path} {extra:?} ({}) carried the hop-by-hop `{name}`",
                cache_status(&h)
            );
        }
    }
    assert!(origin.count(&Method::GET, "/hop/stale") >= 2, "revalidated");
    let (_, h) = send(&c, Method::POST, &edge.url("/hop/passed"), &client_hop).await;
    assert!(!h.contains_key("x-hop"), "a POST's answer carried `x-hop`");

    // Upstream, the client's hop-by-hop fields are gone and the others are there.
    let seen = origin.seen();
    assert!(seen.len() >= 5, "{seen:?}");
    for s in &seen {
        assert!(
            !s.headers.contains_key("x-client-hop"),
            "{} {} went upstream with the client's `x-client-hop`",
            s.method,
            s.path
        );
        assert_eq!(s.headers["x-end-to-end"], "kept", "{} {}", s.method, s.path);
    }
    assert_eq!(origin.count(&Method::GET, "/hop/cached"), 1);
    assert_eq!(origin.count(&Method::GET, "/hop/moved"), 1);
    edge.shutdown().await;
}

// RFC 9213 §2.2: CDN-Cache-Control is a Structured Field Dictionary; one that
// does not parse is ignored as a whole and Cache-Control applies. One that
// parses replaces Cache-Control *and* Expires for this cache (§2.1), and goes on
// to the client (it is not stripped).
#[tokio::test]
async fn cdn_cache_control_is_a_dictionary_or_nothing() {
    let origin = Scripted::start().await;
    // Invalid targeted field: Cache-Control's no-store applies.
    origin.script(
        "/cdn/bad-over-no-store",
        Canned::new(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=10000, &&&&&"),
            ],
            b"a",
        ),
    );
    // Invalid targeted field: Cache-Control's max-age applies.
    origin.script(
        "/cdn/bad-over-max-age",
        Canned::new(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"b\""),
                ("cdn-cache-control", "no-store, max-age=\"unterminated"),
            ],
            b"b",
        ),
    );
    // Valid: it wins over Cache-Control.
    origin.script(
        "/cdn/good",
        Canned::new(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
            b"c",
        ),
    );
    // Valid without a lifetime: Expires is ignored with Cache-Control (§2.1), so
    // the response is stale at once and the next request revalidates.
    let later = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    origin.script(
        "/cdn/expires",
        Canned::new(
            200,
            &[
                ("cdn-cache-control", "must-revalidate"),
                ("expires", &later),
                ("etag", "\"d\""),
            ],
            b"d",
        ),
    );
    let edge = edge_for(&origin).await;
    let c = client();
    let mut second = std::collections::HashMap::new();
    for path in [
        "/cdn/bad-over-no-store",
        "/cdn/bad-over-max-age",
        "/cdn/good",
        "/cdn/expires",
    ] {
        for _ in 0..2 {
            let (status, h) = send(&c, Method::GET, &edge.url(path), &[]).await;
            assert_eq!(status, 200, "{path}");
            if path == "/cdn/good" {
                assert_eq!(h["cdn-cache-control"], "max-age=600", "passed on");
            }
            second.insert(path, cache_status(&h));
        }
    }
    let hit = |path: &str| second[path].contains("hit");
    assert!(
        !hit("/cdn/bad-over-no-store"),
        "an invalid CDN-Cache-Control overrode Cache-Control: no-store: {}",
        second["/cdn/bad-over-no-store"]
    );
    assert!(
        hit("/cdn/bad-over-max-age"),
        "{}",
        second["/cdn/bad-over-max-age"]
    );
    assert!(hit("/cdn/good"), "{}", second["/cdn/good"]);
    assert!(!hit("/cdn/expires"), "{}", second["/cdn/expires"]);
    assert_eq!(
        origin.count(&Method::GET, "/cdn/bad-over-max-age"),
        1,
        "an invalid CDN-Cache-Control overrode Cache-Control: max-age"
    );
    assert_eq!(origin.count(&Method::GET, "/cdn/good"), 1);
    assert_eq!(
        origin.count(&Method::GET, "/cdn/expires"),
        2,
        "Expires gave freshness beside a valid CDN-Cache-Control"
    );
    edge.shutdown().await;
}

// RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the target
// URI (every variant) and the same-origin URIs in Location and Content-Location;
// safe methods (OPTIONS, TRACE: a CORS preflight) and error answers do not.
#[tokio::test]
async fn only_unsafe_methods_invalidate() {
    let origin = Scripted::start().await;
    let cacheable = |tag: &str| {
        Canned::new(
            200,
            &[("cache-control", "max-age=600"), ("etag", tag)],
            b"stored",
        )
    };
    for p in ["/inv/a", "/inv/b", "/inv/c", "/inv/elsewhere", "/inv/err"] {
        origin.script(p, cacheable("\"x\""));
    }
    origin.script(
        "/inv/v",
        Canned::new(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("vary", "accept-language"),
            ],
            b"variant",
        ),
    );
    origin.script_method(&Method::POST, "/inv/err", Canned::new(500, &[], b"failed"));
    let edge = edge_for(&origin).await;
    let host = edge.addr.to_string();
    origin.script_method(
        &Method::POST,
        "/inv/form",
        Canned::new(
            201,
            &[
                ("location", "/inv/b"),
                ("content-location", &format!("http://{host}/inv/c")),
            ],
            b"created",
        ),
    );
    origin.script_method(
        &Method::POST,
        "/inv/away",
        Canned::new(
            303,
            &[("location", "http://other.example/inv/elsewhere")],
            b"",
        ),
    );
    let c = client();
    let get = |path: &'static str, lang: &'static str| {
        let c = c.clone();
        let url = edge.url(path);
        async move {
            let (status, _) = send(&c, Method::GET, &url, &[("accept-language", lang)]).await;
            assert_eq!(status, 200, "{path}");
        }
    };
    let gets = |path: &str| origin.count(&Method::GET, path);
    for p in ["/inv/a", "/inv/b", "/inv/c", "/inv/elsewhere", "/inv/err"] {
        get(p, "en").await;
        get(p, "en").await;
        assert_eq!(gets(p), 1, "{p} stored");
    }
    get("/inv/v", "en").await;
    get("/inv/v", "fr").await;
    get("/inv/v", "en").await;
    get("/inv/v", "fr").await;
    assert_eq!(gets("/inv/v"), 2, "two variants stored");

    // Safe methods answered 200 leave the stored responses alone.
    for m in [Method::OPTIONS, Method::TRACE] {
        let (status, _) = send(&c, m.clone(), &edge.url("/inv/a"), &[]).await;
        assert_eq!(status, 200, "{m}");
        get("/inv/a", "en").await;
        assert_eq!(gets("/inv/a"), 1, "a 200 to {m} invalidated /inv/a");
    }
    // An error answer to an unsafe method does not invalidate either.
    let (status, _) = send(&c, Method::POST, &edge.url("/inv/err"), &[]).await;
    assert_eq!(status, 500);
    get("/inv/err", "en").await;
    assert_eq!(gets("/inv/err"), 1, "a 500 to POST invalidated");

    // Unsafe methods answered 2xx/3xx do, every variant of the URL.
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let before = gets("/inv/a");
        let (status, _) = send(&c, m.clone(), &edge.url("/inv/a"), &[]).await;
        assert_eq!(status, 200, "{m}");
        get("/inv/a", "en").await;
        assert_eq!(gets("/inv/a"), before + 1, "{m} did not invalidate /inv/a");
    }
    let (status, _) = send(&c, Method::POST, &edge.url("/inv/v"), &[]).await;
    assert_eq!(status, 200);
    get("/inv/v", "en").await;
    get("/inv/v", "fr").await;
    assert_eq!(gets("/inv/v"), 4, "every variant is invalidated");

    // Location and Content-Location on the same origin are invalidated too.
    let (status, _) = send(&c, Method::POST, &edge.url("/inv/form"), &[]).await;
    assert_eq!(status, 201);
    get("/inv/b", "en").await;
    get("/inv/c", "en").await;
    assert_eq!(gets("/inv/b"), 2, "Location was not invalidated");
    assert_eq!(gets("/inv/c"), 2, "Content-Location was not invalidated");
    // On another origin, never (§4.4: MUST NOT).
    let (status, _) = send(&c, Method::POST, &edge.url("/inv/away"), &[]).await;
    assert_eq!(status, 303);
    get("/inv/elsewhere", "en").await;
    assert_eq!(
        gets("/inv/elsewhere"),
        1,
        "a Location on another origin invalidated a local URL"
    );
    edge.shutdown().await;
}
