//! The edge's HTTP server: a shared cache in front of any HTTP origin.
//!
//! A GET goes: token and region checks → cache key (path and query, token
//! stripped) → entry lookup (with `Vary`) → freshness decision (RFC 9111) → serve
//! the client's range from chunks, fetching only the missing chunks. Misses and
//! revalidations of one object are coalesced into one upstream request; missing
//! chunks are coalesced per chunk (see [`crate::chunks`]). Everything else is
//! forwarded upstream untouched but for hop-by-hop headers, `Via` and the token.
//!
//! This file builds the server and routes requests; the rest of the request's way
//! is in `proxy` (the cache state machine), `fetch` (object and chunk fetches),
//! `respond` (answers from stored entries), `pass` (pass-through), `purge` and
//! [`crate::upstream`] (sending, health).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyframe_core::region::RegionMap;
use keyframe_core::token::{self, TokenKey};
use keyframe_core::ErrorCode;
use keyframe_http::access::{self, Loudness};
use keyframe_http::cors::{Cors, CorsError};
use keyframe_http::http_server::{self, json_error, text_response, Body};
use keyframe_http::manifest::Propagation;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::chunks::ChunkStore;
use crate::config::Config;
use crate::disk::DiskTier;
use crate::entry::Entry;
use crate::fetch::ObjectFlight;
use crate::metrics::EdgeMetrics;
use crate::policy::{self, set_cache_status, CacheStatus};
use crate::upstream::{health_paths, upstream_connector, Upstream, Upstreams};
use crate::variants::VariantIndex;

pub use crate::upstream::parse_upstream;

/// The name this cache gives itself in `Cache-Status`.
pub const CACHE_NAME: &str = "keyframe";

/// This edge's name in `Cache-Status`: `keyframe`, or `keyframe-<region>` for a
/// regional edge, so that a chain of tiers reads `keyframe; hit, keyframe-eu; fwd=miss`.
pub fn cache_name(region: Option<&str>) -> String {
    match region {
        Some(r) if !r.is_empty() => format!("{CACHE_NAME}-{r}"),
        _ => CACHE_NAME.to_string(),
    }
}

/// How long a key that answered with an unstorable 2xx goes straight upstream.
const PASS_MARK_TTL: Duration = Duration::from_secs(30);

/// What a request asks of the edge, decided from its method and path alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Metrics,
    Purge,
    /// One of the edge's own paths with a method it does not allow: 405 with
    /// `Allow`, as the origin answers (RFC 9110 §15.5.6).
    MethodNotAllowed(&'static str),
    /// An unknown reserved path.
    Reserved,
    /// Anything else goes through the cache or upstream.
    Proxy,
}

/// Routes a request. Pure.
pub fn route(method: &Method, path: &str) -> Endpoint {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/_keyframe/healthz" if read => Endpoint::Healthz,
        "/_keyframe/metrics" if read => Endpoint::Metrics,
        "/_keyframe/purge" if method == Method::POST => Endpoint::Purge,
        "/_keyframe/healthz" | "/_keyframe/metrics" => Endpoint::MethodNotAllowed("GET, HEAD"),
        "/_keyframe/purge" => Endpoint::MethodNotAllowed("POST"),
        p if p.starts_with("/_keyframe/") => Endpoint::Reserved,
        _ => Endpoint::Proxy,
    }
}

