//! The edge's configuration. Every field has a documented default; the binary
//! layers flags over `KEYFRAME_*` environment over the config file over these.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keyframe_core::config::{string_list, string_map, TextKeys};
use keyframe_core::region::{RegionError, RegionMap};
use keyframe_core::size::ByteSize;
use keyframe_http::http_server::Limits;
use keyframe_http::tls::{Tls, TlsError};
use serde::{Deserialize, Serialize};

/// Configuration of an edge cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the edge listens. Default `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// The origins (any HTTP or HTTPS servers) this edge fronts, as base URLs. Each object
    /// goes to one of them by rendezvous hashing, the others are failovers.
    /// Default `http://127.0.0.1:8082`.
    #[serde(deserialize_with = "string_list")]
    pub upstream: Vec<String>,
    /// PEM certificates of authorities trusted for `https://` upstreams (and the
    /// parent), besides the system's roots. Default: none.
    pub upstream_ca: Option<PathBuf>,
    /// This edge's region label (e.g. `eu`). Default: none.
    pub region: Option<String>,
    /// A shield edge to fetch misses from instead of the origins. Default: none.
    pub parent: Option<String>,
    /// Bound of the in-memory chunk cache. Default `256MiB`.
    pub cache_memory: ByteSize,
    /// Size of the chunks large objects are cached as. Default `1MiB`.
    pub chunk_size: ByteSize,
    /// Directory of the disk tier. Default: none (memory only).
    pub cache_disk: Option<PathBuf>,
    /// Bound of the disk tier. Default `10GiB`.
    pub cache_disk_size: ByteSize,
    /// Chunks fetched ahead of a sequential reader. Default 2.
    pub read_ahead: usize,
    /// The key that validates playback tokens. Default: none (no tokens needed).
    pub token_key: Option<String>,
    /// The token `/_keyframe/purge` requires. Default: none (purge off).
    pub admin_token: Option<String>,
    /// The request header that names the client's region, believed only from
    /// `trusted_proxies`. Default `X-Keyframe-Region`.
    pub region_header: String,
    /// Peers (CIDR networks or addresses, e.g. a load balancer's) whose
    /// `region_header` is believed; from anyone else it is ignored. Default: none.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// Networks mapped to regions, as `CIDR=REGION` entries (e.g. `10.0.0.0/8=eu`),
    /// used when no trusted region header names one. Default: none.
    #[serde(deserialize_with = "string_list")]
    pub region_networks: Vec<String>,
    /// A MaxMind-format country database (`.mmdb`, e.g. GeoLite2-Country) that
    /// places client addresses outside `region_networks`. Default: none.
    pub region_geoip_db: Option<PathBuf>,
    /// The region of each country of `region_geoip_db`, as `CC=REGION` entries
    /// (e.g. `DE=eu`; `*=REGION` for the rest). Default: none.
    #[serde(deserialize_with = "string_list")]
    pub region_countries: Vec<String>,
    /// Seconds to wait for an upstream's response head. Default 10.
    pub upstream_timeout_secs: u64,
    /// Seconds a client may take to send request headers, and to keep an idle
    /// connection. Default 30.
    pub header_timeout_secs: u64,
    /// The most client connections served at once. Default 10000.
    pub max_connections: usize,
    /// The most connections served at once from one client address; one past it is
    /// closed at once, unanswered. 0 means a quarter of `max_connections`. Behind a
    /// load balancer, or for a shield behind edges, every client shares an address:
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
    /// Seconds between active health checks of each upstream; 0 turns them off.
    /// An upstream that cannot be reached leaves rotation until it answers again.
    /// Default 5.
    pub health_check_secs: u64,
    /// The path the health check requests on each upstream (after its base URL's
    /// path). Any HTTP answer shows the server is up, so it works on any HTTP
    /// server (a 404 is a live server). Default `/_keyframe/healthz`.
    pub health_check_path: String,
    /// Health paths of particular upstreams, by their URL as written in
    /// `upstream` or `parent` (`"http://origin-b:8080" = "/status"`); the others
    /// use `health_check_path`. Also accepted as `URL=PATH,URL=PATH` text.
    /// Default: none.
    #[serde(deserialize_with = "url_paths")]
    pub health_check_paths: BTreeMap<String, String>,
    /// Whether a 5xx answer to the health check takes the upstream out of
    /// rotation (and a 2xx-4xx one brings it back), for health paths that report
    /// the origin's own health, like Keyframe's `/_keyframe/healthz` (503 when its
    /// storage is unreachable). Default false: any answer is alive, and 5xx
    /// answers to real requests take it out.
    pub health_check_strict: bool,
    /// Keep cached chunks in sealed memfds and send them on plain HTTP connections
    /// with `sendfile(2)`, without copying them (as nginx's `sendfile on`; one file
    /// descriptor per chunk). Default false: over loopback it measured slower than
    /// copying (bench/RESULTS.md); try it where clients are across a real NIC.
    pub sendfile: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            upstream: vec!["http://127.0.0.1:8082".into()],
            upstream_ca: None,
            region: None,
            parent: None,
            cache_memory: ByteSize(256 << 20),
            chunk_size: ByteSize(1 << 20),
            cache_disk: None,
            cache_disk_size: ByteSize(10 << 30),
            read_ahead: 2,
            token_key: None,
            admin_token: None,
            region_header: "X-Keyframe-Region".into(),
            trusted_proxies: Vec::new(),
            region_networks: Vec::new(),
            region_geoip_db: None,
            region_countries: Vec::new(),
            upstream_timeout_secs: 10,
            header_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_address: 0,
            max_header_size: ByteSize(64 * 1024),
            grace_secs: 10,
            tls_cert: None,
            tls_key: None,
            health_check_secs: 5,
            health_check_path: crate::upstream::DEFAULT_HEALTH_PATH.into(),
            health_check_paths: BTreeMap::new(),
            health_check_strict: false,
            sendfile: false,
        }
    }
}

/// `health_check_paths`: a table, or `URL=PATH,URL=PATH` text.
fn url_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    string_map(d, "URL=PATH", TextKeys::AsWritten)
}

impl Config {
    /// The client → region map from the region options.
    pub fn region_map(&self) -> Result<RegionMap, RegionError> {
        RegionMap::new(Some(&self.region_header), &self.region_networks)?
            .trusting(&self.trusted_proxies)?
            .with_geoip(self.region_geoip_db.as_deref(), &self.region_countries)
    }

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
            sendfile: self.sendfile,
        }
    }
}
