//! The `Cache-Status` field (RFC 9211): this cache's member, after those of the
//! caches upstream of it.

use http::{HeaderMap, HeaderValue};

/// Why a request went forward (RFC 9211 §2.2 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fwd {
    Bypass,
    Method,
    UriMiss,
    VaryMiss,
    Miss,
    Request,
    Stale,
    Partial,
}

impl Fwd {
    fn token(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Partial => "partial",
        }
    }
}

/// One `Cache-Status` entry (RFC 9211).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Fwd>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<String>,
}

fn is_sf_token(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '*')
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}

fn sf_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl CacheStatus {
    /// The header value, e.g. `keyframe; hit; ttl=3599` or
    /// `keyframe; fwd=uri-miss; fwd-status=200; stored`.
    pub fn to_header_value(&self, cache_name: &str) -> HeaderValue {
        use std::fmt::Write;
        let mut s = String::with_capacity(cache_name.len() + 48);
        if is_sf_token(cache_name) {
            s.push_str(cache_name);
        } else {
            s.push_str(&sf_string(cache_name));
        }
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            s.push_str("; fwd=");
            s.push_str(f.token());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(t) = self.ttl {
            let _ = write!(s, "; ttl={t}");
        }
        if let Some(d) = &self.detail {
            s.push_str("; detail=");
            s.push_str(&sf_string(d));
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("keyframe"))
    }
}

/// Sets this cache's `Cache-Status` member after the ones upstream caches added
/// (RFC 9211: the list runs from the cache nearest the origin to the one nearest
/// the client), so a client sees a shield's hit behind a regional miss.
pub fn set_cache_status(h: &mut HeaderMap, ours: HeaderValue) {
    let upstream: Vec<&str> = h
        .get_all("cache-status")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let value = if upstream.is_empty() {
        ours
    } else {
        let ours_text = ours.to_str().unwrap_or_default();
        HeaderValue::from_str(&format!("{}, {ours_text}", upstream.join(", "))).unwrap_or(ours)
    };
    h.insert("cache-status", value);
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9211.
    #[test]
    fn cache_status_values() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(3599),
            ..Default::default()
        };
        assert_eq!(hit.to_header_value("keyframe"), "keyframe; hit; ttl=3599");
        let miss = CacheStatus {
            fwd: Some(Fwd::UriMiss),
            fwd_status: Some(200),
            stored: true,
            ..Default::default()
        };
        assert_eq!(
            miss.to_header_value("keyframe"),
            "keyframe; fwd=uri-miss; fwd-status=200; stored"
        );
        let odd = CacheStatus {
            detail: Some("say \"hi\"".into()),
            ..Default::default()
        };
        assert_eq!(
            odd.to_header_value("my cache"),
            "\"my cache\"; detail=\"say \\\"hi\\\"\""
        );
    }
}