/// The cache key of a request target: path and query, without the token.
pub fn cache_key(uri: &Uri) -> String {
    let path = uri.path();
    match uri.query().and_then(token::strip_from_query) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// Why an edge could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("upstream: no upstream URL given")]
    NoUpstream,
    #[error("upstream: '{0}' is not an http:// or https:// URL")]
    BadUpstream(String),
    #[error("chunk-size: must be between 4KiB and 64MiB")]
    ChunkSize,
    #[error("cache-memory: must be at least 1MiB")]
    CacheMemory,
    #[error("token-key: {0}")]
    TokenKey(#[from] token::TokenError),
    #[error("region-networks: {0}")]
    Region(#[from] keyframe_core::region::RegionError),
    #[error("cache-disk: {0}")]
    Disk(std::io::Error),
    /// `health_check_path` or `health_check_paths` is not a path or names no upstream.
    #[error("health-check-paths: {0}")]
    HealthPath(String),
    /// `upstream-ca` will not load.
    #[error("upstream-ca: {0}")]
    UpstreamCa(String),
    /// `tls-cert`/`tls-key`: one without the other, or a file that will not load.
    #[error(transparent)]
    Tls(#[from] keyframe_http::tls::TlsError),
    #[error(transparent)]
    Cors(#[from] CorsError),
}

/// Aborts a background task when dropped (when `run` returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) cache_name: String,
    pub(crate) upstreams: Upstreams,
    pub(crate) client: Client<HttpsConnector<HttpConnector>, Body>,
    pub(crate) entries: moka::sync::Cache<String, Arc<Entry>>,
    pub(crate) vary: moka::sync::Cache<String, Arc<Vec<HeaderName>>>,
    /// The variant keys stored under each URL's cache key.
    pub(crate) variants: VariantIndex,
    pub(crate) pass_marks: moka::sync::Cache<String, ()>,
    pub(crate) flights: Mutex<HashMap<String, ObjectFlight>>,
    pub(crate) chunks: ChunkStore,
    pub(crate) disk: Option<Arc<DiskTier>>,
    pub(crate) chunk_size: u64,
    pub(crate) next_generation: AtomicU64,
    pub(crate) token_key: Option<TokenKey>,
    pub(crate) regions: RegionMap,
    pub(crate) registry: Registry,
    pub(crate) metrics: EdgeMetrics,
    pub(crate) upstream_timeout: Duration,
    pub(crate) cors: Cors,
}

/// An edge server.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("upstreams", &self.inner.upstreams)
            .finish()
    }
}

pub(crate) const TARGETED: &[&str] = &["cdn-cache-control"];

impl Server {
    /// Builds an edge from its configuration.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if config.sendfile {
            // Every cached chunk of 64 KiB or more holds a descriptor (its memfd).
            let files = keyframe_http::zerocopy::raise_fd_limit();
            tracing::debug!(?files, "open files limit");
        }
        let mut bases: Vec<String> = Vec::new();
        if let Some(p) = &config.parent {
            bases.push(p.clone());
        }
        bases.extend(config.upstream.iter().cloned());
        if bases.is_empty() {
            return Err(ConfigError::NoUpstream);
        }
        let uris = bases
            .iter()
            .map(|s| parse_upstream(s))
            .collect::<Result<Vec<_>, _>>()?;
        let any_https = uris.iter().any(|u| u.scheme_str() == Some("https"));
        let paths = health_paths(&uris, &config.health_check_paths, &config.health_check_path)?;
        let upstreams = Upstreams::of(
            uris.into_iter()
                .zip(paths)
                .map(|(u, p)| Upstream::new(u).with_health_path(&p))
                .collect(),
            config.parent.is_some(),
        );
        let chunk_size = config.chunk_size.bytes();
        if !(4096..=64 << 20).contains(&chunk_size) {
            return Err(ConfigError::ChunkSize);
        }
        let memory = config.cache_memory.bytes();
        if memory < 1 << 20 {
            return Err(ConfigError::CacheMemory);
        }
        let token_key = config
            .token_key
            .as_deref()
            // An empty value (`KEYFRAME_TOKEN_KEY=`) means no key, as in the catalog.
            .filter(|k| !k.trim().is_empty())
            .map(TokenKey::from_config)
            .transpose()?;
        let regions = config.region_map()?;
        let cors = Cors::from_config(&config.cors_allowed_origins)?;
        // Checked here so a bad pair is a configuration error; `run` loads it.
        config.tls()?;
        let connector = upstream_connector(
            config.upstream_ca.as_deref(),
            any_https,
            Duration::from_secs(3),
        )?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        let (disk, stored) = match &config.cache_disk {
            Some(dir) => {
                let (d, stored) = DiskTier::open(dir, config.cache_disk_size.bytes())
                    .map_err(ConfigError::Disk)?;
                (Some(d), stored)
            }
            None => (None, Vec::new()),
        };
        let spill = disk.clone().map(|d| {
            Arc::new(move |k, b| d.spill(k, b))
                as Arc<dyn Fn(crate::chunks::ChunkKey, Bytes) + Send + Sync>
        });
        let chunks =
            ChunkStore::new(memory, spill).with_buffers(config.sendfile, chunk_size, memory);
        let mut registry = Registry::default();
        let metrics = EdgeMetrics::register(&mut registry, &chunks.stats);
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let upstream_timeout = Duration::from_secs(config.upstream_timeout_secs.max(1));
        let server = Server {
            inner: Arc::new(Inner {
                cache_name: cache_name(config.region.as_deref()),
                upstreams,
                client,
                entries: moka::sync::Cache::builder()
                    .max_capacity(32 << 20)
                    .weigher(|k: &String, e: &Arc<Entry>| {
                        let h: usize = e
                            .headers
                            .iter()
                            .map(|(n, v)| n.as_str().len() + v.len() + 32)
                            .sum();
                        let body = e.inline.as_ref().map_or(0, |b| b.len());
                        u32::try_from(k.len() + h + body + 256).unwrap_or(u32::MAX)
                    })
                    .build(),
                vary: moka::sync::Cache::builder().max_capacity(100_000).build(),
                variants: VariantIndex::default(),
                pass_marks: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(PASS_MARK_TTL)
                    .build(),
                flights: Mutex::new(HashMap::new()),
                chunks,
                disk,
                chunk_size,
                next_generation: AtomicU64::new(seed),
                token_key,
                regions,
                registry,
                metrics,
                upstream_timeout,
                cors,
                config,
            }),
        };
        for s in stored {
            let (vkey, entry) = s.into_entry(TARGETED);
            let names = policy::vary_names(&entry.headers);
            if !names.is_empty() {
                server.inner.vary.insert(entry.key.clone(), Arc::new(names));
            }
            server.insert_entry(vkey, Arc::new(entry));
        }
        Ok(server)
    }

    /// Stores an entry (and writes it to the disk tier, if any).
    pub(crate) fn store_entry(&self, vkey: String, entry: Arc<Entry>) {
        if let Some(d) = &self.inner.disk {
            d.save_entry(&vkey, &entry);
        }
        self.insert_entry(vkey, entry);
    }

    /// Puts an entry in the entry cache and the index of its URL's variants.
    fn insert_entry(&self, vkey: String, entry: Arc<Entry>) {
        self.inner.entries.insert(vkey.clone(), entry);
        let entries = &self.inner.entries;
        self.inner.variants.add(&vkey, |k| entries.contains_key(k));
    }

    /// Drops every chunk of a generation, in memory and on disk.
    pub(crate) fn drop_generation(&self, generation: u64) {
        self.inner.chunks.drop_generation(generation);
        if let Some(d) = &self.inner.disk {
            d.forget(generation);
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        self.run_on_threads(listener, 1, shutdown).await;
    }

    /// Serves on `listener` until `shutdown` resolves, accepting on `threads`
    /// threads of their own (see `http_server::serve_on_threads`; more than one
    /// wants a listener from `http_server::listen` with `reuseport`).
    pub async fn run_on_threads(
        self,
        listener: TcpListener,
        threads: usize,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut limits = self.inner.config.limits();
        limits.tls = match self.inner.config.tls() {
            Ok(tls) => tls,
            Err(e) => {
                // Loaded fine in `new`; the files changed since. Serve nothing rather
                // than plain HTTP where HTTPS was asked for.
                tracing::error!(error = %e, "TLS configuration no longer loads");
                return;
            }
        };
        let _checks = AbortOnDrop(tokio::spawn(self.clone().health_checks()));
        http_server::serve_on_threads(
            listener,
            limits,
            threads,
            move |req, peer| {
                let s = self.clone();
                async move { s.handle(req, peer).await }
            },
            shutdown,
        )
        .await;
    }

    pub(crate) async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let endpoint = route(req.method(), req.uri().path());
        // Health checks and another Keyframe cache's fetches (a regional edge's
        // chunks at its shield) are routine: logged at debug, so that `info`
        // shows what clients asked, once, where they asked it.
        let loudness = if endpoint == Endpoint::Healthz || from_keyframe(req.headers()) {
            Loudness::Routine
        } else {
            Loudness::Info
        };
        let m = &self.inner.metrics.http;
        access::observe("edge", m, req, peer, loudness, |req| async move {
            let mut resp = match endpoint {
                Endpoint::Healthz => text_response(StatusCode::OK, "ok\n"),
                Endpoint::Metrics => self.metrics_response(),
                Endpoint::Purge => self.purge(req).await,
                Endpoint::MethodNotAllowed(allow) => http_server::method_not_allowed(allow),
                Endpoint::Reserved => json_error(ErrorCode::NotFound, "no such path"),
                Endpoint::Proxy => {
                    let origin = req.headers().get(header::ORIGIN).cloned();
                    let mut resp = match self.inner.cors.preflight(req.method(), req.headers()) {
                        Some(r) => r,
                        None => {
                            let mut r = self.proxy_propagating(req, peer).await;
                            self.inner.cors.apply(origin.as_ref(), r.headers_mut());
                            r
                        }
                    };
                    if !resp.headers().contains_key("cache-status") {
                        // Answered by the edge itself (a refused token or region, a
                        // malformed request, only-if-cached): neither a hit nor
                        // forwarded, but still said (RFC 9211).
                        let cs = CacheStatus {
                            detail: Some(resp.status().as_u16().to_string()),
                            ..CacheStatus::default()
                        };
                        set_cache_status(
                            resp.headers_mut(),
                            cs.to_header_value(&self.inner.cache_name),
                        );
                    }
                    resp
                }
            };
            resp.headers_mut()
                .append(header::VIA, HeaderValue::from_static("1.1 keyframe"));
            resp
        })
        .await
    }

    /// [`Server::proxy`], with the request's checked query token carried into the
    /// references of a manifest it answers with (`keyframe_http::manifest`).
    async fn proxy_propagating(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let propagation = Propagation::of(req.uri()).filter(|_| self.inner.token_key.is_some());
        let Some(p) = propagation else {
            return self.proxy(req, peer).await;
        };
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        p.whole_manifest(&path, req.headers_mut());
        let resp = self.proxy(req, peer).await;
        p.apply(&method, resp).await
    }

    /// The refusal to send, if the request's token or region does not allow it.
    pub(crate) fn check_token(&self, parts: &Parts, peer: SocketAddr) -> Option<Response<Body>> {
        let Some(key) = &self.inner.token_key else {
            return None;
        };
        let claims = match token::check(key, &parts.uri, &parts.headers, SystemTime::now()) {
            Ok(c) => c,
            Err(e) => return Some(json_error(e.code(), &e.to_string())),
        };
        if let Some(allowed) = claims.regions() {
            let client = self.inner.regions.region_of(&parts.headers, peer.ip());
            let ok = client
                .as_deref()
                .is_some_and(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)));
            if !ok {
                return Some(json_error(
                    ErrorCode::Region,
                    "this content may not be played in the client's region",
                ));
            }
        }
        None
    }
}

