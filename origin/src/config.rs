//! The origin's configuration. Every field has a documented default; the binary
//! layers flags over `KEYFRAME_*` environment over the config file over these.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use keyframe_core::size::ByteSize;
use keyframe_http::http_server::Limits;
use keyframe_http::tls::{Tls, TlsError};

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
    /// The most connections served at once from one client address; one past it is
    /// closed at once, unanswered. 0 means a quarter of `max_connections`. Behind a
    /// load balancer, or for an origin behind edges, every client shares an address:
    /// raise it there. Default 0 (2500).
    pub max_connections_per_address: usize,
    /// The largest request head accepted. Default `64KiB`.
    pub max_header_size: ByteSize,
    /// Seconds in-flight requests may run after shutdown starts. Default 10.
    pub grace_secs: u64,
    /// A PEM certificate chain (leaf first). With `tls_key`, the server speaks HTTPS
    /// only, offering HTTP/2 and HTTP/1.1 by ALPN. Default: none (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`; the two are set
    /// together or not at all. Default: none (plain HTTP).
    pub tls_key: Option<PathBuf>,
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
            max_connections_per_address: 0,
            max_header_size: ByteSize(64 * 1024),
            grace_secs: 10,
            tls_cert: None,
            tls_key: None,
            metadata_cache_entries: 100_000,
            max_ranges: 16,
        }
    }
}

impl Config {
    /// The TLS this configuration asks for: `None` without `tls_cert` and `tls_key`;
    /// an error naming the option when only one is set or a file will not load.
    pub fn tls(&self) -> Result<Option<Tls>, TlsError> {
        Tls::from_config(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }

    /// The connection limits this configuration asks for, without TLS (see
    /// [`Config::tls`]; the server loads it once and sets `tls`).
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            max_connections_per_address: match self.max_connections_per_address {
                0 => keyframe_http::http_server::per_address_default(self.max_connections.max(1)),
                n => n,
            },
            max_header_bytes: usize::try_from(self.max_header_size.bytes()).unwrap_or(usize::MAX),
            grace: Duration::from_secs(self.grace_secs),
            tls: None,
            // The origin's bodies are never sealed chunks: skip the lookups.
            sendfile: false,
        }
    }
}
