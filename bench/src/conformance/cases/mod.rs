//! The case table, one module per topic. Every case names the RFC section it
//! follows and how strongly the RFC asks for it ([`Level`]).
//!
//! [`Level`]: super::dsl::Level

mod cdn;
mod directives;
mod freshness;
mod headers;
mod invalidation;
mod ranges;
mod stale;
mod validation;
mod vary;

use super::dsl::Case;

/// Every case, topic by topic.
pub fn all() -> Vec<Case> {
    [
        freshness::cases(),
        directives::cases(),
        vary::cases(),
        validation::cases(),
        invalidation::cases(),
        ranges::cases(),
        stale::cases(),
        cdn::cases(),
        headers::cases(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn at_least_150_cases_with_unique_path_safe_ids() {
        let cases = all();
        assert!(cases.len() >= 150, "only {} cases", cases.len());
        let mut seen = HashSet::new();
        for c in &cases {
            assert!(seen.insert(c.id), "duplicate case id {}", c.id);
            assert!(
                c.id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-".contains(&b)),
                "{}: ids are lowercase letters, digits, '.' and '-'",
                c.id
            );
        }
    }

    #[test]
    fn every_case_scripts_the_origin_and_sends_something() {
        for c in all() {
            assert!(!c.answers.is_empty(), "{}: no origin answers", c.id);
            assert!(!c.steps.is_empty(), "{}: no steps", c.id);
            assert!(
                c.rfc.starts_with("RFC ") || c.rfc == "deploy/README.md",
                "{}: {}",
                c.id,
                c.rfc
            );
            let waits: u64 = c.steps.iter().map(|s| s.after_ms).sum();
            assert!(
                waits <= 3000,
                "{}: waits {waits} ms; keep cases short",
                c.id
            );
        }
    }
}
