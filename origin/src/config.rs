//! The origin's configuration. Every field has a documented default; the binary
//! layers flags over `KEYFRAME_*` environment over the config file over these.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http_server::Limits;
use crate::size::ByteSize;

/// Configuration of an origin server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the origin listens. Default `127.0.0.1:8082`.
    pub listen: SocketAddr,
    /// The key that signs playback tokens. When set, `/v1/objects/…` requires a valid
    /// token. Default: none (objects are public).
    pub token_key: Option<String>,
    /// `Cache-Control` sent with objects. Keys are content-addressed, so objects never
    /// change. Default `public, max-age=31536000, immutable`.
    pub cache_control: String,
    /// Seconds a client may take to send request headers, and to keep an idle
    /// connection. Default 30.
    pub header_timeout_secs: u64,
    /// The most connections served at once. Default 10000.
    pub max_connections: usize,
    /// The largest request head accepted. Default `64KiB`.
    pub max_header_size: ByteSize,
    /// Seconds in-flight requests may run after shutdown starts. Default 10.
    pub grace_secs: u64,
    /// How many objects' metadata (size, ETag, type) to keep in memory. Default 100000.
    pub metadata_cache_entries: u64,
    /// The most ranges one request may ask for after overlapping and adjacent ones are
    /// merged; more are answered with the whole object, never amplified. Default 16.
    pub max_ranges: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            token_key: None,
            cache_control: "public, max-age=31536000, immutable".into(),
            header_timeout_secs: 30,
            max_connections: 10_000,
            max_header_size: ByteSize(64 * 1024),
            grace_secs: 10,
            metadata_cache_entries: 100_000,
            max_ranges: 16,
        }
    }
}

impl Config {
    /// The connection limits this configuration asks for.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_header_bytes: usize::try_from(self.max_header_size.bytes()).unwrap_or(usize::MAX),
            grace: Duration::from_secs(self.grace_secs),
        }
    }
}

/// Deserializes a list from either a sequence or one comma-separated string, so
/// `--upstream a,b`, `KEYFRAME_UPSTREAM=a,b` and `upstream = ["a", "b"]` all work.
pub fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}
