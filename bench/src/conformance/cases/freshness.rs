//! Freshness (RFC 9111 §4.2): explicit lifetimes, `Expires`, `Date` and `Age`,
//! and heuristic freshness for the statuses RFC 9110 §15.1 allows it for.

use crate::conformance::dsl::Level::*;
use crate::conformance::dsl::*;

/// Ten days ago: a heuristic lifetime of 10% is a day.
const LONG_AGO: &str = "{now-864000}";

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new(
            "fresh.max-age",
            "RFC 9111 §4.2.1",
            Should,
            "a response with max-age is reused while fresh",
        )
        .reused(ok("max-age=3600")),
        Case::new(
            "fresh.s-maxage",
            "RFC 9111 §5.2.2.10",
            Should,
            "a response with s-maxage is reused while fresh",
        )
        .reused(ok("s-maxage=3600")),
        Case::new(
            "fresh.s-maxage-over-max-age",
            "RFC 9111 §5.2.2.10",
            Should,
            "s-maxage overrides max-age=0 in a shared cache",
        )
        .reused(ok("max-age=0, s-maxage=3600")),
        Case::new(
            "fresh.s-maxage-zero",
            "RFC 9111 §5.2.2.10",
            Must,
            "s-maxage=0 overrides max-age: the response is stale at once",
        )
        .not_reused(ok("max-age=3600, s-maxage=0")),
        Case::new(
            "fresh.max-age-zero",
            "RFC 9111 §4.2.4",
            Must,
            "max-age=0 is stale at once and not reused without the origin",
        )
        .not_reused(ok("max-age=0")),
        Case::new(
            "fresh.expired",
            "RFC 9111 §4.2.4",
            Must,
            "a response is not reused once max-age has passed",
        )
        .not_reused_after(2100, ok("max-age=1")),
        Case::new(
            "fresh.must-revalidate-fresh",
            "RFC 9111 §5.2.2.2",
            Should,
            "must-revalidate does not stop reuse while fresh",
        )
        .reused(ok("max-age=3600, must-revalidate")),
        Case::new(
            "expires.future",
            "RFC 9111 §5.3",
            Should,
            "an Expires an hour ahead makes the response fresh",
        )
        .reused(ok("").h("expires", "{now+3600}")),
        Case::new(
            "expires.past",
            "RFC 9111 §5.3",
            Must,
            "an Expires in the past makes the response stale",
        )
        .not_reused(ok("").h("expires", "{now-3600}")),
        Case::new(
            "expires.equals-date",
            "RFC 9111 §4.2.1",
            Must,
            "Expires equal to Date is a zero lifetime (both 30 s ahead of the cache's clock)",
        )
        .not_reused(ok("").h("date", "{now+30}").h("expires", "{now+30}")),
        Case::new(
            "expires.zero",
            "RFC 9111 §5.3",
            Must,
            "Expires: 0 means already expired",
        )
        .not_reused(ok("").h("expires", "0")),
        Case::new(
            "expires.invalid",
            "RFC 9111 §5.3",
            Must,
            "an invalid Expires date means already expired",
        )
        .not_reused(ok("").h("expires", "next tuesday")),
        Case::new(
            "expires.rfc850",
            "RFC 9110 §5.6.7",
            Should,
            "an Expires in the obsolete RFC 850 format is understood",
        )
        .reused(ok("").h("expires", "{rfc850:now+3600}")),
        Case::new(
            "expires.asctime",
            "RFC 9110 §5.6.7",
            Should,
            "an Expires in asctime format is understood",
        )
        .reused(ok("").h("expires", "{asctime:now+3600}")),
        Case::new(
            "expires.max-age-wins",
            "RFC 9111 §5.3",
            Should,
            "max-age=3600 overrides an Expires in the past",
        )
        .reused(ok("max-age=3600").h("expires", "{now-3600}")),
        Case::new(
            "expires.max-age-zero-wins",
            "RFC 9111 §5.3",
            Must,
            "with max-age present, Expires is ignored (max-age=0 and a future Expires)",
        )
        .not_reused(ok("max-age=0").h("expires", "{now+3600}")),
        Case::new(
            "expires.s-maxage-wins",
            "RFC 9111 §5.3",
            Must,
            "with s-maxage present, a shared cache ignores Expires",
        )
        .not_reused(ok("s-maxage=0").h("expires", "{now+3600}")),
        Case::new(
            "expires.relative-to-date",
            "RFC 9111 §4.2.1",
            Should,
            "the lifetime is Expires minus Date (a skewed Date an hour back)",
        )
        .reused(ok("").h("date", "{now-3600}").h("expires", "{now+60}")),
        Case::new(
            "expires.lifetime-from-date",
            "RFC 9111 §4.2.1",
            Must,
            "Date an hour back and Expires 100 s after it: stale on arrival",
        )
        .not_reused(ok("").h("date", "{now-3600}").h("expires", "{now-3500}")),
        Case::new(
            "expires.two-lines",
            "RFC 9111 §4.2.1",
            Should,
            "two Expires lines: the first is used, or the response is stale",
        )
        .not_reused(ok("").h("expires", "{now-60}").h("expires", "{now+3600}")),
        Case::new(
            "age.apparent-from-date",
            "RFC 9111 §4.2.3",
            Must,
            "a Date 120 s old makes a max-age=60 response stale on arrival",
        )
        .not_reused(ok("max-age=60").h("date", "{now-120}")),
        Case::new(
            "age.header-exceeds-max-age",
            "RFC 9111 §4.2.3",
            Must,
            "Age: 120 on a max-age=60 response makes it stale on arrival",
        )
        .not_reused(ok("max-age=60").h("age", "120")),
        Case::new(
            "age.header-within-max-age",
            "RFC 9111 §4.2.3",
            Should,
            "Age: 100 on a max-age=3600 response leaves it fresh",
        )
        .reused(ok("max-age=3600").h("age", "100")),
        Case::new(
            "age.overflow",
            "RFC 9111 §1.2.2",
            Must,
            "an Age too large to represent counts as 2^31 seconds: stale",
        )
        .not_reused(ok("max-age=3600").h("age", "99999999999999999999")),
        Case::new(
            "age.max-age-overflow",
            "RFC 9111 §1.2.2",
            Should,
            "a max-age too large to represent counts as 2^31 seconds: fresh",
        )
        .reused(ok("max-age=99999999999999999999")),
        Case::new(
            "age.on-hit",
            "RFC 9111 §5.1",
            Must,
            "a response served from the cache carries Age",
        )
        .after_miss(
            ok("max-age=3600"),
            get().after(1100).from_cache(1).given().age_at_least(1),
        ),
        Case::new(
            "age.received-counts",
            "RFC 9111 §4.2.3",
            Must,
            "the Age a hit carries includes the Age the origin sent",
        )
        .after_miss(
            ok("max-age=3600").h("age", "100"),
            get().from_cache(1).given().age_at_least(100),
        ),
        Case::new(
            "date.added",
            "RFC 9110 §6.6.1",
            Must,
            "a response without Date gets one from the cache that forwards it",
        )
        .answers([ok("max-age=3600").h("date", "")])
        .steps([get().from_origin().present("date")]),
        // RFC 9111 §3: storing needs explicit freshness or a heuristically cacheable status.
        Case::new(
            "heuristic.not-302",
            "RFC 9111 §3",
            Must,
            "a 302 with only Last-Modified may not be stored (not heuristically cacheable)",
        )
        .not_reused(
            answer(302)
                .h("location", "/elsewhere")
                .h("last-modified", LONG_AGO),
        ),
        Case::new(
            "heuristic.not-403",
            "RFC 9111 §3",
            Must,
            "a 403 with only Last-Modified may not be stored",
        )
        .not_reused(answer(403).h("last-modified", LONG_AGO)),
        Case::new(
            "heuristic.not-500",
            "RFC 9111 §3",
            Must,
            "a 500 with only Last-Modified may not be stored",
        )
        .not_reused(answer(500).h("last-modified", LONG_AGO)),
        Case::new(
            "heuristic.explicit-wins",
            "RFC 9111 §4.2.2",
            Must,
            "no heuristics when max-age=0 is explicit",
        )
        .not_reused(ok("max-age=0").h("last-modified", LONG_AGO).plain()),
        Case::new(
            "heuristic.expires-wins",
            "RFC 9111 §4.2.2",
            Must,
            "no heuristics when an explicit Expires is in the past",
        )
        .not_reused(
            ok("")
                .h("expires", "{now-60}")
                .h("last-modified", LONG_AGO)
                .plain(),
        ),
        Case::new(
            "heuristic.public",
            "RFC 9111 §5.2.2.9",
            May,
            "public makes a response heuristically cacheable",
        )
        .reused(ok("public").h("last-modified", LONG_AGO)),
    ];
    // RFC 9110 §15.1: the statuses heuristically cacheable by default.
    const HEURISTIC: [(&str, u16); 11] = [
        ("heuristic.200", 200),
        ("heuristic.203", 203),
        ("heuristic.204", 204),
        ("heuristic.300", 300),
        ("heuristic.301", 301),
        ("heuristic.308", 308),
        ("heuristic.404", 404),
        ("heuristic.405", 405),
        ("heuristic.410", 410),
        ("heuristic.414", 414),
        ("heuristic.501", 501),
    ];
    for (id, status) in HEURISTIC {
        let mut a = answer(status).h("last-modified", LONG_AGO);
        if matches!(status, 300 | 301 | 308) {
            a = a.h("location", "/elsewhere");
        }
        v.push(
            Case::new(
                id,
                "RFC 9111 §4.2.2",
                May,
                "a heuristically cacheable status with Last-Modified 10 days old is reused",
            )
            .reused(a),
        );
    }
    v
}
