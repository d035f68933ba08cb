//! Playback tokens in the field format of Akamai EdgeAuth v2: the catalog signs them,
//! edges and origins check them with the shared key and no database.
//!
//! A token is `~`-separated `name=value` fields ending in the signature:
//!
//! ```text
//! [st=<unix>~]exp=<unix>~acl=<patterns>[~data=<string>]~hmac=<64 lowercase hex digits>
//! ```
//!
//! - `hmac` is HMAC-SHA256, keyed by the [`TokenKey`], over the token text before
//!   `~hmac=`, byte for byte and in the order the fields appear. It must be the last
//!   field. Fields this module does not know (Akamai's `ip`, `id`, …) are accepted and
//!   covered by the signature, so issuers can add them; a field given twice is refused.
//! - The token is valid for `st <= now < exp` (seconds since the Unix epoch).
//! - `acl` is one or more path patterns separated by `!`; `*` matches any run of
//!   characters, `/` included, so `/v1/objects/abc/*` allows `/v1/objects/abc/x/y`.
//!   Patterns are compared with the percent-decoded request path, without its query;
//!   a path with a `.` or `..` segment is never allowed, because an upstream that
//!   resolves dot segments would serve something outside the pattern's prefix.
//! - `data` is free text signed along with the rest. Keyframe's convention: it is a
//!   list of `;`-separated `name:value` parts, and a `regions:eu,us` part restricts
//!   playback to the listed client regions (see [`TokenClaims::regions`]).
//! - Values of `acl` and `data` must not contain `~`, the field separator: [`sign`]
//!   refuses them rather than issue a token that would parse differently.
//!
//! Clients send the token in the query parameter `__token__` or a cookie of that name
//! ([`extract`]); both are percent-decoded (`+` stays a `+`). The token is never part
//! of a cache key nor sent upstream: [`strip_from_query`] removes it from a query.
//! Every error is a 403 at the servers; [`TokenError::code`] gives the JSON code.

use std::collections::HashSet;
use std::fmt;

use hmac::{Hmac, Mac};
use http::{HeaderMap, Uri};
use sha2::Sha256;

use crate::ErrorCode;

/// The name of the query parameter and of the cookie that carry a token.
const TOKEN_NAME: &str = "__token__";

/// Tokens longer than this are refused unread: real ones are a few hundred bytes,
/// and the limit bounds the work an unauthenticated request can cause.
const MAX_TOKEN_LEN: usize = 8192;

/// The length of the signature in hex digits (HMAC-SHA256).
const TAG_HEX_LEN: usize = 64;

/// Why a token was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no playback token in the request")]
    Missing,
    #[error("malformed playback token: {0}")]
    Malformed(&'static str),
    #[error("playback token signature does not match")]
    BadSignature,
    #[error("playback token has expired")]
    Expired,
    #[error("playback token is not valid yet")]
    NotYetValid,
    #[error("playback token does not allow this path")]
    PathNotAllowed,
    #[error("token key is too short: give at least 32 hex digits or 16 bytes of text")]
    WeakKey,
}

impl TokenError {
    /// The code of the JSON error body (its status is 403).
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Missing => ErrorCode::TokenMissing,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Malformed(_)
            | TokenError::BadSignature
            | TokenError::NotYetValid
            | TokenError::PathNotAllowed
            | TokenError::WeakKey => ErrorCode::TokenInvalid,
        }
    }
}

/// The secret that signs and checks tokens. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct TokenKey {
    /// The HMAC already keyed, cloned for each token.
    mac: Hmac<Sha256>,
}

impl TokenKey {
    /// The key from configuration text (surrounding whitespace ignored).
    ///
    /// An even-length hex string of at least 32 digits is decoded to its bytes, as
    /// Akamai does; other text is used as raw bytes and must be at least 16 bytes long.
    /// A hex string shorter than 32 digits is refused too, rather than silently used as
    /// text: it was most likely meant as a (too short) hex key.
    pub fn from_config(s: &str) -> Result<TokenKey, TokenError> {
        let s = s.trim();
        let is_hex = !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let bytes = if is_hex {
            if s.len() < 32 {
                return Err(TokenError::WeakKey);
            }
            hex::decode(s).map_err(|_| TokenError::WeakKey)?
        } else {
            if s.len() < 16 {
                return Err(TokenError::WeakKey);
            }
            s.as_bytes().to_vec()
        };
        let mac = Hmac::<Sha256>::new_from_slice(&bytes).map_err(|_| TokenError::WeakKey)?;
        Ok(TokenKey { mac })
    }

