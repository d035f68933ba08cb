//! Fuzzes the `Range` header parser and evaluator: whatever the bytes, the object
//! length and the range limit, it never panics, and every partial answer is a
//! sorted list of non-empty, non-overlapping, non-adjacent ranges inside the
//! object, no more of them than allowed.
//!
//!   cd origin/fuzz && cargo fuzz run range -- -max_total_time=60
//!
//! (cargo-fuzz needs nightly flags; on a stable toolchain prefix RUSTC_BOOTSTRAP=1.)
#![no_main]

use keyframe_http::range::{evaluate, RangeDecision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, u8, &[u8])| {
    let (len, max, header) = input;
    let max = usize::from(max);
    match evaluate(Some(header), len, max) {
        RangeDecision::Full => {}
        RangeDecision::Unsatisfiable => {}
        RangeDecision::Partial(ranges) => {
            assert!(!ranges.is_empty());
            assert!(ranges.len() <= max.max(1));
            for r in &ranges {
                assert!(r.start < r.end, "empty range {r:?}");
                assert!(r.end <= len, "{r:?} past {len}");
            }
            for w in ranges.windows(2) {
                assert!(w[0].end < w[1].start, "{:?} overlaps or touches {:?}", w[0], w[1]);
            }
        }
    }
    // No header is always the whole object.
    assert!(matches!(evaluate(None, len, max), RangeDecision::Full));
});
