//! Rights and playback URLs: whether a caller's region may watch a title now, and
//! the signed edge URLs players and pages fetch objects from.
//!
//! A URL is `<edge>/v1/objects/<key>`, plus `?__token__=<token>` when a token key is
//! configured: an EdgeAuth v2 token whose `acl` is exactly that object's path and,
//! for playback, whose `data` is `regions:<region>` so that edges can check the
//! region too.

use keyframe_core::token::{sign, TokenClaims, TokenError, TokenKey};

use crate::meta::{Right, ANY_REGION};

/// Where a title stands for one region at one time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Availability {
    /// The caller's region (`null` when unknown).
    pub region: Option<String>,
    /// Whether it may be watched now.
    pub available: bool,
    /// When the current (or next) window opens, Unix ms; `null` = open since always.
    pub available_from: Option<i64>,
    /// When the current (or next) window closes, Unix ms; `null` = never.
    pub available_until: Option<i64>,
}

/// Where `rights` leave a caller in `region` at `now_ms`: the open window that lasts
/// longest, else the next one to open. A caller of unknown region is served only by
/// rights for every region (`*`).
pub fn availability(rights: &[Right], region: Option<&str>, now_ms: i64) -> Availability {
    let mine = || {
        rights
            .iter()
            .filter(move |r| r.region == ANY_REGION || Some(r.region.as_str()) == region)
    };
    let open = mine()
        .filter(|r| r.open_at(now_ms))
        .max_by_key(|r| r.available_until.unwrap_or(i64::MAX));
    let chosen = open.or_else(|| {
        mine()
            .filter(|r| r.available_from.is_some_and(|f| f > now_ms))
            .min_by_key(|r| r.available_from)
    });
    Availability {
        region: region.map(str::to_string),
        available: open.is_some(),
        available_from: chosen.and_then(|r| r.available_from),
        available_until: chosen.and_then(|r| r.available_until),
    }
}

/// Whether `s` is usable as a region name: 1–32 of `[a-z0-9_-]`. Anything else from
/// a header is ignored, so that it can never change a token's `data`.
pub fn valid_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Makes object URLs, signed when a key is configured.
#[derive(Clone, Debug)]
pub struct Signer {
    key: Option<TokenKey>,
}

impl Signer {
    pub fn new(key: Option<TokenKey>) -> Signer {
        Signer { key }
    }

    /// Whether URLs carry tokens.
    pub fn signs(&self) -> bool {
        self.key.is_some()
    }

    /// The URL of `object_key` on `edge` (a base URL without trailing `/`), valid
    /// until `exp_unix` (seconds) and, when `region` is given, only for that region.
    pub fn url(
        &self,
        edge: &str,
        object_key: &str,
        exp_unix: u64,
        region: Option<&str>,
    ) -> Result<String, TokenError> {
        let path = format!("/v1/objects/{object_key}");
        let Some(key) = &self.key else {
            return Ok(format!("{edge}{path}"));
        };
        let token = sign(
            key,
            &TokenClaims {
                start: None,
                exp: exp_unix,
                acl: path.clone(),
                data: region.map(|r| format!("regions:{r}")),
            },
        )?;
        Ok(format!("{edge}{path}?__token__={}", query_escape(&token)))
    }
}

/// Percent-encodes what may not stand in a query value as is. A token's own
/// characters (`=`, `~`, `/`, `:`, `,`, `!`, `*`) are all allowed there, so tokens
/// stay readable, as EdgeAuth tokens usually are.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=/:,!*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The expiry (Unix seconds) of an image token issued at `now_ms` with lifetime
/// `ttl_secs`, rounded up to a sixth of the lifetime so that the same image keeps
/// the same URL for a while and browsers can cache it.
pub fn image_expiry(now_ms: i64, ttl_secs: u64) -> u64 {
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let bucket = (ttl_secs / 6).max(1);
    (now + ttl_secs).div_ceil(bucket) * bucket
}

#[cfg(test)]
mod tests {
    use super::*;

    fn right(region: &str, from: Option<i64>, until: Option<i64>) -> Right {
        Right {
            region: region.into(),
            available_from: from,
            available_until: until,
        }
    }

    #[test]
    fn availability_per_region_and_window() {
        let rights = vec![right("eu", None, None), right("us", Some(100), Some(200))];
        assert!(availability(&rights, Some("eu"), 0).available);
        let us = availability(&rights, Some("us"), 50);
        assert!(!us.available);
        assert_eq!(
            (us.available_from, us.available_until),
            (Some(100), Some(200))
        );
        assert!(availability(&rights, Some("us"), 150).available);
        assert!(!availability(&rights, Some("us"), 200).available);
        assert!(!availability(&rights, Some("ap"), 0).available);
        assert!(!availability(&rights, None, 0).available);
        let world = vec![right("*", None, None)];
        assert!(availability(&world, None, 0).available);
        assert!(availability(&world, Some("ap"), 0).available);
    }

    #[test]
    fn region_names() {
        assert!(valid_region("eu") && valid_region("us-east_1"));
        assert!(!valid_region("") && !valid_region("EU") && !valid_region("eu;x"));
        assert!(!valid_region("eu,us") && !valid_region(&"a".repeat(33)));
    }

    #[test]
    fn urls_are_signed_for_exactly_one_object() {
        let unsigned = Signer::new(None);
        assert_eq!(
            unsigned
                .url("http://e", "a/b.mp4", 10, Some("eu"))
                .expect("url"),
            "http://e/v1/objects/a/b.mp4"
        );
        let key = TokenKey::from_config(&"ab".repeat(16)).expect("key");
        let signed = Signer::new(Some(key.clone()));
        let url = signed
            .url("http://e", "a/b.mp4", 4_000_000_000, Some("eu"))
            .expect("url");
        let (base, token) = url.split_once("?__token__=").expect("token");
        assert_eq!(base, "http://e/v1/objects/a/b.mp4");
        assert!(token.starts_with("exp=4000000000~acl=/v1/objects/a/b.mp4~data=regions:eu~hmac="));
        let claims =
            keyframe_core::token::verify(&key, token, "/v1/objects/a/b.mp4", 1).expect("valid");
        assert_eq!(claims.regions(), Some(vec!["eu"]));
        assert!(keyframe_core::token::verify(&key, token, "/v1/objects/a/c.mp4", 1).is_err());
        assert_eq!(query_escape("a b&c+d#e%"), "a%20b%26c%2Bd%23e%25");
    }

    #[test]
    fn image_expiry_is_stable_for_a_while() {
        let a = image_expiry(1_200_001_000, 3600);
        let b = image_expiry(1_200_500_000, 3600);
        assert_eq!(a, b);
        assert_eq!(a, 1_204_200);
    }
}
