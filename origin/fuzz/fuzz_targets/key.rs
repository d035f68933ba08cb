//! Fuzzes object-key validation: whatever the text, `parse_key` never panics, and
//! a key it accepts is the store path it returns, segment for segment, within the
//! contract (no empty, `.` or `..` segment, only `[A-Za-z0-9._-]`, ≤ 1024 bytes) —
//! the check that keeps a request inside the store's root.
//!
//!   bash bench/scripts/fuzz.sh key      (or: cd origin/fuzz && cargo fuzz run key)
#![no_main]

use keyframe_core::key::{parse_key, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|key: &str| {
    let Ok(path) = parse_key(key) else {
        return;
    };
    assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
    assert_eq!(path.as_ref(), key, "the store path is the key itself");
    for seg in key.split('/') {
        assert!(seg != "." && seg != ".." && !seg.is_empty(), "{key}");
        assert!(
            seg.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
            "{key}"
        );
    }
});