/// Whether a request comes from another Keyframe cache (its `Via` names one).
fn from_keyframe(h: &HeaderMap) -> bool {
    h.get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|hop| {
            hop.split_whitespace()
                .nth(1)
                .is_some_and(|by| by == CACHE_NAME || by.starts_with("keyframe-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/_keyframe/healthz"), Endpoint::Healthz);
        assert_eq!(route(&Method::POST, "/_keyframe/purge"), Endpoint::Purge);
        assert_eq!(
            route(&Method::GET, "/_keyframe/purge"),
            Endpoint::MethodNotAllowed("POST")
        );
        assert_eq!(
            route(&Method::POST, "/_keyframe/healthz"),
            Endpoint::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(route(&Method::GET, "/_keyframe/other"), Endpoint::Reserved);
        assert_eq!(route(&Method::GET, "/v1/objects/x"), Endpoint::Proxy);
        assert_eq!(route(&Method::POST, "/anything"), Endpoint::Proxy);
    }

    #[test]
    fn requests_from_keyframe_caches_are_told_by_via() {
        let via = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::VIA, HeaderValue::from_str(v).expect("via"));
            from_keyframe(&h)
        };
        assert!(via("1.1 keyframe"));
        assert!(via("1.1 squid, 1.1 keyframe-eu"));
        assert!(!via("1.1 varnish"));
        assert!(!via("1.1 keyframes.example"));
        assert!(!from_keyframe(&HeaderMap::new()));
    }

    #[test]
    fn cache_keys_drop_the_token_only() {
        let k = |s: &str| cache_key(&s.parse::<Uri>().expect("uri"));
        assert_eq!(k("/v1/objects/a"), "/v1/objects/a");
        assert_eq!(k("/v1/objects/a?__token__=exp%3D1"), "/v1/objects/a");
        assert_eq!(
            k("/v1/objects/a?x=1&__token__=t&y=2"),
            "/v1/objects/a?x=1&y=2"
        );
    }
}
