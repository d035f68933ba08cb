//! The catalog's configuration. Every field has a documented default; the binary
//! layers flags over `KEYFRAME_*` environment over the config file over these.
//!
//! Options the edge has too (`token_key`, `admin_token`, `region_header`,
//! `region_networks`, `tls_cert`, `tls_key`, `header_timeout_secs`) share their names,
//! types and meaning with it, so one config file serves a whole node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keyframe_core::config::{string_map, TextKeys};
use keyframe_core::region::RegionMap;
use keyframe_core::size::ByteSize;
use keyframe_core::token::TokenKey;
use keyframe_http::http_server::Limits;
use keyframe_http::tls::{Tls, TlsError};
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
    /// Seconds a client may take to send request headers, counted for the first
    /// request from the accept (a TLS handshake included), and to keep an idle
    /// connection. Default 30.
    pub header_timeout_secs: u64,
    /// The most connections served at once; further ones wait in the listen
    /// backlog. Default 10000.
    pub max_connections: usize,
    /// The most connections served at once from one client address; one past it is
    /// closed at once, unanswered. 0 means a quarter of `max_connections`. Behind a
    /// load balancer every client shares its address: raise it there. Default 0 (2500).
    pub max_connections_per_address: usize,
    /// The largest request head accepted. Default `64KiB`.
    pub max_header_size: ByteSize,
    /// A PEM certificate chain (leaf first). With `tls_key`, the catalog speaks HTTPS
    /// only, offering HTTP/2 and HTTP/1.1 by ALPN. Default: none (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`; the two are set
    /// together or not at all. Default: none (plain HTTP).
    pub tls_key: Option<PathBuf>,
    /// With `tls_cert`, the `max-age` of the `Strict-Transport-Security` header sent
    /// on every answer (browsers then use HTTPS for the whole host name, every port);
    /// 0 = no header. Default 31536000 (one year).
    pub hsts_max_age_secs: u64,

    /// The request header that names the client's region, believed only from
    /// `trusted_proxies`; empty = none. Default `X-Keyframe-Region` (as on the edge).
    pub region_header: String,
    /// Peers (CIDR networks or addresses, e.g. a load balancer's) whose
    /// `region_header`, `client_ip_header` and `X-Forwarded-Proto` are believed; from
    /// anyone else they are ignored. Default: none.
    #[serde(deserialize_with = "keyframe_core::config::string_list")]
    pub trusted_proxies: Vec<String>,
    /// Networks mapped to regions, as `CIDR=REGION` entries (e.g. `10.0.0.0/8=eu`),
    /// used when no trusted region header names one. Default: none.
    #[serde(deserialize_with = "keyframe_core::config::string_list")]
    pub region_networks: Vec<String>,
    /// A MaxMind-format country database (`.mmdb`, e.g. GeoLite2-Country) that
    /// places client addresses outside `region_networks`. Default: none.
    pub region_geoip_db: Option<std::path::PathBuf>,
    /// The region of each country of `region_geoip_db`, as `CC=REGION` entries
    /// (e.g. `DE=eu`; `*=REGION` for the rest). Default: none.
    #[serde(deserialize_with = "keyframe_core::config::string_list")]
    pub region_countries: Vec<String>,
    /// The region of clients that neither the header nor the network table place;
    /// empty = unknown (such clients see only titles licensed to every region, `*`).
    /// Default: empty.
    pub default_region: String,
    /// The edge base URL per region (`eu = "https://eu.cdn.example"`); a region
    /// missing here uses `edge_url`. Also accepted as `eu=URL,us=URL` text.
    /// Default: none.
    #[serde(deserialize_with = "region_edges")]
    pub region_edges: BTreeMap<String, String>,
    /// Whether anonymous viewers may get playback URLs. Default `false` (sign in).
    pub public_content: bool,
    /// Lifetime of a playback token in seconds, beyond the title's duration (a
    /// token lasts this plus the film's length, so pausing and seeking within it
    /// keep working; the page renews the URL of a film paused longer). Default 300.
    pub play_token_ttl_secs: u64,
    /// Lifetime of the tokens on image URLs (posters, avatars) in seconds; images
    /// appear in lists, so their tokens live longer. Default 3600.
    pub image_token_ttl_secs: u64,

    /// Lifetime of a session in seconds. Default 2592000 (30 days).
    pub session_ttl_secs: u64,
    /// Whether the session cookie is always marked `Secure`. Without it the cookie is
    /// `Secure` when the request came over HTTPS: to this catalog's `tls_cert`, or
    /// through a trusted proxy's `X-Forwarded-Proto: https`. Default `false`.
    pub cookie_secure: bool,
    /// Failed sign-ins of one (username, address) pair, or of one browser's device
    /// cookie, before each further attempt waits (1 s, doubling up to
    /// `login_max_delay_secs`); a successful sign-in resets it. Other addresses are
    /// never slowed by it. Default 5.
    pub login_failures_before_delay: u32,
    /// The longest wait between sign-in attempts of one pair, in seconds.
    /// Default 900.
    pub login_max_delay_secs: u64,
    /// Failed sign-ins allowed per client address in `login_window_secs`, whatever
    /// the usernames (password spraying); browsers with a device cookie from an
    /// earlier sign-in of the username are exempt. Default 100.
    pub login_failures_per_client: u32,
    /// The per-address sign-in window in seconds. Default 900.
    pub login_window_secs: u64,
    /// A request header holding the client's address (the first entry of a list),
    /// believed only from `trusted_proxies`; empty = the peer address. Default: empty.
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
    /// A view counts (for trending and the per-title counters) only once the viewer
    /// has watched this many seconds of the title since their last counted view
    /// (0 = every `start` counts, within `trending_view_window_secs`). Default 30.
    pub trending_view_min_secs: u64,
    /// A viewer counts at most one view per title in this many seconds (0 = no
    /// such limit). Default 86400 (24 h).
    pub trending_view_window_secs: u64,
    /// Watch events one viewer may send per minute (a burst of one minute's worth);
    /// beyond it `POST /api/history` answers 429 with `Retry-After`. Default 3000.
    pub history_events_per_user_minute: u32,
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
    /// database), `sql` (as SQL inside PostgreSQL, which Citus can distribute),
    /// `datafusion` (Apache DataFusion in this process, over the Parquet snapshot in
    /// the store) or `ballista://HOST:PORT` (the same plan on an Apache Ballista
    /// cluster). On the catalog's schedule the last two export a fresh snapshot
    /// first (the root binary supplies that runner). Default `local`.
    pub recommend_engine: String,
    /// Memory the `datafusion` engine's operators may hold in this process: past it
    /// sorts, aggregates and joins spill to disk (set, the plans use sort-merge
    /// joins and one partition per core; a run that still cannot fit fails with one
    /// line: at 10M events 1 GiB runs, 512 MiB does not). `0` means no limit. With
    /// `ballista://` set it too: the client's plans then spill on the executors,
    /// which take their pools with `keyframe ballista executor --memory-limit`.
    /// Default `0`.
    pub recommend_memory_limit: ByteSize,

    /// Watch events through NATS JetStream: the servers' URLs, comma-separated
    /// (`nats://HOST:PORT[,…]`). `POST /api/history` then appends the events to the
    /// `KEYFRAME_HISTORY` stream and answers once JetStream acknowledged them; this
    /// catalog's consumer (shared by every catalog) folds them into the database.
    /// Default: none (the in-process writer commits them on the request path).
    pub events: Option<String>,
    /// With `events`: seconds a pulled event may stay unacknowledged (its catalog
    /// died or hangs) before JetStream delivers it to another catalog. Set when the
    /// shared consumer is created (the first catalog to start). Default 30.
    pub events_ack_wait_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            edge_url: "http://127.0.0.1:8081".into(),
            token_key: None,
            admin_token: None,
            grace_secs: 10,
            header_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_address: 0,
            max_header_size: ByteSize(64 * 1024),
            tls_cert: None,
            tls_key: None,
            hsts_max_age_secs: 365 * 24 * 3600,
            region_header: "X-Keyframe-Region".into(),
            trusted_proxies: Vec::new(),
            region_networks: Vec::new(),
            region_geoip_db: None,
            region_countries: Vec::new(),
            default_region: String::new(),
            region_edges: BTreeMap::new(),
            public_content: false,
            play_token_ttl_secs: 300,
            image_token_ttl_secs: 3600,
            session_ttl_secs: 30 * 24 * 3600,
            cookie_secure: false,
            login_failures_before_delay: 5,
            login_max_delay_secs: 900,
            login_failures_per_client: 100,
            login_window_secs: 900,
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
            trending_view_min_secs: 30,
            trending_view_window_secs: 24 * 3600,
            history_events_per_user_minute: 3000,
            trending_half_life_secs: 24 * 3600,
            recommend_interval_secs: 3600,
            recommend_top_k: 20,
            recommend_per_user: 20,
            recommend_seed_titles: 10,
            recommend_max_titles_per_user: 200,
            recommend_threads: 0,
            recommend_engine: "local".into(),
            recommend_memory_limit: ByteSize(0),
            events: None,
            events_ack_wait_secs: 30,
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
            ("login_max_delay_secs", self.login_max_delay_secs),
            ("header_timeout_secs", self.header_timeout_secs),
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
            (
                "history_events_per_user_minute",
                u64::from(self.history_events_per_user_minute),
            ),
            ("history_queue_events", u64::from(self.history_queue_events)),
            (
                "history_commit_events",
                u64::from(self.history_commit_events),
            ),
            ("trending_half_life_secs", self.trending_half_life_secs),
            ("events_ack_wait_secs", self.events_ack_wait_secs),
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
        let e = self.recommend_engine.as_str();
        if !(matches!(e, "local" | "sql" | "datafusion") || e.starts_with("ballista://")) {
            return Err(bad(
                "recommend_engine",
                format!("'{e}' is not local, sql, datafusion or ballista://HOST:PORT"),
            ));
        }
        self.events_servers()?;
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

    /// The TLS this configuration asks for: `None` without `tls_cert` and `tls_key`;
    /// an error naming the option when only one is set or a file will not load.
    /// ([`Config::check`] leaves it out: commands that only use the database need
    /// not read the key.)
    pub fn tls(&self) -> Result<Option<Tls>, ConfigError> {
        Tls::from_config(self.tls_cert.as_deref(), self.tls_key.as_deref()).map_err(|e| {
            let option = match &e {
                TlsError::Missing { missing, .. } if *missing == "tls-key" => "tls_key",
                TlsError::Key { .. } => "tls_key",
                _ => "tls_cert",
            };
            // The error's text starts with the option(s) it is about.
            let text = e.to_string();
            let message = text.split_once(": ").map_or(text.as_str(), |(_, m)| m);
            bad(option, message)
        })
    }

    /// The accept loop's limits (as the origin's and the edge's), with `tls` to
    /// terminate.
    pub fn limits(&self, tls: Option<Tls>) -> Limits {
        let max_connections = self.max_connections.max(1);
        Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            max_connections,
            max_connections_per_address: match self.max_connections_per_address {
                0 => keyframe_http::http_server::per_address_default(max_connections),
                n => n,
            },
            max_header_bytes: usize::try_from(self.max_header_size.bytes()).unwrap_or(usize::MAX),
            grace: Duration::from_secs(self.grace_secs),
            tls,
            // The catalog's bodies are never sealed chunks.
            sendfile: false,
        }
    }

    /// The client → region map from the region options.
    pub fn region_map(&self) -> Result<RegionMap, ConfigError> {
        use keyframe_core::region::RegionError;
        let header = Some(self.region_header.as_str()).filter(|h| !h.is_empty());
        RegionMap::new(header, &self.region_networks)
            .and_then(|m| m.trusting(&self.trusted_proxies))
            .and_then(|m| m.with_geoip(self.region_geoip_db.as_deref(), &self.region_countries))
            .map_err(|e| {
                let option = match e {
                    RegionError::Header(_) => "region_header",
                    RegionError::Entry(_) => "region_networks",
                    RegionError::Proxy(_) => "trusted_proxies",
                    RegionError::Country(_) => "region_countries",
                    RegionError::GeoIp(_) => "region_geoip_db",
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

    /// The NATS servers of `events` (`None` without it): each a `nats://HOST:PORT`
    /// (or `tls://`) URL.
    pub fn events_servers(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(text) = self.events.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let mut servers = Vec::new();
        for s in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = url::Url::parse(s).map_err(|e| bad("events", format!("'{s}': {e}")))?;
            if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none() {
                return Err(bad(
                    "events",
                    format!("'{s}' is not a nats://HOST:PORT URL"),
                ));
            }
            servers.push(s.to_string());
        }
        Ok(Some(servers))
    }

    /// The resume and played thresholds of the watch-history fold.
    pub fn history_thresholds(&self) -> crate::history::Thresholds {
        crate::history::Thresholds {
            resume_min: self.history_resume_min_percent / 100.0,
            played: self.history_played_percent / 100.0,
            view_min_watch_ms: secs_ms(self.trending_view_min_secs),
            view_window_ms: secs_ms(self.trending_view_window_secs),
        }
    }

    /// The login limiter's parameters.
    pub fn login_limits(&self) -> crate::auth::LimiterParams {
        crate::auth::LimiterParams {
            free_failures: self.login_failures_before_delay,
            max_delay: std::time::Duration::from_secs(self.login_max_delay_secs),
            per_client: self.login_failures_per_client,
            window: std::time::Duration::from_secs(self.login_window_secs),
        }
    }

    /// The trending half-life in milliseconds.
    pub fn trending_half_life_ms(&self) -> i64 {
        secs_ms(self.trending_half_life_secs)
    }

    /// The edge base URL (no trailing `/`) for a region.
    pub fn edge_for(&self, region: Option<&str>) -> &str {
        region
            .and_then(|r| self.region_edges.get(r))
            .unwrap_or(&self.edge_url)
            .trim_end_matches('/')
    }
}

/// Seconds as milliseconds, saturating.
fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `region_edges`: a table, or `REGION=URL,REGION=URL` text (for environment
/// variables), whose region names are lowercased.
fn region_edges<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    string_map(d, "REGION=URL", TextKeys::Lowercase)
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
    fn tls_and_proxy_errors_name_the_option() {
        let c = Config {
            tls_cert: Some("/nonexistent/cert.pem".into()),
            ..Config::default()
        };
        let e = c.tls().expect_err("only one of the pair");
        assert_eq!(e.option, "tls_key", "{e}");
        assert_eq!(e.message, "must be set together with tls-cert");
        let c = Config {
            tls_cert: Some("/nonexistent/cert.pem".into()),
            tls_key: Some("/nonexistent/key.pem".into()),
            ..Config::default()
        };
        let e = c.tls().expect_err("missing files");
        assert_eq!(e.option, "tls_cert", "{e}");
        assert!(e.message.contains("/nonexistent/cert.pem"), "{e}");
        assert!(Config::default().tls().expect("no TLS").is_none());
        let c = Config {
            trusted_proxies: vec!["10.0.0.0/8".into(), "lb.internal".into()],
            ..Config::default()
        };
        let e = c.check().expect_err("bad proxy");
        assert_eq!(e.option, "trusted_proxies");
        assert!(e.message.contains("'lb.internal'"), "{e}");
    }

    #[test]
    fn events_take_nats_urls_only() {
        let with = |e: &str| Config {
            events: Some(e.into()),
            ..Config::default()
        };
        assert_eq!(
            with("nats://a:4222, nats://b:4222")
                .events_servers()
                .expect("two"),
            Some(vec!["nats://a:4222".into(), "nats://b:4222".into()])
        );
        assert_eq!(Config::default().events_servers().expect("none"), None);
        let e = with("http://a:4222").check().expect_err("not nats");
        assert_eq!(e.option, "events", "{e}");
        assert!(with("nonsense").check().is_err());
    }

    #[test]
    fn region_edges_accept_text() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "region_edges")]
            m: BTreeMap<String, String>,
        }
        let w: W = serde_json::from_str(r#"{"m": "eu=http://a, US=http://b"}"#).expect("parse");
        assert_eq!(w.m["eu"], "http://a");
        assert_eq!(w.m["us"], "http://b");
    }
}
