//! The catalog's configuration. Every field has a documented default; the binary
//! layers flags over `KEYFRAME_*` environment over the config file over these.
//!
//! Options the edge has too (`token_key`, `admin_token`, `region_header`,
//! `region_networks`) share their names, types and meaning with it, so one config file
//! serves a whole node.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use keyframe_origin::region::RegionMap;
use keyframe_origin::token::TokenKey;
use serde::{Deserialize, Serialize};

/// Configuration of a catalog server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the catalog API and web page listen. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The public URL of the edge that players are sent to when `region_edges` has no
    /// entry for the caller's region. Default `http://127.0.0.1:8081`.
    pub edge_url: String,
    /// The key that signs playback tokens (shared with edges and origins).
    /// Default: none (playback URLs carry no token).
    pub token_key: Option<String>,
    /// The token that admin endpoints require (`Authorization: Bearer …`).
    /// Default: none (admin endpoints off).
    pub admin_token: Option<String>,
    /// Seconds in-flight requests may run after shutdown starts. Default 10.
    pub grace_secs: u64,

    /// The request header, set by a trusted load balancer, that names the client's
    /// region; empty = none. Default `X-Keyframe-Region` (as on the edge).
    pub region_header: String,
    /// Networks mapped to regions, as `CIDR=REGION` entries (e.g. `10.0.0.0/8=eu`),
    /// used when the region header is absent. Default: none.
    #[serde(deserialize_with = "keyframe_origin::config::string_list")]
    pub region_networks: Vec<String>,
    /// The region of clients that neither the header nor the network table place;
    /// empty = unknown (such clients see only titles licensed to every region, `*`).
    /// Default: empty.
    pub default_region: String,
    /// The edge base URL per region (`eu = "https://eu.cdn.example"`); a region
    /// missing here uses `edge_url`. Also accepted as `eu=URL,us=URL` text.
    /// Default: none.
    #[serde(deserialize_with = "string_map")]
    pub region_edges: BTreeMap<String, String>,
    /// Whether anonymous viewers may get playback URLs. Default `false` (sign in).
    pub public_content: bool,
    /// Lifetime of a playback token in seconds. Default 300.
    pub play_token_ttl_secs: u64,
    /// Lifetime of the tokens on image URLs (posters, avatars) in seconds; images
    /// appear in lists, so their tokens live longer. Default 3600.
    pub image_token_ttl_secs: u64,

    /// Lifetime of a session in seconds. Default 2592000 (30 days).
    pub session_ttl_secs: u64,
    /// Whether the session cookie is marked `Secure` (set it when served over
    /// HTTPS). Default `false`.
    pub cookie_secure: bool,
    /// Login attempts allowed per username in `login_window_secs`; a successful
    /// login resets the count. Default 10.
    pub login_attempts_per_user: u32,
    /// Login attempts allowed per client address in `login_window_secs`. Default 50.
    pub login_attempts_per_client: u32,
    /// The login rate-limit window in seconds. Default 300.
    pub login_window_secs: u64,
    /// A request header, set by a trusted proxy, holding the client's address (the
    /// first entry of a list); empty = the peer address. Default: empty.
    pub client_ip_header: String,
    /// Argon2id memory cost in KiB for new password hashes. Default 19456 (OWASP).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations for new password hashes. Default 2.
    pub argon2_iterations: u32,
    /// Argon2id lanes for new password hashes. Default 1.
    pub argon2_parallelism: u32,

    /// The largest avatar image accepted, in bytes. Default 10485760 (10 MiB).
    pub max_avatar_bytes: u64,
    /// Entries each hot-read cache (content, users, sessions, viewers' resume points)
    /// keeps. Default 100000.
    pub cache_entries: u64,

    /// Watch history: below this percentage of a title a viewer gets no resume
    /// point. Default 5.
    pub history_resume_min_percent: f64,
    /// Watch history: at or above this percentage a title counts as played (and its
    /// resume point is cleared). Default 90.
    pub history_played_percent: f64,
    /// Events `POST /api/history` accepts in one request. Default 1000.
    pub history_max_batch: u32,
    /// Events the history write queue holds (waiting or being written); requests
    /// beyond it get 503 with `Retry-After`. Default 100000.
    pub history_queue_events: u32,
    /// Events the history writer commits in one transaction at most. Default 5000.
    pub history_commit_events: u32,
    /// Half-life of the trending score in seconds. Changing it needs a rebuild of
    /// the trending table (`history::trending::rebuild`). Default 86400 (24 h).
    pub trending_half_life_secs: u64,
    /// Seconds between runs of the recommendation batch inside the catalog server;
    /// 0 = never (run `keyframe recommend` instead). The first run is one interval
    /// after start. Default 3600.
    pub recommend_interval_secs: u64,
    /// Similar titles kept per title. Default 20.
    pub recommend_top_k: u32,
    /// Personal picks kept per viewer. Default 20.
    pub recommend_per_user: u32,
    /// A viewer's most recent titles that seed their picks ("because you watched").
    /// Default 10.
    pub recommend_seed_titles: u32,
    /// Heavy viewers count with only their most recent titles, at most this many, in
    /// the similarity computation. Default 200.
    pub recommend_max_titles_per_user: u32,
    /// Threads of the in-process batch; 0 = one per core. Default 0.
    pub recommend_threads: u32,
    /// Where the batch runs: `local` (in this process, streaming from either
    /// database) or `sql` (as SQL inside PostgreSQL, which Citus can distribute).
    /// Default `local`.
    pub recommend_engine: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            edge_url: "http://127.0.0.1:8081".into(),
            token_key: None,
            admin_token: None,
            grace_secs: 10,
            region_header: "X-Keyframe-Region".into(),
            region_networks: Vec::new(),
            default_region: String::new(),
            region_edges: BTreeMap::new(),
            public_content: false,
            play_token_ttl_secs: 300,
            image_token_ttl_secs: 3600,
            session_ttl_secs: 30 * 24 * 3600,
            cookie_secure: false,
            login_attempts_per_user: 10,
            login_attempts_per_client: 50,
            login_window_secs: 300,
            client_ip_header: String::new(),
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_avatar_bytes: 10 << 20,
            cache_entries: 100_000,
            history_resume_min_percent: 5.0,
            history_played_percent: 90.0,
            history_max_batch: 1000,
            history_queue_events: 100_000,
            history_commit_events: 5000,
            trending_half_life_secs: 24 * 3600,
            recommend_interval_secs: 3600,
            recommend_top_k: 20,
            recommend_per_user: 20,
            recommend_seed_titles: 10,
            recommend_max_titles_per_user: 200,
            recommend_threads: 0,
            recommend_engine: "local".into(),
        }
    }
}

