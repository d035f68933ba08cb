//! `Vary` (RFC 9111 §4.1): a stored response answers only requests whose
//! nominated fields match the request that caused it.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

const LANG: &str = "accept-language";

/// Answers varying on `vary`, each stored for an hour.
fn varying(vary: &str) -> Answer {
    ok("max-age=3600").h("vary", vary)
}

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "vary.match",
            "RFC 9111 §4.1",
            Should,
            "a request with the same nominated field value is served from the cache",
        )
        .answers([varying("Accept-Language")])
        .steps([
            get().h(LANG, "en").from_origin(),
            get().h(LANG, "en").from_cache(1),
        ]),
        Case::new(
            "vary.mismatch",
            "RFC 9111 §4.1",
            Must,
            "a different nominated field value is not served the stored response",
        )
        .answers([varying("Accept-Language")])
        .steps([
            get().h(LANG, "en").from_origin(),
            get().h(LANG, "fr").from_origin().up_has(LANG, "fr"),
        ]),
        Case::new(
            "vary.absent-vs-present",
            "RFC 9111 §4.1",
            Must,
            "a field absent from the request does not match one that was present",
        )
        .answers([varying("Accept-Language")])
        .steps([get().h(LANG, "en").from_origin(), get().from_origin()]),
        Case::new(
            "vary.present-vs-absent",
            "RFC 9111 §4.1",
            Must,
            "a field present in the request does not match one that was absent",
        )
        .answers([varying("Accept-Language")])
        .steps([get().from_origin(), get().h(LANG, "en").from_origin()]),
        Case::new(
            "vary.absent-both",
            "RFC 9111 §4.1",
            Should,
            "a field absent from both requests matches",
        )
        .answers([varying("Accept-Language")])
        .steps([get().from_origin(), get().from_cache(1)]),
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
            "vary.two-fields-match",
            "RFC 9111 §4.1",
            Should,
            "both nominated fields equal: served from the cache",
        )
        .answers([varying("Accept-Language, X-Device")])
        .steps([
            get().h(LANG, "en").h("x-device", "tv").from_origin(),
            get().h(LANG, "en").h("x-device", "tv").from_cache(1),
        ]),
        Case::new(
            "vary.two-fields-second-differs",
            "RFC 9111 §4.1",
            Must,
            "the second nominated field differs: not served the stored response",
        )
        .answers([varying("Accept-Language, X-Device")])
        .steps([
            get().h(LANG, "en").h("x-device", "tv").from_origin(),
            get().h(LANG, "en").h("x-device", "phone").from_origin(),
        ]),
        Case::new(
            "vary.two-lines",
            "RFC 9110 §5.3",
            Must,
            "Vary on two field lines nominates both fields",
        )
        .answers([varying("Accept-Language").h("vary", "X-Device")])
        .steps([
            get().h(LANG, "en").h("x-device", "tv").from_origin(),
            get().h(LANG, "en").h("x-device", "phone").from_origin(),
        ]),
        Case::new(
            "vary.name-case",
            "RFC 9111 §4.1",
            Must,
            "field names in Vary are case-insensitive (ACCEPT-LANGUAGE)",
        )
        .answers([varying("ACCEPT-LANGUAGE")])
        .steps([
            get().h(LANG, "en").from_origin(),
            get().h(LANG, "fr").from_origin(),
        ]),
        Case::new(
            "vary.name-case-match",
            "RFC 9111 §4.1",
            Should,
            "field names in Vary are case-insensitive: equal values match",
        )
        .answers([varying("ACCEPT-LANGUAGE")])
        .steps([
            get().h(LANG, "en").from_origin(),
            get().h(LANG, "en").from_cache(1),
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
        Case::new(
            "vary.cookie",
            "RFC 9111 §4.1",
            Must,
            "Vary: Cookie keeps two users' answers apart",
        )
        .answers([varying("Cookie")])
        .steps([
            get().h("cookie", "user=alice").from_origin(),
            get().h("cookie", "user=bob").from_origin(),
        ]),
        Case::new(
            "vary.custom-field",
            "RFC 9111 §4.1",
            Must,
            "an unregistered field in Vary is honoured",
        )
        .answers([varying("X-Flavour")])
        .steps([
            get().h("x-flavour", "mint").from_origin(),
            get().h("x-flavour", "lime").from_origin(),
        ]),
        Case::new(
            "vary.whitespace",
            "RFC 9111 §4.1",
            May,
            "values that differ only in list whitespace may match",
        )
        .answers([varying("Accept-Language")])
        .steps([
            get().h(LANG, "en,fr").from_origin(),
            get().h(LANG, "en, fr").from_cache(1),
        ]),
    ]
}
