//! `CDN-Cache-Control` (RFC 9213): a Structured Field Dictionary (RFC 8941)
//! that, when valid and non-empty, replaces `Cache-Control` and `Expires` for a
//! CDN cache; an invalid or empty one is ignored as a whole.
//!
//! The MUSTs here bind a cache that implements RFC 9213 (nginx and Varnish do
//! not; for them the field must change nothing).

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

/// `Cache-Control: cc` and `CDN-Cache-Control: cdn`.
fn both(cc: &str, cdn: &str) -> Answer {
    ok(cc).h("cdn-cache-control", cdn)
}

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("cdn.max-age-over-no-store", "RFC 9213 §2.2", Should, "CDN-Cache-Control: max-age=3600 lets a CDN store what Cache-Control: no-store forbids others")
            .reused(both("no-store", "max-age=3600")),
        Case::new("cdn.no-store-over-max-age", "RFC 9213 §2.2", Must, "CDN-Cache-Control: no-store wins over Cache-Control: max-age=3600")
            .not_reused(both("max-age=3600", "no-store")),
        Case::new("cdn.max-age-zero-over-max-age", "RFC 9213 §2.2", Must, "CDN-Cache-Control: max-age=0 wins over Cache-Control: max-age=3600")
            .not_reused(both("max-age=3600", "max-age=0")),
        Case::new("cdn.private", "RFC 9213 §2.2", Must, "CDN-Cache-Control: private forbids storing")
            .not_reused(both("max-age=3600", "private")),
        Case::new("cdn.no-cache", "RFC 9213 §2.2", Must, "CDN-Cache-Control: no-cache sends every reuse to the origin")
            .not_reused(both("max-age=3600", "no-cache")),
        Case::new("cdn.ignores-expires", "RFC 9213 §2.2", Should, "a valid CDN-Cache-Control makes Expires irrelevant")
            .reused(ok("").h("expires", "{now-60}").h("cdn-cache-control", "max-age=3600")),
        Case::new("cdn.must-revalidate", "RFC 9213 §2.2", Must, "CDN-Cache-Control: must-revalidate forbids a stale response on error")
            .answers([both("max-age=3600", "max-age=1, must-revalidate"), with_cc(503, "")])
            .steps([get().from_origin(), get().after(2100).fwd_any().status_in(&[503, 504])]),
        Case::new("cdn.invalid-ignored", "RFC 9213 §2.1", Must, "an invalid field (max-age=10000, &&&&&) is ignored whole: Cache-Control: no-store applies")
            .not_reused(both("no-store", "max-age=10000, &&&&&")),
        Case::new("cdn.invalid-ignored-cc-applies", "RFC 9213 §2.1", Should, "an invalid field is ignored whole: Cache-Control: max-age=3600 applies")
            .reused(both("max-age=3600", "no-store, &&&&&")),
        Case::new("cdn.uppercase-invalid", "RFC 9213 §2.1", Must, "keys are lowercase in a Dictionary: MAX-AGE=3600 makes the field invalid")
            .not_reused(both("no-store", "MAX-AGE=3600")),
        Case::new("cdn.unterminated-string-invalid", "RFC 9213 §2.1", Must, "an unterminated string makes the field invalid")
            .not_reused(both("no-store", "max-age=3600, foo=\"bar")),
        Case::new("cdn.empty-ignored", "RFC 9213 §2.1", Must, "an empty field is ignored: Cache-Control: max-age=0 applies")
            .not_reused(both("max-age=0", "")),
        Case::new("cdn.two-lines", "RFC 8941 §3.2", Must, "two field lines form one Dictionary: no-store on the second applies")
            .not_reused(both("max-age=3600", "max-age=3600").h("cdn-cache-control", "no-store")),
        Case::new("cdn.duplicate-key", "RFC 8941 §4.2.2", Should, "a repeated key takes its last value (max-age=0, max-age=3600)")
            .reused(both("no-store", "max-age=0, max-age=3600")),
        Case::new("cdn.parameters-ignored", "RFC 9213 §2.1", Should, "parameters on a directive are ignored (max-age=3600;foo=bar)")
            .reused(both("no-store", "max-age=3600;foo=bar")),
    ]
}