    /// The keyed HMAC over `signed`, ready to finalize or verify.
    fn mac_over(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `st`: not valid before this Unix time.
    pub start: Option<u64>,
    /// `exp`: not valid from this Unix time on.
    pub exp: u64,
    /// `acl`: the allowed path patterns, separated by `!`, with `*` wildcards.
    pub acl: String,
    /// `data`: free text; see [`TokenClaims::regions`] for Keyframe's use of it.
    pub data: Option<String>,
}

impl TokenClaims {
    /// The client regions the token is restricted to, from a `regions:eu,us` part of
    /// `data` (parts separated by `;`); `None` when there is no such part, meaning no
    /// restriction. An empty list (`regions:`) allows no region at all.
    pub fn regions(&self) -> Option<Vec<&str>> {
        let data = self.data.as_deref()?;
        let list = data
            .split(';')
            .find_map(|part| part.trim().strip_prefix("regions:"))?;
        Some(
            list.split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .collect(),
        )
    }
}

/// The token granting `claims`, signed with `key`.
pub fn sign(key: &TokenKey, claims: &TokenClaims) -> Result<String, TokenError> {
    if claims.acl.is_empty() {
        return Err(TokenError::Malformed("acl is empty"));
    }
    if claims.acl.contains('~') {
        return Err(TokenError::Malformed("acl contains '~'"));
    }
    if claims.data.as_deref().is_some_and(|d| d.contains('~')) {
        return Err(TokenError::Malformed("data contains '~'"));
    }
    let mut token = String::new();
    if let Some(st) = claims.start {
        token.push_str(&format!("st={st}~"));
    }
    token.push_str(&format!("exp={}~acl={}", claims.exp, claims.acl));
    if let Some(data) = &claims.data {
        token.push_str("~data=");
        token.push_str(data);
    }
    let tag = key.mac_over(&token).finalize().into_bytes();
    token.push_str("~hmac=");
    token.push_str(&hex::encode(tag));
    // Never issue a token that `verify` would refuse for its size.
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("token too long"));
    }
    Ok(token)
}

/// Checks `token` for a request to `path` at `now_unix` and returns what it grants.
///
/// `path` is the request path as it appears in the URI (`Uri::path()`): it is
/// percent-decoded here, and anything from a `?` on is ignored. The checks run in this
/// order: format, signature (in constant time), `exp`, `st`, path.
pub fn verify(
    key: &TokenKey,
    token: &str,
    path: &str,
    now_unix: u64,
) -> Result<TokenClaims, TokenError> {
    let (claims, signed, tag) = parse(token)?;
    key.mac_over(signed)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.start.is_some_and(|st| now_unix < st) {
        return Err(TokenError::NotYetValid);
    }
    if !acl_allows(&claims.acl, path) {
        return Err(TokenError::PathNotAllowed);
    }
    Ok(claims)
}

