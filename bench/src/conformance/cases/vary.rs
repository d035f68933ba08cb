//! `Vary` (RFC 9111 §4.1): a stored response answers only requests whose
//! nominated fields match the request that caused it.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

const LANG: &str = "accept-language";

/// Answers varying on `vary`, each stored for an hour.
fn varying(vary: &str) -> Answer {
    ok("max-age=3600").h("vary", vary)
}

/// A GET with `headers`.
fn get_with(headers: &[(&str, &str)]) -> Req {
    headers.iter().fold(get(), |r, (n, v)| r.h(n, v))
}

/// Two requests for a response that varies on `vary`: the first with `first`
/// headers, the second with `second`, which must be served from the cache if
/// they `match` and reach the origin if not.
type Pair = (
    &'static str,
    Level,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
    bool,
);

#[rustfmt::skip]
const PAIRS: &[Pair] = &[
    ("vary.match", Should, "a request with the same nominated field value is served from the cache",
        "Accept-Language", &[(LANG, "en")], &[(LANG, "en")], true),
    ("vary.mismatch", Must, "a different nominated field value is not served the stored response",
        "Accept-Language", &[(LANG, "en")], &[(LANG, "fr")], false),
    ("vary.absent-vs-present", Must, "a field absent from the request does not match one that was present",
        "Accept-Language", &[(LANG, "en")], &[], false),
    ("vary.present-vs-absent", Must, "a field present in the request does not match one that was absent",
        "Accept-Language", &[], &[(LANG, "en")], false),
    ("vary.absent-both", Should, "a field absent from both requests matches",
        "Accept-Language", &[], &[], true),
    ("vary.two-fields-match", Should, "both nominated fields equal: served from the cache",
        "Accept-Language, X-Device", &[(LANG, "en"), ("x-device", "tv")], &[(LANG, "en"), ("x-device", "tv")], true),
    ("vary.two-fields-second-differs", Must, "the second nominated field differs: not served the stored response",
        "Accept-Language, X-Device", &[(LANG, "en"), ("x-device", "tv")], &[(LANG, "en"), ("x-device", "phone")], false),
    ("vary.name-case", Must, "field names in Vary are case-insensitive (ACCEPT-LANGUAGE)",
        "ACCEPT-LANGUAGE", &[(LANG, "en")], &[(LANG, "fr")], false),
    ("vary.name-case-match", Should, "field names in Vary are case-insensitive: equal values match",
        "ACCEPT-LANGUAGE", &[(LANG, "en")], &[(LANG, "en")], true),
    ("vary.cookie", Must, "Vary: Cookie keeps two users' answers apart",
        "Cookie", &[("cookie", "user=alice")], &[("cookie", "user=bob")], false),
    ("vary.custom-field", Must, "an unregistered field in Vary is honoured",
        "X-Flavour", &[("x-flavour", "mint")], &[("x-flavour", "lime")], false),
    ("vary.whitespace", May, "values that differ only in list whitespace may match",
        "Accept-Language", &[(LANG, "en,fr")], &[(LANG, "en, fr")], true),
];

pub fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = PAIRS
        .iter()
        .map(|&(id, level, title, vary, first, second, matches)| {
            let next = get_with(second);
            let next = if matches {
                next.from_cache(1)
            } else {
                second
                    .iter()
                    .fold(next.from_origin(), |r, (n, v)| r.up_has(n, v))
            };
            Case::new(id, "RFC 9111 §4.1", level, title)
                .answers([varying(vary)])
                .steps([get_with(first).from_origin(), next])
        })
        .collect();
    v.extend([
        Case::new("vary.star", "RFC 9111 §4.1", Must, "Vary: * never matches")
            .not_reused(varying("*")),
        Case::new(
            "vary.star-in-list",
            "RFC 9111 §4.1",
            Must,
            "a * member anywhere in Vary never matches",
        )
        .not_reused(varying("Accept-Language, *")),
        Case::new(
            "vary.two-lines",
            "RFC 9110 §5.3",
            Must,
            "Vary on two field lines nominates both fields",
        )
        .answers([varying("Accept-Language").h("vary", "X-Device")])
        .steps([
            get_with(&[(LANG, "en"), ("x-device", "tv")]).from_origin(),
            get_with(&[(LANG, "en"), ("x-device", "phone")]).from_origin(),
        ]),
        Case::new(
            "vary.variants-kept",
            "RFC 9111 §4.1",
            Should,
            "two variants are stored side by side",
        )
        .answers([varying("Accept-Language")])
        .steps([
            get().h(LANG, "en").from_origin(),
            get().h(LANG, "fr").from_origin(),
            get().h(LANG, "en").from_cache(1),
            get().h(LANG, "fr").from_cache(2),
        ]),
    ]);
    v
}
