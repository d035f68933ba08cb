//! Rights and playback URLs: whether a caller's region may watch a title now, and
//! the signed edge URLs players and pages fetch objects from.
//!
//! A URL is `<edge>/v1/objects/<key>`, plus `?__token__=<token>` when a token key is
//! configured: an EdgeAuth v2 token whose `acl` is exactly that object's path and,
//! for playback, whose `data` is `regions:<region>` so that edges can check the
//! region too.

use keyframe_core::token::{sign, TokenClaims, TokenError, TokenKey};
use keyframe_http::manifest::token_param;

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
        Ok(format!("{edge}{path}?{}", token_param(&token)))
    }

    /// The URLs of `keys` on `edge` under ONE token whose `acl` opens every key in
    /// `acl_keys` ([`acl_pattern`] each, `!`-separated): a player given one of them
    /// (an HLS or DASH manifest) may fetch every object of the title, and nothing
    /// else.
    pub fn urls_sharing_token(
        &self,
        edge: &str,
        keys: &[&str],
        acl_keys: &[&str],
        exp_unix: u64,
        region: Option<&str>,
    ) -> Result<Vec<String>, TokenError> {
        let path = |k: &str| format!("/v1/objects/{k}");
        let Some(key) = &self.key else {
            return Ok(keys.iter().map(|k| format!("{edge}{}", path(k))).collect());
        };
        let mut patterns: Vec<String> = acl_keys.iter().map(|k| acl_pattern(k)).collect();
        patterns.sort_unstable();
        patterns.dedup();
        let token = sign(
            key,
            &TokenClaims {
                start: None,
                exp: exp_unix,
                acl: patterns.join("!"),
                data: region.map(|r| format!("regions:{r}")),
            },
        )?;
        let q = token_param(&token);
        Ok(keys
            .iter()
            .map(|k| format!("{edge}{}?{q}", path(k)))
            .collect())
    }
}

/// Hex digits of an object's SHA-256 that its [`acl_pattern`] keeps: 64 bits, so
/// that another object matching by chance is out of reach (about one in 10^19
/// per pair), where a whole path costs five times as much in every reference of a
/// manifest the token is written into.
pub const ACL_HASH_HEX: usize = 16;