/// Splits a token into its claims, the signed text and the signature.
fn parse(token: &str) -> Result<(TokenClaims, &str, [u8; 32]), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Malformed("empty token"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("token too long"));
    }
    let (signed, tag_hex) = token
        .rsplit_once("~hmac=")
        .ok_or(TokenError::Malformed("no hmac field after exp and acl"))?;
    if tag_hex.contains('~') {
        return Err(TokenError::Malformed("hmac must be the last field"));
    }
    // Lowercase only: accepting `A` for `a` would let a changed token still verify.
    if tag_hex.len() != TAG_HEX_LEN
        || !tag_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(TokenError::Malformed("hmac is not 64 lowercase hex digits"));
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(tag_hex, &mut tag)
        .map_err(|_| TokenError::Malformed("hmac is not 64 lowercase hex digits"))?;

    let (mut start, mut exp, mut acl, mut data) = (None, None, None, None);
    let mut seen = HashSet::new();
    for field in signed.split('~') {
        let (name, value) = field
            .split_once('=')
            .ok_or(TokenError::Malformed("field without '='"))?;
        if name.is_empty() {
            return Err(TokenError::Malformed("field without a name"));
        }
        if !seen.insert(name) {
            return Err(TokenError::Malformed("duplicate field"));
        }
        match name {
            "st" => start = Some(parse_time(value)?),
            "exp" => exp = Some(parse_time(value)?),
            "acl" => acl = Some(value),
            "data" => data = Some(value),
            "hmac" => return Err(TokenError::Malformed("duplicate field")),
            _ => {}
        }
    }
    let exp = exp.ok_or(TokenError::Malformed("no exp field"))?;
    let acl = acl
        .filter(|a| !a.is_empty())
        .ok_or(TokenError::Malformed("no acl field"))?;
    let claims = TokenClaims {
        start,
        exp,
        acl: acl.to_string(),
        data: data.map(str::to_string),
    };
    Ok((claims, signed, tag))
}

/// A Unix time: decimal digits only (`u64::from_str` would also take a `+`).
fn parse_time(value: &str) -> Result<u64, TokenError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed("time is not a number"));
    }
    value
        .parse()
        .map_err(|_| TokenError::Malformed("time is out of range"))
}

/// Whether one of the `!`-separated patterns of `acl` matches the decoded `path`.
fn acl_allows(acl: &str, path: &str) -> bool {
    let raw = path.split_once('?').map_or(path, |(p, _)| p);
    let decoded = percent_decode(raw.as_bytes());
    if decoded
        .split(|&b| b == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return false;
    }
    acl.split('!')
        .filter(|p| !p.is_empty())
        .any(|p| wildcard_match(p.as_bytes(), &decoded))
}

/// Glob matching where `*` matches any run of bytes. It only ever backtracks to the
/// last star, so the work is at most pattern length × path length, never exponential.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was in the pattern, and the text position it now covers up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The token of a request: the query parameter `__token__`, or else the cookie of that
/// name (from any `Cookie` header line), percent-decoded. Empty values are ignored.
pub fn extract(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(query) = uri.query() {
        let found = query.split('&').find_map(|param| {
            let (name, value) = param.split_once('=')?;
            (is_token_name(name) && !value.is_empty()).then_some(value)
        });
        if let Some(value) = found {
            return Some(decode_to_string(value.as_bytes()));
        }
    }
    for line in headers.get_all(http::header::COOKIE) {
        for pair in line.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            if name != TOKEN_NAME.as_bytes() {
                continue;
            }
            // RFC 6265 allows a cookie value in double quotes.
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            if !value.is_empty() {
                return Some(decode_to_string(value));
            }
        }
    }
    None
}

/// `query` without its `__token__` parameters, the others kept in order and byte for
/// byte; `None` if nothing is left. A parameter counts as the token when its
/// percent-decoded name is `__token__`, the same test [`extract`] uses, so whatever
/// `extract` reads is removed.
pub fn strip_from_query(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|param| {
            let name = param.split_once('=').map_or(*param, |(n, _)| n);
            !is_token_name(name)
        })
        .collect();
    if kept.iter().all(|p| p.is_empty()) {
        return None;
    }
    Some(kept.join("&"))
}

/// Whether a raw (possibly percent-encoded) query parameter name is `__token__`.
fn is_token_name(raw: &str) -> bool {
    raw == TOKEN_NAME
        || (raw.contains('%') && percent_decode(raw.as_bytes()) == TOKEN_NAME.as_bytes())
}

/// Percent-decoding (RFC 3986 §2.1): `%XX` becomes a byte; a `%` not followed by
/// two hex digits stays as it is, and `+` is not a space.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(s).collect()
}