/// A configuration value the catalog cannot run with; the message names the option.
#[derive(Debug, thiserror::Error)]
#[error("{option}: {message}")]
pub struct ConfigError {
    pub option: &'static str,
    pub message: String,
}

fn bad(option: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        message: message.into(),
    }
}

impl Config {
    /// Checks every option that can be wrong, for a one-line error at startup.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.region_map()?;
        self.signing_key()?;
        self.argon2_params()?;
        for (option, url) in std::iter::once(("edge_url", &self.edge_url))
            .chain(self.region_edges.values().map(|u| ("region_edges", u)))
        {
            let parsed = url::Url::parse(url).map_err(|e| bad(option, format!("'{url}': {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad(option, format!("'{url}' is not an http(s) URL")));
            }
        }
        for (name, n) in [
            ("play_token_ttl_secs", self.play_token_ttl_secs),
            ("image_token_ttl_secs", self.image_token_ttl_secs),
            ("session_ttl_secs", self.session_ttl_secs),
            ("login_window_secs", self.login_window_secs),
        ] {
            if n == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        let (lo, hi) = (self.history_resume_min_percent, self.history_played_percent);
        if !(0.0..=100.0).contains(&lo) {
            return Err(bad("history_resume_min_percent", "must be 0–100"));
        }
        if !(lo..=100.0).contains(&hi) {
            return Err(bad(
                "history_played_percent",
                "must be 0–100 and at least history_resume_min_percent",
            ));
        }
        for (name, n) in [
            ("history_max_batch", u64::from(self.history_max_batch)),
            ("history_queue_events", u64::from(self.history_queue_events)),
            (
                "history_commit_events",
                u64::from(self.history_commit_events),
            ),
            ("trending_half_life_secs", self.trending_half_life_secs),
            ("recommend_top_k", u64::from(self.recommend_top_k)),
            ("recommend_per_user", u64::from(self.recommend_per_user)),
            (
                "recommend_seed_titles",
                u64::from(self.recommend_seed_titles),
            ),
            (
                "recommend_max_titles_per_user",
                u64::from(self.recommend_max_titles_per_user),
            ),
        ] {
            if n == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        if self.history_queue_events < self.history_max_batch {
            return Err(bad(
                "history_queue_events",
                "must be at least history_max_batch",
            ));
        }
        if !matches!(self.recommend_engine.as_str(), "local" | "sql") {
            return Err(bad(
                "recommend_engine",
                format!("'{}' is not local or sql", self.recommend_engine),
            ));
        }
        if !self.client_ip_header.is_empty()
            && http::HeaderName::try_from(self.client_ip_header.as_str()).is_err()
        {
            return Err(bad(
                "client_ip_header",
                format!("'{}' is not a header name", self.client_ip_header),
            ));
        }
        Ok(())
    }

    /// The client → region map from `region_header` and `region_networks`.
    pub fn region_map(&self) -> Result<RegionMap, ConfigError> {
        let header = Some(self.region_header.as_str()).filter(|h| !h.is_empty());
        RegionMap::new(header, &self.region_networks).map_err(|e| {
            let option = match e {
                keyframe_origin::region::RegionError::Header(_) => "region_header",
                keyframe_origin::region::RegionError::Entry(_) => "region_networks",
            };
            bad(option, e.to_string())
        })
    }

    /// The playback token key, if one is configured.
    pub fn signing_key(&self) -> Result<Option<TokenKey>, ConfigError> {
        self.token_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .map(|k| TokenKey::from_config(k).map_err(|e| bad("token_key", e.to_string())))
            .transpose()
    }

    /// The Argon2id parameters new password hashes use.
    pub fn argon2_params(&self) -> Result<argon2::Params, ConfigError> {
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| bad("argon2_memory_kib", format!("argon2 parameters: {e}")))
    }

    /// The resume and played thresholds of the watch-history fold.
    pub fn history_thresholds(&self) -> crate::history::Thresholds {
        crate::history::Thresholds {
            resume_min: self.history_resume_min_percent / 100.0,
            played: self.history_played_percent / 100.0,
        }
    }

    /// The trending half-life in milliseconds.
    pub fn trending_half_life_ms(&self) -> i64 {
        i64::try_from(self.trending_half_life_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The edge base URL (no trailing `/`) for a region.
    pub fn edge_for(&self, region: Option<&str>) -> &str {
        region
            .and_then(|r| self.region_edges.get(r))
            .unwrap_or(&self.edge_url)
            .trim_end_matches('/')
    }
}

/// A map given as a table or as `name=value,name=value` text (for environment
/// variables).
fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrMap {
        Text(String),
        Map(BTreeMap<String, String>),
    }
    Ok(match TextOrMap::deserialize(d)? {
        TextOrMap::Map(m) => m,
        TextOrMap::Text(s) => {
            let mut m = BTreeMap::new();
            for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (k, v) = entry.split_once('=').ok_or_else(|| {
                    serde::de::Error::custom(format!("'{entry}' is not REGION=URL"))
                })?;
                m.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
            m
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_edges_resolve_per_region() {
        let mut c = Config::default();
        c.check().expect("defaults");
        c.region_edges
            .insert("eu".into(), "https://eu.example/".into());
        assert_eq!(c.edge_for(Some("eu")), "https://eu.example");
        assert_eq!(c.edge_for(Some("us")), "http://127.0.0.1:8081");
        assert_eq!(c.edge_for(None), "http://127.0.0.1:8081");
    }

    #[test]
    fn bad_values_name_the_option() {
        let c = Config {
            region_networks: vec!["nonsense".into()],
            ..Config::default()
        };
        assert_eq!(c.check().expect_err("bad").option, "region_networks");
        let c = Config {
            token_key: Some("short".into()),
            ..Config::default()
        };
        assert_eq!(c.check().expect_err("bad").option, "token_key");
        let c = Config {
            region_edges: [("eu".to_string(), "ftp://x".to_string())].into(),
            ..Config::default()
        };
        assert_eq!(c.check().expect_err("bad").option, "region_edges");
    }

    #[test]
    fn region_edges_accept_text() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "string_map")]
            m: BTreeMap<String, String>,
        }
        let w: W = serde_json::from_str(r#"{"m": "eu=http://a, US=http://b"}"#).expect("parse");
        assert_eq!(w.m["eu"], "http://a");
        assert_eq!(w.m["us"], "http://b");
    }
}