/// The `acl` pattern that opens one object: for a content-addressed key
/// (`sha256/ab/<64 hex>.<ext>`) `*/<first 16 hex>*`, which matches that object's
/// path and no other object's (no other key has a path segment starting with
/// those 64 bits of its hash, and a path with `..` in it never matches); for any
/// other key, its exact path. A title's objects cannot share a path prefix (each
/// is addressed by its own bytes), so its token lists one short pattern per
/// object: about 20 bytes each against 90 for the whole path, and the token is
/// repeated in every segment reference of a media playlist.
pub fn acl_pattern(object_key: &str) -> String {
    let hash = object_key
        .strip_prefix("sha256/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(dir, file)| {
            let hex = file.split_once('.').map_or(file, |(h, _)| h);
            let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            (hex.len() == 64 && lower_hex(hex) && hex.starts_with(dir) && dir.len() == 2)
                .then_some(hex)
        });
    match hash {
        Some(hex) => format!("*/{}*", &hex[..ACL_HASH_HEX]),
        None => format!("/v1/objects/{object_key}"),
    }
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
        assert!(
            !token.contains('/'),
            "a '/' in the query misleads ffmpeg: {token}"
        );
        let token = &token.replace("%2F", "/");
        assert_eq!(base, "http://e/v1/objects/a/b.mp4");
        assert!(token.starts_with("exp=4000000000~acl=/v1/objects/a/b.mp4~data=regions:eu~hmac="));
        let claims =
            keyframe_core::token::verify(&key, token, "/v1/objects/a/b.mp4", 1).expect("valid");
        assert_eq!(claims.regions(), Some(vec!["eu"]));
        assert!(keyframe_core::token::verify(&key, token, "/v1/objects/a/c.mp4", 1).is_err());
    }

    #[test]
    fn one_token_opens_every_object_of_a_title_and_no_other() {
        let key = TokenKey::from_config(&"ab".repeat(16)).expect("key");
        let signer = Signer::new(Some(key.clone()));
        let urls = signer
            .urls_sharing_token(
                "http://e",
                &["t/master.m3u8", "t/a.mpd"],
                &["t/master.m3u8", "t/a.mpd", "t/v1.mp4", "t/v1.m3u8"],
                4_000_000_000,
                Some("eu"),
            )
            .expect("urls");
        assert_eq!(urls.len(), 2);
        let (base, token) = urls[0].split_once("?__token__=").expect("token");
        let token = &token.replace("%2F", "/");
        assert_eq!(base, "http://e/v1/objects/t/master.m3u8");
        assert!(
            urls[1].ends_with(&token.replace('/', "%2F")),
            "one token for both"
        );
        for path in ["t/master.m3u8", "t/a.mpd", "t/v1.mp4", "t/v1.m3u8"] {
            keyframe_core::token::verify(&key, token, &format!("/v1/objects/{path}"), 1)
                .expect(path);
        }
        assert!(keyframe_core::token::verify(&key, token, "/v1/objects/t/other.mp4", 1).is_err());
        let plain = Signer::new(None)
            .urls_sharing_token("http://e", &["a.mpd"], &["a.mpd"], 1, None)
            .expect("urls");
        assert_eq!(plain, vec!["http://e/v1/objects/a.mpd".to_string()]);
    }

    /// A content key `sha256/<2 hex>/<64 hex>.<ext>` of `byte` repeated.
    fn content_key(byte: &str, ext: &str) -> String {
        let hex = byte.repeat(32);
        format!("sha256/{}/{hex}.{ext}", &hex[..2])
    }

    #[test]
    fn a_titles_token_lists_a_short_pattern_per_object() {
        let key = TokenKey::from_config(&"ab".repeat(16)).expect("key");
        let signer = Signer::new(Some(key.clone()));
        let title: Vec<String> = ["0a", "1b", "2c", "3d", "4e", "5f"]
            .iter()
            .zip(["mp4", "mp4", "m4a", "m3u8", "m3u8", "mpd"])
            .map(|(b, e)| content_key(b, e))
            .collect();
        let keys: Vec<&str> = title.iter().map(String::as_str).collect();
        let urls = signer
            .urls_sharing_token("http://e", &keys[3..4], &keys, 4_000_000_000, None)
            .expect("urls");
        let token = &urls[0]
            .split_once("?__token__=")
            .expect("token")
            .1
            .replace("%2F", "/");
        assert!(
            token.contains("~acl=*/0a0a0a0a0a0a0a0a*!*/1b1b1b1b1b1b1b1b*!"),
            "{token}"
        );
        // Six patterns and the signature: no whole path in it.
        assert!(token.len() < 220, "{} bytes: {token}", token.len());
        for k in &title {
            keyframe_core::token::verify(&key, token, &format!("/v1/objects/{k}"), 1).expect(k);
        }
        // Another title's objects, a near miss, and paths that only look alike.
        let other = content_key("0b", "mp4");
        let near = format!("sha256/0a/0a0a0a0a0a0a0a0b{}.mp4", "0".repeat(48));
        for path in [
            format!("/v1/objects/{other}"),
            format!("/v1/objects/{near}"),
            format!("/v1/objects/{}/../../{other}", title[0]),
            "/v1/objects/sha256/0a/0a0a0a0a0a0a0a0".to_string(),
        ] {
            assert!(
                keyframe_core::token::verify(&key, token, &path, 1).is_err(),
                "{path}"
            );
        }
    }

    #[test]
    fn acl_patterns_of_content_keys_and_others() {
        assert_eq!(
            acl_pattern(&content_key("ab", "mp4")),
            "*/abababababababab*"
        );
        // Anything that is not a content address keeps its exact path.
        for k in [
            "t/master.m3u8",
            "sha256/ab/abab.mp4",
            "sha256/cd/abababababababababababababababababababababababababababababababab.mp4",
            "sha256/AB/ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB.mp4",
        ] {
            assert_eq!(acl_pattern(k), format!("/v1/objects/{k}"), "{k}");
        }
    }

    #[test]
    fn image_expiry_is_stable_for_a_while() {
        let a = image_expiry(1_200_001_000, 3600);
        let b = image_expiry(1_200_500_000, 3600);
        assert_eq!(a, b);
        assert_eq!(a, 1_204_200);
    }
}
