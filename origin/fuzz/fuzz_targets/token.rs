//! Fuzzes playback tokens: whatever the token text, path, time and key text, the
//! parser and checker never panic; a token `sign` issues always parses and
//! authenticates (only its time or path can refuse it); a token with one
//! character changed never verifies; and what `extract` reads from a query,
//! `strip_from_query` removes.
//!
//!   bash bench/scripts/fuzz.sh token      (or: cd origin/fuzz && cargo fuzz run token)
#![no_main]

use arbitrary::Arbitrary;
use keyframe_core::token::{self, TokenClaims, TokenError, TokenKey};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a str,
    token: &'a str,
    path: &'a str,
    now: u64,
    start: Option<u64>,
    exp: u64,
    acl: &'a str,
    data: Option<&'a str>,
    flip_at: usize,
    flip_to: u8,
    query: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    // Any key text: refused or usable, never a panic.
    let _ = TokenKey::from_config(input.key);
    let key = TokenKey::from_config("0123456789abcdef0123456789abcdef").expect("a 16-byte hex key");

    // Any token against any path and time.
    let _ = token::verify(&key, input.token, input.path, input.now);

    // What `sign` issues, `verify` reads back: only time and path can refuse it.
    let claims = TokenClaims {
        start: input.start,
        exp: input.exp,
        acl: input.acl.to_string(),
        data: input.data.map(str::to_string),
    };
    if let Ok(signed) = token::sign(&key, &claims) {
        match token::verify(&key, &signed, input.path, input.now) {
            Ok(got) => assert_eq!(got, claims),
            Err(TokenError::Expired | TokenError::NotYetValid | TokenError::PathNotAllowed) => {}
            Err(e) => panic!("a token sign issued was refused: {e} ({signed})"),
        }
        // One ASCII character changed for another anywhere: never valid. (Only an
        // ASCII one: changing a byte of a multi-byte character would not be text.)
        let bytes = signed.as_bytes();
        let at = input.flip_at % bytes.len();
        let to = input.flip_to & 0x7f;
        if bytes[at].is_ascii() && bytes[at] != to {
            let mut changed = bytes.to_vec();
            changed[at] = to;
            let changed = String::from_utf8(changed).expect("ASCII stays UTF-8");
            assert!(
                token::verify(&key, &changed, input.path, input.now).is_err(),
                "{changed} verified after a change of {signed}"
            );
        }
    }

    // Whatever `extract` would read from a query is gone after `strip_from_query`.
    if let Some(kept) = token::strip_from_query(input.query) {
        if let Ok(uri) = format!("/x?{kept}").parse::<http::Uri>() {
            assert_eq!(
                token::extract(&uri, &http::HeaderMap::new()),
                None,
                "{kept}"
            );
        }
    }
});