/// Decodes a token value; bytes that are not UTF-8 are replaced, and the token then
/// fails verification (as invalid, not as missing).
fn decode_to_string(raw: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode(raw)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NOW: u64 = 1_700_000_100;

    fn key() -> TokenKey {
        TokenKey::from_config(HEX_KEY).expect("key")
    }

    fn claims(acl: &str) -> TokenClaims {
        TokenClaims {
            start: None,
            exp: NOW + 60,
            acl: acl.into(),
            data: None,
        }
    }

    /// Signs arbitrary field text, to build tokens `sign` would not make.
    fn sign_raw(key: &TokenKey, fields: &str) -> String {
        let tag = key.mac_over(fields).finalize().into_bytes();
        format!("{fields}~hmac={}", hex::encode(tag))
    }

    fn tag_of(token: &str) -> &str {
        token.rsplit_once("~hmac=").expect("hmac").1
    }

    #[test]
    fn sign_then_verify_returns_the_claims() {
        let c = TokenClaims {
            start: Some(NOW - 10),
            exp: NOW + 60,
            acl: "/v1/objects/abc/*".into(),
            data: Some("regions:eu,us".into()),
        };
        let t = sign(&key(), &c).expect("sign");
        assert!(t.starts_with(
            "st=1700000090~exp=1700000160~acl=/v1/objects/abc/*~data=regions:eu,us~hmac="
        ));
        assert_eq!(verify(&key(), &t, "/v1/objects/abc/1.mp4", NOW), Ok(c));
    }

    #[test]
    fn minimal_token_has_only_exp_acl_and_hmac() {
        let c = claims("/v1/objects/t.mp4");
        let t = sign(&key(), &c).expect("sign");
        assert_eq!(t.split('~').count(), 3);
        assert_eq!(tag_of(&t).len(), 64);
        assert_eq!(verify(&key(), &t, "/v1/objects/t.mp4", NOW), Ok(c));
    }

    /// Expected tags computed independently:
    /// `python3 -c 'import hmac,hashlib; print(hmac.new(KEY, MSG, hashlib.sha256).hexdigest())'`.
    #[test]
    fn known_answer_with_a_hex_key() {
        let c = TokenClaims {
            start: Some(1_700_000_000),
            exp: 1_700_003_600,
            acl: "/v1/objects/abc/*!/v1/objects/def/*".into(),
            data: Some("regions:eu,us".into()),
        };
        let expected = "st=1700000000~exp=1700003600~acl=/v1/objects/abc/*!/v1/objects/def/*\
            ~data=regions:eu,us\
            ~hmac=dc836816002423cabcb9c29a84d4b1c1704a7c6f6844ade574c1f94d7f85f729";
        assert_eq!(sign(&key(), &c).as_deref(), Ok(expected));
        assert_eq!(
            verify(&key(), expected, "/v1/objects/def/x", 1_700_000_000),
            Ok(c)
        );
    }

    #[test]
    fn known_answer_with_a_text_key() {
        let k = TokenKey::from_config("keyframe-playback-key").expect("key");
        let c = TokenClaims {
            start: None,
            exp: 1_700_003_600,
            acl: "/v1/objects/t.mp4".into(),
            data: None,
        };
        let expected = "exp=1700003600~acl=/v1/objects/t.mp4\
            ~hmac=dfedda93f0f6091eb255484f8ebfde824a33994b8a712b8c980a394148671980";
        assert_eq!(sign(&k, &c).as_deref(), Ok(expected));
    }

    #[test]
    fn expired_tokens_are_refused_from_exp_on() {
        let t = sign(&key(), &claims("/a")).expect("sign");
        assert!(verify(&key(), &t, "/a", NOW + 59).is_ok());
        for now in [NOW + 60, NOW + 61, u64::MAX] {
            let e = verify(&key(), &t, "/a", now).expect_err("expired");
            assert_eq!(e, TokenError::Expired);
            assert_eq!(e.code(), "token_expired");
        }
    }

    #[test]
    fn tokens_are_refused_before_st() {
        let c = TokenClaims {
            start: Some(NOW),
            ..claims("/a")
        };
        let t = sign(&key(), &c).expect("sign");
        assert_eq!(
            verify(&key(), &t, "/a", NOW - 1),
            Err(TokenError::NotYetValid)
        );
        assert!(verify(&key(), &t, "/a", NOW).is_ok());
        assert_eq!(TokenError::NotYetValid.code(), "token_invalid");
    }

    #[test]
    fn forged_or_foreign_signatures_are_refused() {
        let t = sign(&key(), &claims("/a")).expect("sign");
        let last = if t.ends_with('0') { "1" } else { "0" };
        let forged = format!("{}{last}", &t[..t.len() - 1]);
        let e = verify(&key(), &forged, "/a", NOW).expect_err("forged");
        assert_eq!(
            (e.clone(), e.code().as_str()),
            (TokenError::BadSignature, "token_invalid")
        );
        let other = TokenKey::from_config(&"ab".repeat(32)).expect("key");
        assert_eq!(verify(&other, &t, "/a", NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn changed_fields_keep_the_old_hmac_and_fail() {
        let t = sign(&key(), &claims("/v1/objects/a.mp4")).expect("sign");
        let bumped = t.replace(
            &format!("exp={}", NOW + 60),
            &format!("exp={}", NOW + 86_400),
        );
        assert_ne!(bumped, t);
        assert_eq!(
            verify(&key(), &bumped, "/v1/objects/a.mp4", NOW),
            Err(TokenError::BadSignature)
        );
        let widened = t.replace("acl=/v1/objects/a.mp4", "acl=/v1/objects/*");
        assert_eq!(
            verify(&key(), &widened, "/v1/objects/b.mp4", NOW),
            Err(TokenError::BadSignature)
        );
        let added = t.replace("~hmac=", "~data=regions:eu~hmac=");
        assert_eq!(
            verify(&key(), &added, "/v1/objects/a.mp4", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn other_paths_are_refused() {
        let t = sign(&key(), &claims("/v1/objects/a.mp4")).expect("sign");
        for path in [
            "/v1/objects/b.mp4",
            "/v1/objects/a.mp4x",
            "/v1/objects/a.mp",
            "/",
            "",
        ] {
            let e = verify(&key(), &t, path, NOW).expect_err(path);
            assert_eq!(
                (e.clone(), e.code().as_str()),
                (TokenError::PathNotAllowed, "token_invalid")
            );
        }
    }

    #[test]
    fn wildcards_and_pattern_lists() {
        let t = sign(
            &key(),
            &claims("/v1/objects/abc/*!/v1/objects/def.mp4!/v1/*/x.m3u8"),
        )
        .expect("sign");
        for ok in [
            "/v1/objects/abc/x",
            "/v1/objects/abc/x/y",
            "/v1/objects/abc/",
            "/v1/objects/def.mp4",
            "/v1/objects/q/x.m3u8",
            "/v1/a/b/x.m3u8",
        ] {
            assert!(verify(&key(), &t, ok, NOW).is_ok(), "{ok}");
        }
        for no in [
            "/v1/objects/abc",
            "/v1/objects/abcd/x",
            "/v1/objects/def.mp4/x",
            "/v1/x.m3u8y",
        ] {
            assert_eq!(
                verify(&key(), &t, no, NOW),
                Err(TokenError::PathNotAllowed),
                "{no}"
            );
        }
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"a*b*c", b"aXbYbZc"));
        assert!(!wildcard_match(b"a*b*c", b"aXbYbZ"));
        assert!(wildcard_match(b"**", b"anything/at/all"));
    }

    #[test]
    fn paths_are_decoded_without_query_and_dot_segments_never_match() {
        let t = sign(&key(), &claims("/v1/objects/abc/*!/v1/objects/a b.mp4")).expect("sign");
        assert!(verify(&key(), &t, "/v1/objects/a%20b.mp4", NOW).is_ok());
        assert!(verify(&key(), &t, "/v1/objects/abc%2Fx", NOW).is_ok());
        assert!(verify(&key(), &t, "/v1/objects/abc/x?y=1", NOW).is_ok());
        for escape in [
            "/v1/objects/abc/../secret.mp4",
            "/v1/objects/abc/%2e%2e/secret.mp4",
            "/v1/objects/abc%2F..%2Fsecret.mp4",
            "/v1/objects/abc/./x",
        ] {
            assert_eq!(
                verify(&key(), &t, escape, NOW),
                Err(TokenError::PathNotAllowed),
                "{escape}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_accepted_and_signed() {
        let t = sign_raw(
            &key(),
            &format!("ip=192.0.2.1~exp={}~acl=/a~id=xyz~data=", NOW + 60),
        );
        let c = verify(&key(), &t, "/a", NOW).expect("verify");
        assert_eq!(c.data.as_deref(), Some(""));
        let changed = t.replace("ip=192.0.2.1", "ip=192.0.2.2");
        assert_eq!(
            verify(&key(), &changed, "/a", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let k = key();
        let e = NOW + 60;
        let valid_tag = tag_of(&sign(&k, &claims("/a")).expect("sign")).to_string();
        let cases = [
            String::new(),
            "garbage".into(),
            "~".into(),
            "~~~".into(),
            "=".into(),
            "hmac=".into(),
            format!("exp={e}~acl=/a"),
            format!("exp={e}~acl=/a~hmac="),
            format!("hmac={valid_tag}"),
            sign_raw(&k, &format!("exp={e}")),
            sign_raw(&k, &format!("acl=/a~exp={e}~acl=/b")),
            sign_raw(&k, &format!("exp={e}~exp={e}~acl=/a")),
            sign_raw(&k, &format!("exp={e}~acl=/a~ip=1~ip=1")),
            sign_raw(&k, "acl=/a"),
            sign_raw(&k, &format!("exp={e}~acl=")),
            sign_raw(&k, "exp=abc~acl=/a"),
            sign_raw(&k, "exp=+99999999999~acl=/a"),
            sign_raw(&k, "exp=-1~acl=/a"),
            sign_raw(&k, "exp=~acl=/a"),
            sign_raw(&k, "exp=99999999999999999999999~acl=/a"),
            sign_raw(&k, &format!("st=x~exp={e}~acl=/a")),
            sign_raw(&k, &format!("exp={e}~acl=/a~noequals")),
            sign_raw(&k, &format!("exp={e}~acl=/a~=x")),
            sign_raw(&k, &format!("exp={e}~~acl=/a")),
            format!("exp={e}~acl=/a~hmac={}", "zz".repeat(32)),
            format!("exp={e}~acl=/a~hmac={}", valid_tag.to_uppercase()),
            format!("exp={e}~acl=/a~hmac={}", &valid_tag[..62]),
            format!("exp={e}~acl=/a~hmac={valid_tag}0"),
            format!("exp={e}~acl=/a~hmac={valid_tag}~ip=1"),
            format!("exp={e}~hmac={valid_tag}~acl=/a~hmac={valid_tag}"),
            format!(
                "exp={e}~acl=/{}~hmac={valid_tag}",
                "a".repeat(MAX_TOKEN_LEN)
            ),
            "~".repeat(1 << 20),
            "é~hmac=ü".into(),
        ];
        for t in &cases {
            let err = verify(&k, t, "/a", NOW).expect_err(t);
            assert!(matches!(err, TokenError::Malformed(_)), "{t:.80}: {err:?}");
            assert_eq!(err.code(), "token_invalid");
        }
    }

    #[test]
    fn sign_refuses_what_would_not_parse_back() {
        let k = key();
        for bad in [
            claims(""),
            claims("/a~ip=1"),
            TokenClaims {
                data: Some("x~hmac=00".into()),
                ..claims("/a")
            },
            claims(&"/a".repeat(MAX_TOKEN_LEN)),
        ] {
            assert!(
                matches!(sign(&k, &bad), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_from_config() {
        let c = claims("/a");
        let hex_signed = sign(&key(), &c).expect("sign");
        let upper = TokenKey::from_config(&HEX_KEY.to_uppercase()).expect("key");
        assert_eq!(sign(&upper, &c), Ok(hex_signed.clone()));
        let padded = TokenKey::from_config(&format!("  {HEX_KEY}\n")).expect("key");
        assert_eq!(sign(&padded, &c), Ok(hex_signed.clone()));
        // Odd-length hex is text, not hex.
        let odd = TokenKey::from_config(&HEX_KEY[..33]).expect("key");
        assert_ne!(sign(&odd, &c), Ok(hex_signed));
        assert!(TokenKey::from_config("sixteen-bytes-ok").is_ok());
        for weak in [
            "",
            "   ",
            "short",
            "fifteen-bytes!!",
            "0011",
            &HEX_KEY[..30],
            "12345678901234567890",
        ] {
            let e = TokenKey::from_config(weak).expect_err(weak);
            assert_eq!(e, TokenError::WeakKey);
        }
    }

    #[test]
    fn key_debug_hides_the_key() {
        let text = "a-very-secret-playback-key";
        for k in [key(), TokenKey::from_config(text).expect("key")] {
            let shown = format!("{k:?} {k:#?}");
            assert!(
                !shown.contains(text) && !shown.contains("0001020304") && !shown.contains("secret"),
                "{shown}"
            );
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(TokenError::Missing.code(), "token_missing");
        assert_eq!(TokenError::Expired.code(), "token_expired");
        for e in [
            TokenError::Malformed("x"),
            TokenError::BadSignature,
            TokenError::NotYetValid,
            TokenError::PathNotAllowed,
            TokenError::WeakKey,
        ] {
            assert_eq!(e.code(), "token_invalid", "{e}");
        }
    }

    #[test]
    fn regions_from_data() {
        let with = |data: Option<&str>| TokenClaims {
            data: data.map(String::from),
            ..claims("/a")
        };
        assert_eq!(with(None).regions(), None);
        assert_eq!(with(Some("user:42")).regions(), None);
        assert_eq!(
            with(Some("regions:eu,us")).regions(),
            Some(vec!["eu", "us"])
        );
        assert_eq!(
            with(Some("user:42; regions:eu, us ;x:y")).regions(),
            Some(vec!["eu", "us"])
        );
        assert_eq!(with(Some("regions:")).regions(), Some(vec![]));
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    fn cookies(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                http::header::COOKIE,
                HeaderValue::from_str(l).expect("header"),
            );
        }
        h
    }

    #[test]
    fn extract_from_query() {
        let none = HeaderMap::new();
        assert_eq!(
            extract(&uri("/a?x=1&__token__=exp=1~acl=/*~hmac=ab&y=2"), &none).as_deref(),
            Some("exp=1~acl=/*~hmac=ab")
        );
        assert_eq!(
            extract(
                &uri("/a?__token__=exp%3D1%7Eacl%3D%2Fa%2A%7Edata%3Dregions:eu%2Cus+"),
                &none
            )
            .as_deref(),
            Some("exp=1~acl=/a*~data=regions:eu,us+")
        );
        assert_eq!(
            extract(&uri("/a?%5F%5Ftoken%5F%5F=t"), &none).as_deref(),
            Some("t")
        );
        assert_eq!(
            extract(&uri("/a?__token__=&__token__=second"), &none).as_deref(),
            Some("second")
        );
        assert_eq!(extract(&uri("/a?__token=x&token=y&__token__"), &none), None);
        assert_eq!(extract(&uri("/a"), &none), None);
    }

    #[test]
    fn extract_from_cookie_and_query_first() {
        let h = cookies(&["a=1; b=2", "c=3;  __token__=exp=1~acl=/a~hmac=cd ; d=4"]);
        assert_eq!(
            extract(&uri("/a"), &h).as_deref(),
            Some("exp=1~acl=/a~hmac=cd")
        );
        assert_eq!(extract(&uri("/a?__token__=q"), &h).as_deref(), Some("q"));
        assert_eq!(
            extract(&uri("/a?__token__="), &h).as_deref(),
            Some("exp=1~acl=/a~hmac=cd")
        );
        let h = cookies(&["__token__=\"data%3Dregions:eu%2Cus\""]);
        assert_eq!(
            extract(&uri("/a"), &h).as_deref(),
            Some("data=regions:eu,us")
        );
        assert_eq!(
            extract(&uri("/a"), &cookies(&["x__token__=1; __token__="])),
            None
        );
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"__token__=\xff").expect("header"),
        );
        assert_eq!(extract(&uri("/a"), &h).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn extracted_token_verifies() {
        let t = sign(&key(), &claims("/v1/objects/*")).expect("sign");
        let encoded: String = t
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let got = extract(
            &uri(&format!("/v1/objects/a?__token__={encoded}")),
            &HeaderMap::new(),
        )
        .expect("token");
        assert!(verify(&key(), &got, "/v1/objects/a", NOW).is_ok());
    }

    #[test]
    fn strip_from_query_keeps_other_params() {
        assert_eq!(
            strip_from_query("b=%2F&__token__=x~y&a=1+2").as_deref(),
            Some("b=%2F&a=1+2")
        );
        assert_eq!(
            strip_from_query("__token__=x&z=%7e").as_deref(),
            Some("z=%7e")
        );
        assert_eq!(strip_from_query("a=1&__token__=x").as_deref(), Some("a=1"));
        assert_eq!(
            strip_from_query("a=1&%5f_token__=x&__token__&b").as_deref(),
            Some("a=1&b")
        );
        assert_eq!(
            strip_from_query("__token___=1&x__token__=2").as_deref(),
            Some("__token___=1&x__token__=2")
        );
        assert_eq!(strip_from_query("a=1&&b=2&").as_deref(), Some("a=1&&b=2&"));
        assert_eq!(strip_from_query("__token__=x"), None);
        assert_eq!(strip_from_query("__token__=x&__token__=y&"), None);
        assert_eq!(strip_from_query(""), None);
    }

    fn valid_claims() -> impl Strategy<Value = TokenClaims> {
        (
            proptest::option::of(0..=NOW),
            NOW + 1..=u64::from(u32::MAX) * 4,
            "/v1/objects/[a-z0-9_-][a-z0-9._-]{0,11}(/\\*)?",
            proptest::option::of("[ -}]{0,24}"),
        )
            .prop_map(|(start, exp, acl, data)| TokenClaims {
                start,
                exp,
                acl,
                data,
            })
    }

    fn path_for(acl: &str) -> String {
        acl.replace('*', "x/y.mp4")
    }

    proptest! {
        #[test]
        fn verify_never_panics(token in ".{0,300}", path in ".{0,40}", now in any::<u64>()) {
            let _ = verify(&key(), &token, &path, now);
        }

        #[test]
        fn verify_never_panics_on_token_like_input(
            fields in proptest::collection::vec(
                "(st|exp|acl|data|hmac|ip)=[0-9a-f/*!.%~=]{0,70}",
                0..6,
            ),
            path in "[/a-z*.%0-9]{0,20}",
        ) {
            let _ = verify(&key(), &fields.join("~"), &path, NOW);
        }

        #[test]
        fn signed_claims_round_trip(c in valid_claims()) {
            let t = sign(&key(), &c).expect("sign");
            prop_assert_eq!(verify(&key(), &t, &path_for(&c.acl), NOW), Ok(c));
        }

        #[test]
        fn any_single_character_change_fails(
            c in valid_claims(),
            at in any::<prop::sample::Index>(),
            ch in proptest::char::range(' ', '~'),
        ) {
            let t = sign(&key(), &c).expect("sign");
            let i = at.index(t.len());
            prop_assume!(t.as_bytes()[i] != ch as u8);
            let mut changed = t.into_bytes();
            changed[i] = ch as u8;
            let changed = String::from_utf8(changed).expect("ascii");
            let result = verify(&key(), &changed, &path_for(&c.acl), NOW);
            prop_assert!(result.is_err(), "{} verified", changed);
        }

        #[test]
        fn strip_removes_exactly_the_token_params(
            params in proptest::collection::vec(
                (
                    prop_oneof!["__token__", "%5F%5Ftoken%5f%5f", "__token", "a", ""],
                    proptest::option::of("[a-z0-9~%]{0,6}"),
                ),
                0..6,
            ),
        ) {
            let text = |(n, v): &(String, Option<String>)| match v {
                Some(v) => format!("{n}={v}"),
                None => n.clone(),
            };
            let q = params.iter().map(text).collect::<Vec<_>>().join("&");
            let kept: Vec<String> = params
                .iter()
                .filter(|(n, _)| n != "__token__" && n != "%5F%5Ftoken%5f%5f")
                .map(text)
                .collect();
            let expected = if kept.iter().all(String::is_empty) {
                None
            } else {
                Some(kept.join("&"))
            };
            let stripped = strip_from_query(&q);
            prop_assert_eq!(&stripped, &expected);
            if let Some(Ok(u)) = stripped.map(|rest| format!("/a?{rest}").parse::<Uri>()) {
                prop_assert_eq!(extract(&u, &HeaderMap::new()), None);
            }
        }
    }
}
