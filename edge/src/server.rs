//! The edge's HTTP server: a shared cache in front of any HTTP origin.
//!
//! A GET goes: token and region checks → cache key (path and query, token
//! stripped) → entry lookup (with `Vary`) → freshness decision (RFC 9111) → serve
//! the client's range from chunks, fetching only the missing chunks. Misses and
//! revalidations of one object are coalesced into one upstream request; missing
//! chunks are coalesced per chunk (see [`crate::chunks`]). Everything else is
//! forwarded upstream untouched but for hop-by-hop headers, `Via` and the token.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::request::Parts;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyframe_origin::conditional::{self, Precondition, Validators};
use keyframe_origin::http_server::{self, empty, full, json_error, Body, BoxError};
use keyframe_origin::metrics::{render, HttpMetrics, StatusLabels};
use keyframe_origin::range::{self, ByteRange, RangeDecision};
use keyframe_origin::region::RegionMap;
use keyframe_origin::token::{self, TokenKey};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chunks::{ChunkStore, InFlight, Source};
use crate::config::Config;
use crate::disk::DiskTier;
use crate::entry::{judge, parse_content_range, Candidate, Entry, Judged, ANSWER_LIMIT};
use crate::policy::{self, CacheStatus, Decision, Fwd, RequestDirectives};
use crate::upstream::{Upstream, Upstreams};

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

/// The most ranges one request may ask for after merging.
const MAX_RANGES: usize = 16;

/// Bodies of non-2xx upstream answers shared with coalesced waiters, at most.
const SHARED_BODY_LIMIT: usize = 64 * 1024;

/// How long a key that answered with an unstorable 2xx goes straight upstream.
const PASS_MARK_TTL: Duration = Duration::from_secs(30);

/// What a request asks of the edge, decided from its method and path alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Metrics,
    Purge,
    /// A reserved path with the wrong method, or an unknown reserved path.
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
    Region(#[from] keyframe_origin::region::RegionError),
    #[error("cache-disk: {0}")]
    Disk(std::io::Error),
    /// `upstream-ca` will not load.
    #[error("upstream-ca: {0}")]
    UpstreamCa(String),
    /// `tls-cert`/`tls-key`: one without the other, or a file that will not load.
    #[error(transparent)]
    Tls(#[from] keyframe_origin::tls::TlsError),
}

/// Parses an upstream base URL (`http[s]://host:port[/prefix]`).
pub fn parse_upstream(s: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .trim_end_matches('/')
        .parse()
        .map_err(|_| ConfigError::BadUpstream(s.into()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(ConfigError::BadUpstream(s.into()));
    }
    Ok(uri)
}

/// The connector for upstreams (and `keyframe healthcheck`): plain HTTP or TLS by
/// scheme, trusting the system's roots (read only with `system_roots`) and `ca`.
pub(crate) fn upstream_connector(
    ca: Option<&std::path::Path>,
    system_roots: bool,
    connect_timeout: Duration,
) -> Result<HttpsConnector<HttpConnector>, ConfigError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(upstream_tls(ca, system_roots)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector))
}

/// The TLS client configuration for `https://` upstreams: the system's roots (read
/// only when `system_roots`, that is when some upstream is `https://`), and the
/// certificates in `ca` (PEM) if given.
fn upstream_tls(
    ca: Option<&std::path::Path>,
    system_roots: bool,
) -> Result<tokio_rustls::rustls::ClientConfig, ConfigError> {
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer};
    let bad = |why: String| ConfigError::UpstreamCa(why);
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates only lose those roots; `upstream_ca` still works.
    if system_roots {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = ca {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("{shown}: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{shown}: {e}")))?;
        if certs.is_empty() {
            return Err(bad(format!("{shown}: no certificate in it")));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(format!("{shown}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache_status: &'static str,
}

/// The edge's metrics (names documented in `keyframe_origin::metrics` style).
#[derive(Debug)]
struct EdgeMetrics {
    http: HttpMetrics,
    /// `keyframe_edge_requests_total{cache_status}`: hit, stale, miss, revalidated, pass.
    by_cache_status: Family<CacheLabels, Counter>,
    /// `keyframe_edge_upstream_bytes_total`: body bytes fetched from upstreams;
    /// origin offload = this ÷ `keyframe_http_response_bytes_total`.
    upstream_bytes: Counter,
    upstream_requests: Counter,
    upstream_errors: Counter,
    upstream_latency: Histogram,
    memory_bytes: Gauge,
    entries: Gauge,
    /// `keyframe_edge_sendfile_bytes_total`: body bytes sent from sealed chunks
    /// with `sendfile` (no copy); brought up to date at each scrape from
    /// `zerocopy::sent_bytes`, whose value at the last scrape is `sendfile_seen`.
    sendfile_bytes: Counter,
    sendfile_seen: AtomicU64,
    /// `keyframe_edge_upstream_healthy{upstream}`: 1 while the last health check
    /// (or request) succeeded, 0 while the upstream is out of rotation.
    upstream_healthy: Family<UpstreamLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// Sets this cache's `Cache-Status` member after the ones upstream caches added
/// (RFC 9211: the list runs from the cache nearest the origin to the one nearest
/// the client), so a client sees a shield's hit behind a regional miss.
fn set_cache_status(h: &mut HeaderMap, ours: HeaderValue) {
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

/// Aborts a background task when dropped (when `run` returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Outcome of a coalesced object-level fetch (a miss or a revalidation).
#[derive(Clone, Debug)]
enum Outcome {
    /// An entry to serve from: fresh from upstream (`revalidated` when a 304 renewed
    /// it), with the upstream's status for `Cache-Status`.
    Entry { entry: Arc<Entry>, fwd_status: u16 },
    /// A small non-2xx answer, shared as is.
    Shared {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// Not storable: every waiter forwards its own request.
    Pass,
    /// No upstream answered.
    Failed { status: StatusCode, why: String },
}

type ObjectFlight = watch::Sender<Option<Outcome>>;

struct Inner {
    config: Config,
    cache_name: String,
    upstreams: Upstreams,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    entries: moka::sync::Cache<String, Arc<Entry>>,
    vary: moka::sync::Cache<String, Arc<Vec<HeaderName>>>,
    pass_marks: moka::sync::Cache<String, ()>,
    flights: Mutex<HashMap<String, ObjectFlight>>,
    chunks: ChunkStore,
    disk: Option<Arc<DiskTier>>,
    chunk_size: u64,
    next_generation: AtomicU64,
    token_key: Option<TokenKey>,
    regions: RegionMap,
    registry: Registry,
    metrics: EdgeMetrics,
    upstream_timeout: Duration,
}

/// An edge server.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("upstreams", &self.inner.upstreams)
            .finish()
    }
}

const TARGETED: &[&str] = &["cdn-cache-control"];

impl Server {
    /// Builds an edge from its configuration.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if config.sendfile {
            // Every cached chunk of 64 KiB or more holds a descriptor (its memfd).
            let files = keyframe_origin::zerocopy::raise_fd_limit();
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
        let upstreams = if config.parent.is_some() {
            Upstreams::with_preferred(uris)
        } else {
            Upstreams::new(uris)
        };
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
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let metrics = EdgeMetrics {
            http,
            by_cache_status: Family::default(),
            upstream_bytes: Counter::default(),
            upstream_requests: Counter::default(),
            upstream_errors: Counter::default(),
            upstream_latency: keyframe_origin::metrics::latency_histogram(),
            memory_bytes: Gauge::default(),
            sendfile_bytes: Counter::default(),
            sendfile_seen: AtomicU64::new(keyframe_origin::zerocopy::sent_bytes()),
            entries: Gauge::default(),
            upstream_healthy: Family::default(),
        };
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
        registry.register(
            "keyframe_edge_requests",
            "Requests by cache status",
            metrics.by_cache_status.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_bytes",
            "Body bytes fetched from upstreams",
            metrics.upstream_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_requests",
            "Requests sent upstream",
            metrics.upstream_requests.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_errors",
            "Upstream requests that failed (connect, timeout, 5xx, cut body)",
            metrics.upstream_errors.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_duration_seconds",
            "Time to an upstream's response head",
            metrics.upstream_latency.clone(),
        );
        registry.register(
            "keyframe_edge_memory_bytes",
            "Bytes held by the memory tiers",
            metrics.memory_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_sendfile_bytes",
            "Response body bytes sent from cached chunks with sendfile, without a copy",
            metrics.sendfile_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_healthy",
            "Whether an upstream is in rotation (1) or taken out by failures (0)",
            metrics.upstream_healthy.clone(),
        );
        registry.register(
            "keyframe_edge_entries",
            "Cached representations",
            metrics.entries.clone(),
        );
        registry.register(
            "keyframe_edge_chunk_hits",
            "Chunks served from memory",
            chunks.stats.hits.clone(),
        );
        registry.register(
            "keyframe_edge_chunk_misses",
            "Chunks fetched from upstream",
            chunks.stats.misses.clone(),
        );
        registry.register(
            "keyframe_edge_coalesced",
            "Chunk requests that joined a fetch already in flight",
            chunks.stats.coalesced.clone(),
        );
        registry.register(
            "keyframe_edge_evictions",
            "Chunks evicted from memory",
            chunks.stats.evictions.clone(),
        );
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
                config,
            }),
        };
        for s in stored {
            let (vkey, entry) = s.into_entry(TARGETED);
            let names = vary_names(&entry.headers);
            if !names.is_empty() {
                server.inner.vary.insert(entry.key.clone(), Arc::new(names));
            }
            server.inner.entries.insert(vkey, Arc::new(entry));
        }
        Ok(server)
    }

    /// Stores an entry (and writes it to the disk tier, if any).
    fn store_entry(&self, vkey: String, entry: Arc<Entry>) {
        if let Some(d) = &self.inner.disk {
            d.save_entry(&vkey, &entry);
        }
        self.inner.entries.insert(vkey, entry);
    }

    /// Drops every chunk of a generation, in memory and on disk.
    fn drop_generation(&self, generation: u64) {
        self.inner.chunks.drop_generation(generation);
        if let Some(d) = &self.inner.disk {
            d.forget(generation);
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
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
        http_server::serve(
            listener,
            limits,
            move |req, peer| {
                let s = self.clone();
                async move { s.handle(req, peer).await }
            },
            shutdown,
        )
        .await;
    }

    /// Probes every upstream every `health_check_secs`, concurrently, and takes
    /// the ones that do not answer (or answer 5xx) out of rotation until they do.
    async fn health_checks(self) {
        let secs = self.inner.config.health_check_secs;
        if secs == 0 {
            return;
        }
        let every = Duration::from_secs(secs);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let probes = self
                .inner
                .upstreams
                .all()
                .iter()
                .map(|up| self.probe(up.clone(), every));
            futures::future::join_all(probes).await;
        }
    }

    async fn probe(&self, up: Arc<Upstream>, every: Duration) {
        let path = &self.inner.config.health_check_path;
        let alive = match up.uri_for(if path.starts_with('/') { path } else { "/" }) {
            Ok(uri) => {
                let mut req = Request::new(empty());
                *req.method_mut() = Method::GET;
                *req.uri_mut() = uri;
                let timeout = self
                    .inner
                    .upstream_timeout
                    .min(every.max(Duration::from_secs(1)));
                match tokio::time::timeout(timeout, self.inner.client.request(req)).await {
                    Ok(Ok(resp)) => !resp.status().is_server_error(),
                    Ok(Err(e)) => {
                        tracing::debug!(upstream = %up.name, error = %e, "health check failed");
                        false
                    }
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        let was = up.available(SystemTime::now());
        if alive {
            up.succeeded();
        } else {
            up.check_failed(SystemTime::now(), every * 2);
        }
        if was != alive {
            if alive {
                tracing::info!(upstream = %up.name, "upstream healthy again");
            } else {
                tracing::warn!(upstream = %up.name, "upstream failed its health check; out of rotation");
            }
        }
        self.inner
            .metrics
            .upstream_healthy
            .get_or_create(&UpstreamLabels {
                upstream: up.name.clone(),
            })
            .set(i64::from(alive));
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let m = &self.inner.metrics.http;
        m.in_flight.inc();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut resp = match route(req.method(), req.uri().path()) {
            Endpoint::Healthz => Response::new(full("ok\n")),
            Endpoint::Metrics => self.metrics_response(),
            Endpoint::Purge => self.purge(req).await,
            Endpoint::Reserved => json_error(StatusCode::NOT_FOUND, "not_found", "no such path"),
            Endpoint::Proxy => {
                let mut resp = self.proxy(req, peer).await;
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
        m.in_flight.dec();
        m.requests
            .get_or_create(&StatusLabels {
                status: resp.status().as_u16(),
            })
            .inc();
        m.duration.observe(started.elapsed().as_secs_f64());
        tracing::info!(
            target: "keyframe::access",
            server = "edge",
            %peer,
            %method,
            path,
            status = resp.status().as_u16(),
            cache = resp.headers().get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or(""),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        let counter = m.response_bytes.clone();
        let (parts, body) = resp.into_parts();
        let body = body
            .map_frame(move |f| {
                if let Some(d) = f.data_ref() {
                    counter.inc_by(d.len() as u64);
                }
                f
            })
            .boxed_unsync();
        Response::from_parts(parts, body)
    }

    fn metrics_response(&self) -> Response<Body> {
        let i = &self.inner;
        i.metrics
            .memory_bytes
            .set(i64::try_from(i.chunks.memory_bytes()).unwrap_or(i64::MAX));
        i.metrics
            .entries
            .set(i64::try_from(i.entries.entry_count()).unwrap_or(i64::MAX));
        let sent = keyframe_origin::zerocopy::sent_bytes();
        let seen = i.metrics.sendfile_seen.swap(sent, Ordering::Relaxed);
        i.metrics.sendfile_bytes.inc_by(sent.saturating_sub(seen));
        let mut r = Response::new(full(render(&i.registry)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(keyframe_origin::metrics::CONTENT_TYPE),
        );
        r
    }

    fn count(&self, status: &'static str) {
        self.inner
            .metrics
            .by_cache_status
            .get_or_create(&CacheLabels {
                cache_status: status,
            })
            .inc();
    }

    /// The refusal to send, if the request's token or region does not allow it.
    fn check_token(&self, parts: &Parts, peer: SocketAddr) -> Option<Response<Body>> {
        let Some(key) = &self.inner.token_key else {
            return None;
        };
        let now = unix_secs(SystemTime::now());
        let claims = match token::extract(&parts.uri, &parts.headers) {
            None => Err(token::TokenError::Missing),
            Some(t) => token::verify(key, &t, parts.uri.path(), now),
        };
        let claims = match claims {
            Ok(c) => c,
            Err(e) => return Some(json_error(StatusCode::FORBIDDEN, e.code(), &e.to_string())),
        };
        if let Some(allowed) = claims.regions() {
            let client = self.inner.regions.region_of(&parts.headers, peer.ip());
            let ok = client
                .as_deref()
                .is_some_and(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)));
            if !ok {
                return Some(json_error(
                    StatusCode::FORBIDDEN,
                    "region",
                    "this content may not be played in the client's region",
                ));
            }
        }
        None
    }

    async fn proxy(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        if let Some(refusal) = self.check_token(&parts, peer) {
            return refusal;
        }
        let key = cache_key(&parts.uri);
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let resp = self.pass(parts, body, peer, &key, Fwd::Method).await;
            if policy::invalidates(&Method::POST, resp.status()) {
                self.invalidate_key(&key);
            }
            return resp;
        }
        let req_dirs = RequestDirectives::parse(&parts.headers);
        if self.inner.pass_marks.contains_key(&key) {
            return self.pass(parts, body, peer, &key, Fwd::Bypass).await;
        }
        let Some(vkey) = self.variant_key(&key, &parts.headers) else {
            return self.pass(parts, body, peer, &key, Fwd::VaryMiss).await;
        };
        let now = SystemTime::now();
        let stale = match self.inner.entries.get(&vkey) {
            Some(entry) => {
                let age = entry.age(now);
                let decision = if entry.is_purged() {
                    Decision::MustRevalidate
                } else {
                    policy::decide(entry.lifetime, age, &entry.directives, &req_dirs)
                };
                match decision {
                    Decision::Fresh => {
                        self.count("hit");
                        let ttl = entry.lifetime.as_secs() as i64 - age.as_secs() as i64;
                        let cs = CacheStatus {
                            hit: true,
                            ttl: Some(ttl),
                            ..CacheStatus::default()
                        };
                        return self.serve(entry, &parts, peer, cs);
                    }
                    Decision::Stale {
                        serve_while_revalidate: true,
                    } => {
                        self.count("stale");
                        let me = self.clone();
                        let (k, v, p) = (key.clone(), vkey.clone(), parts.clone());
                        let e = entry.clone();
                        tokio::spawn(async move {
                            let _ = me.object(&k, &v, &p, Some(e)).await;
                        });
                        let cs = CacheStatus {
                            hit: true,
                            ttl: Some(entry.lifetime.as_secs() as i64 - age.as_secs() as i64),
                            detail: Some("stale-while-revalidate".into()),
                            ..CacheStatus::default()
                        };
                        return self.serve(entry, &parts, peer, cs);
                    }
                    _ => Some(entry),
                }
            }
            None => None,
        };
        if req_dirs.only_if_cached {
            return json_error(
                StatusCode::GATEWAY_TIMEOUT,
                "not_cached",
                "only-if-cached, and no fresh response is stored",
            );
        }
        if parts.method == Method::HEAD && stale.is_none() {
            return self.pass(parts, body, peer, &key, Fwd::UriMiss).await;
        }
        if req_dirs.no_store && stale.is_none() {
            return self.pass(parts, body, peer, &key, Fwd::Request).await;
        }
        let revalidating = stale.is_some();
        let mut outcome = self.object(&key, &vkey, &parts, stale.clone()).await;
        if let Outcome::Entry { entry, .. } = &outcome {
            if !selects(&key, entry, &parts.headers) {
                // Joined a fetch for the first request of a URL whose answer turned
                // out to vary on headers this request has otherwise: not ours to
                // serve (RFC 9111 §4.1). Fetch (or join) this request's variant.
                outcome = match self.variant_key(&key, &parts.headers) {
                    Some(mine) if mine != vkey => self.object(&key, &mine, &parts, None).await,
                    _ => Outcome::Pass,
                };
                if matches!(&outcome, Outcome::Entry { entry, .. } if !selects(&key, entry, &parts.headers))
                {
                    outcome = Outcome::Pass;
                }
            }
        }
        match outcome {
            Outcome::Entry { entry, fwd_status } => {
                let same = stale
                    .as_ref()
                    .is_some_and(|s| s.generation == entry.generation);
                self.count(if same { "revalidated" } else { "miss" });
                let cs = CacheStatus {
                    fwd: Some(if revalidating {
                        Fwd::Stale
                    } else {
                        Fwd::UriMiss
                    }),
                    fwd_status: Some(fwd_status),
                    stored: true,
                    ttl: Some(entry.lifetime.as_secs() as i64),
                    ..CacheStatus::default()
                };
                self.serve(entry, &parts, peer, cs)
            }
            Outcome::Shared {
                status,
                headers,
                body,
            } => {
                if status.is_server_error() {
                    if let Some(entry) = stale {
                        let age = entry.age(SystemTime::now());
                        if policy::may_serve_stale_on_error(
                            entry.lifetime,
                            age,
                            &entry.directives,
                            &req_dirs,
                        ) {
                            self.count("stale");
                            let cs = CacheStatus {
                                hit: true,
                                fwd_status: Some(status.as_u16()),
                                detail: Some("stale-if-error".into()),
                                ..CacheStatus::default()
                            };
                            return self.serve(entry, &parts, peer, cs);
                        }
                    }
                }
                self.count("pass");
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                *r.headers_mut() = headers;
                let cs = CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(status.as_u16()),
                    ..CacheStatus::default()
                };
                set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                r
            }
            Outcome::Pass => self.pass(parts, body, peer, &key, Fwd::UriMiss).await,
            Outcome::Failed { status, why } => {
                if let Some(entry) = stale {
                    let age = entry.age(SystemTime::now());
                    if policy::may_serve_stale_on_error(
                        entry.lifetime,
                        age,
                        &entry.directives,
                        &req_dirs,
                    ) {
                        self.count("stale");
                        let cs = CacheStatus {
                            hit: true,
                            detail: Some("stale-if-error".into()),
                            ..CacheStatus::default()
                        };
                        return self.serve(entry, &parts, peer, cs);
                    }
                }
                tracing::warn!(key, why, "upstream fetch failed");
                let code = if status == StatusCode::GATEWAY_TIMEOUT {
                    "upstream_timeout"
                } else {
                    "upstream_unavailable"
                };
                let mut r = json_error(status, code, "no upstream answered");
                let cs = CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    detail: Some(code.into()),
                    ..CacheStatus::default()
                };
                set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                r
            }
        }
    }

    /// The key of the variant a request selects, or None for `Vary: *`.
    fn variant_key(&self, key: &str, headers: &HeaderMap) -> Option<String> {
        let Some(names) = self.inner.vary.get(key) else {
            return Some(key.to_string());
        };
        if names.iter().any(|n| n == "*") {
            return None;
        }
        Some(variant_key_for(key, &names, headers))
    }

    /// Runs (or joins) the one upstream fetch for an object: a miss, or the
    /// revalidation of `stale`.
    async fn object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let mut rx = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(vkey) {
                Some(tx) => {
                    self.inner.chunks.stats.coalesced.inc();
                    tx.subscribe()
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(vkey.to_string(), tx);
                    drop(flights);
                    let me = self.clone();
                    let (k, v, p) = (key.to_string(), vkey.to_string(), parts.clone());
                    // The fetch runs on its own task, so a leader that hangs up does
                    // not strand the waiters.
                    tokio::spawn(async move {
                        let outcome = me.fetch_object(&k, &v, &p, stale).await;
                        let tx = me
                            .inner
                            .flights
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&v);
                        if let Some(tx) = tx {
                            let _ = tx.send(Some(outcome));
                        }
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                return o;
            }
            if rx.changed().await.is_err() {
                return Outcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    why: "fetch abandoned".into(),
                };
            }
        }
    }

    async fn fetch_object(
        &self,
        key: &str,
        vkey: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let cs = self.inner.chunk_size;
        let want = first_wanted_offset(&parts.headers).unwrap_or(0);
        let mut headers = match &stale {
            Some(e) => e.upstream_headers.clone(),
            None => upstream_request_headers(&parts.headers),
        };
        if let Some(e) = &stale {
            if let Some(etag) = e.headers.get(header::ETAG) {
                headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = e.last_modified() {
                headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
            }
        }
        let path_q = upstream_path(&parts.uri);
        let mut chunk = want / cs;
        let mut ranged = true;
        for _attempt in 0..2 {
            let mut h = headers.clone();
            if ranged {
                let start = chunk * cs;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-{}", start, start + cs - 1))
                {
                    h.insert(header::RANGE, v);
                }
            }
            let request_time = SystemTime::now();
            let (resp, upstream) = match self.send(Method::GET, &path_q, h.clone(), key).await {
                Ok(x) => x,
                Err(f) => return f,
            };
            let response_time = SystemTime::now();
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                if let Some(old) = &stale {
                    let renewed = Arc::new(old.refreshed(
                        resp.headers(),
                        request_time,
                        response_time,
                        TARGETED,
                    ));
                    self.store_entry(vkey.to_string(), renewed.clone());
                    return Outcome::Entry {
                        entry: renewed,
                        fwd_status: 304,
                    };
                }
            }
            if status == StatusCode::RANGE_NOT_SATISFIABLE && ranged {
                // Past the end (the client asked beyond it) or an empty object:
                // ask for the first chunk, then for the whole object.
                if chunk > 0 {
                    chunk = 0;
                } else {
                    ranged = false;
                }
                continue;
            }
            let whole_or_part = status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT;
            let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
            let candidate = judge(Judged {
                key,
                request_headers: &h,
                status,
                headers: resp.headers(),
                request_time,
                response_time,
                generation,
                targeted: TARGETED,
            });
            let (entry, offset) = match candidate {
                Candidate::Store { entry, body_offset } => (*entry, body_offset),
                Candidate::Answer(entry) => {
                    return self.store_answer(*entry, resp, key, parts, stale).await;
                }
                Candidate::Pass(why) if whole_or_part => {
                    tracing::debug!(key, why, "not storable; passing");
                    // Not storable because of this request's credentials says
                    // nothing of the URL: marking it would let any client make a
                    // popular object uncacheable for everyone by sending a header.
                    if !h.contains_key(header::AUTHORIZATION) {
                        self.inner.pass_marks.insert(key.to_string(), ());
                    }
                    return Outcome::Pass;
                }
                Candidate::Pass(_) => return self.shared_outcome(resp).await,
            };
            if offset % cs != 0 {
                return Outcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    why: format!("upstream answered an unaligned range at {offset}"),
                };
            }
            let vkey = self.record_vary(key, resp.headers(), &parts.headers);
            let entry = Arc::new(entry);
            let first = offset / cs;
            let last = if status == StatusCode::OK {
                entry.chunk_count(cs).saturating_sub(1)
            } else {
                first
            };
            let flights = self.claim_flights(&entry, first, last);
            self.replace_entry(vkey, &entry, stale.as_deref());
            let me = self.clone();
            let e = entry.clone();
            let body = resp.into_body();
            tokio::spawn(async move { me.pump(body, e, first, flights, upstream).await });
            return Outcome::Entry {
                entry,
                fwd_status: status.as_u16(),
            };
        }
        Outcome::Failed {
            status: StatusCode::BAD_GATEWAY,
            why: "upstream kept refusing the range".into(),
        }
    }

    /// Stores an answer other than 200 (a 404, a redirect, …) with its body, which
    /// every waiter is then served from.
    async fn store_answer(
        &self,
        mut entry: Entry,
        resp: Response<Incoming>,
        key: &str,
        parts: &Parts,
        stale: Option<Arc<Entry>>,
    ) -> Outcome {
        let (head, body) = resp.into_parts();
        let body = match Limited::new(body, ANSWER_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            // Too long after all (no Content-Length), or cut short: each waiter
            // forwards its own request.
            Err(_) => return Outcome::Pass,
        };
        let vkey = self.record_vary(key, &head.headers, &parts.headers);
        entry.length = body.len() as u64;
        entry.inline = Some(body);
        let entry = Arc::new(entry);
        self.replace_entry(vkey, &entry, stale.as_deref());
        Outcome::Entry {
            entry,
            fwd_status: head.status.as_u16(),
        }
    }

    /// Records the fields a response varies on, so later requests find their
    /// variant; returns the key of the variant `req` selects.
    fn record_vary(&self, key: &str, resp: &HeaderMap, req: &HeaderMap) -> String {
        let names = vary_names(resp);
        if names.is_empty() {
            return key.to_string();
        }
        let vkey = variant_key_for(key, &names, req);
        self.inner.vary.insert(key.to_string(), Arc::new(names));
        vkey
    }

    /// Stores `entry` under `vkey` in place of `stale`, whose chunks go unless it
    /// is the same representation renewed.
    fn replace_entry(&self, vkey: String, entry: &Arc<Entry>, stale: Option<&Entry>) {
        self.store_entry(vkey, entry.clone());
        if let Some(old) = stale {
            if old.generation != entry.generation {
                self.drop_generation(old.generation);
            }
        }
    }

    /// Reads a small non-2xx answer to share with every waiter.
    async fn shared_outcome(&self, resp: Response<Incoming>) -> Outcome {
        let (mut parts, body) = resp.into_parts();
        match Limited::new(body, SHARED_BODY_LIMIT).collect().await {
            Ok(c) => {
                policy::strip_hop_by_hop(&mut parts.headers);
                parts.headers.remove(header::CONTENT_LENGTH);
                Outcome::Shared {
                    status: parts.status,
                    headers: parts.headers,
                    body: c.to_bytes(),
                }
            }
            Err(_) => Outcome::Pass,
        }
    }

    /// Takes the lead on chunks `first..=last` of `entry` where nobody else has.
    fn claim_flights(
        &self,
        entry: &Arc<Entry>,
        first: u64,
        last: u64,
    ) -> Vec<Option<Arc<InFlight>>> {
        let cs = self.inner.chunk_size;
        if entry.length == 0 {
            return Vec::new();
        }
        (first..=last)
            .map(|i| {
                match self
                    .inner
                    .chunks
                    .source((entry.generation, i), entry.chunk_len(i, cs))
                {
                    Source::Flight {
                        flight,
                        leader: true,
                    } => Some(flight),
                    _ => None,
                }
            })
            .collect()
    }

    /// Feeds an upstream body into the chunks it covers, starting at chunk `first`.
    async fn pump(
        self,
        mut body: Incoming,
        entry: Arc<Entry>,
        first: u64,
        mut flights: Vec<Option<Arc<InFlight>>>,
        upstream: Arc<Upstream>,
    ) {
        let cs = self.inner.chunk_size;
        let chunks = &self.inner.chunks;
        let mut idx = first;
        let mut slot = 0usize;
        let mut filled = 0u64;
        let total = flights.len();
        let fail = |flights: &mut Vec<Option<Arc<InFlight>>>, from: usize, why: String| {
            for f in flights.iter_mut().skip(from).flatten() {
                chunks.abort(f, why.clone());
            }
        };
        if entry.length == 0 {
            return;
        }
        loop {
            let frame = match tokio::time::timeout(self.inner.upstream_timeout, body.frame()).await
            {
                Ok(Some(Ok(f))) => f,
                Ok(Some(Err(e))) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    fail(&mut flights, slot, format!("upstream body: {e}"));
                    return;
                }
                Ok(None) => {
                    if slot < total {
                        self.inner.metrics.upstream_errors.inc();
                        fail(&mut flights, slot, "upstream body ended early".into());
                    }
                    return;
                }
                Err(_) => {
                    upstream.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    fail(&mut flights, slot, "upstream body stalled".into());
                    return;
                }
            };
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            self.inner.metrics.upstream_bytes.inc_by(data.len() as u64);
            while !data.is_empty() && slot < total {
                let len = entry.chunk_len(idx, cs);
                let take = (len - filled).min(data.len() as u64) as usize;
                let piece = data.split_to(take);
                if let Some(f) = &flights[slot] {
                    f.push(piece);
                }
                filled += take as u64;
                if filled == len {
                    if let Some(f) = flights[slot].take() {
                        if let Err(e) = chunks.complete(&f, entry.favoured(idx, cs)) {
                            tracing::warn!(error = %e, "chunk incomplete");
                        }
                    }
                    idx += 1;
                    slot += 1;
                    filled = 0;
                }
            }
            if slot >= total {
                return;
            }
        }
    }

    /// Starts fetching chunk `idx` of `entry` if nobody holds or fetches it;
    /// `ahead` for read-ahead, whose fetch is marked before it starts (so a fetch
    /// that finishes at once still goes to the window of recent chunks).
    fn ensure_chunk(&self, entry: &Arc<Entry>, idx: u64, ahead: bool) -> Source {
        let cs = self.inner.chunk_size;
        let src = self
            .inner
            .chunks
            .source((entry.generation, idx), entry.chunk_len(idx, cs));
        if let (true, Source::Flight { flight, .. }) = (ahead, &src) {
            flight.mark_ahead();
        }
        if let Source::Flight {
            flight,
            leader: true,
        } = &src
        {
            let me = self.clone();
            let (e, f) = (entry.clone(), flight.clone());
            let on_disk = self
                .inner
                .disk
                .as_ref()
                .is_some_and(|d| d.contains(&(entry.generation, idx)));
            tokio::spawn(async move {
                if on_disk {
                    if let Some(d) = &me.inner.disk {
                        if let Some(b) = d.read((e.generation, idx)).await {
                            if b.len() as u64 == f.len {
                                f.push(b);
                                let _ = me.inner.chunks.complete(&f, e.favoured(idx, cs));
                                return;
                            }
                        }
                    }
                }
                me.fetch_chunk(e, idx, f).await
            });
        }
        src
    }

    /// Fetches one chunk of a known representation.
    async fn fetch_chunk(self, entry: Arc<Entry>, idx: u64, flight: Arc<InFlight>) {
        let cs = self.inner.chunk_size;
        let start = idx * cs;
        let end = start + entry.chunk_len(idx, cs) - 1;
        let mut h = entry.upstream_headers.clone();
        if entry.ranges {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{end}")) {
                h.insert(header::RANGE, v);
            }
            if let Some(etag) = entry
                .strong_etag()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                h.insert(header::IF_RANGE, etag);
            } else if let Some(lm) = entry.last_modified() {
                h.insert(header::IF_RANGE, lm.clone());
            }
        }
        let path_q = upstream_path_from_key(&entry.key);
        let (resp, upstream) = match self.send(Method::GET, &path_q, h, &entry.key).await {
            Ok(x) => x,
            Err(o) => {
                self.inner.chunks.abort(&flight, format!("{o:?}"));
                return;
            }
        };
        let status = resp.status();
        let matches = match (
            status,
            resp.headers()
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range),
        ) {
            (StatusCode::PARTIAL_CONTENT, Some((a, b, total))) => {
                a == start && b == end && total == entry.length
            }
            _ => false,
        };
        if entry.ranges && !matches {
            // The representation changed under us (If-Range sent the whole new
            // one) or the upstream misbehaves: forget this entry and fail.
            self.invalidate_generation(&entry);
            self.inner.chunks.abort(
                &flight,
                format!("upstream answered {status} to a chunk request"),
            );
            return;
        }
        if !entry.ranges {
            if status != StatusCode::OK {
                self.inner
                    .chunks
                    .abort(&flight, format!("upstream answered {status}"));
                return;
            }
            // No range support: read the whole object and keep every chunk.
            let mut flights: Vec<Option<Arc<InFlight>>> = Vec::new();
            for i in 0..entry.chunk_count(cs) {
                if i == idx {
                    flights.push(Some(flight.clone()));
                } else {
                    flights.push(
                        match self
                            .inner
                            .chunks
                            .source((entry.generation, i), entry.chunk_len(i, cs))
                        {
                            Source::Flight {
                                flight,
                                leader: true,
                            } => Some(flight),
                            _ => None,
                        },
                    );
                }
            }
            self.pump(resp.into_body(), entry, 0, flights, upstream)
                .await;
            return;
        }
        self.pump(resp.into_body(), entry, idx, vec![Some(flight)], upstream)
            .await;
    }

    fn invalidate_generation(&self, entry: &Entry) {
        let generation = entry.generation;
        let keys: Vec<String> = self
            .inner
            .entries
            .iter()
            .filter(|(_, e)| e.generation == generation)
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            self.inner.entries.invalidate(&k);
        }
        self.drop_generation(generation);
    }

    fn invalidate_key(&self, key: &str) {
        let keys: Vec<String> = self
            .inner
            .entries
            .iter()
            .filter(|(k, _)| base_of(k) == key)
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            if let Some(e) = self.inner.entries.remove(&k) {
                self.drop_generation(e.generation);
            }
        }
    }

    /// Sends a request upstream, trying upstreams in rendezvous order on connect
    /// errors, timeouts and 5xx answers.
    async fn send(
        &self,
        method: Method,
        path_q: &str,
        headers: HeaderMap,
        key: &str,
    ) -> Result<(Response<Incoming>, Arc<Upstream>), Outcome> {
        let order = self.inner.upstreams.order(key, SystemTime::now());
        let n = order.len();
        let mut last = Outcome::Failed {
            status: StatusCode::BAD_GATEWAY,
            why: "no upstream".into(),
        };
        for (i, up) in order.into_iter().enumerate() {
            let uri = match up.uri_for(path_q) {
                Ok(u) => u,
                Err(e) => {
                    return Err(Outcome::Failed {
                        status: StatusCode::BAD_REQUEST,
                        why: e.to_string(),
                    })
                }
            };
            let mut req = Request::new(empty());
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers.clone();
            let started = Instant::now();
            self.inner.metrics.upstream_requests.inc();
            match tokio::time::timeout(self.inner.upstream_timeout, self.inner.client.request(req))
                .await
            {
                Ok(Ok(resp)) => {
                    self.inner
                        .metrics
                        .upstream_latency
                        .observe(started.elapsed().as_secs_f64());
                    if resp.status().is_server_error() {
                        up.failed(SystemTime::now());
                        self.inner.metrics.upstream_errors.inc();
                        if i + 1 < n {
                            continue;
                        }
                    } else {
                        up.succeeded();
                    }
                    return Ok((resp, up));
                }
                Ok(Err(e)) => {
                    tracing::debug!(upstream = %up.name, error = %e, "upstream request failed");
                    up.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    last = Outcome::Failed {
                        status: StatusCode::BAD_GATEWAY,
                        why: format!("{}: {e}", up.name),
                    };
                }
                Err(_) => {
                    up.failed(SystemTime::now());
                    self.inner.metrics.upstream_errors.inc();
                    last = Outcome::Failed {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        why: format!("{}: timed out", up.name),
                    };
                }
            }
        }
        Err(last)
    }

    /// Forwards a request upstream as is (but for hop-by-hop headers and the
    /// token) and streams the answer back.
    async fn pass(
        &self,
        parts: Parts,
        body: Incoming,
        peer: SocketAddr,
        key: &str,
        fwd: Fwd,
    ) -> Response<Body> {
        self.count("pass");
        let mut headers = upstream_request_headers(&parts.headers);
        append_forwarded_for(&mut headers, peer);
        let path_q = upstream_path(&parts.uri);
        let has_body = !(parts.method == Method::GET || parts.method == Method::HEAD)
            || parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let result = if has_body {
            // A body can be sent once: one upstream, no failover.
            let up = self.inner.upstreams.order(key, SystemTime::now()).remove(0);
            match up.uri_for(&path_q) {
                Ok(uri) => {
                    let mut req =
                        Request::new(body.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                    *req.method_mut() = parts.method.clone();
                    *req.uri_mut() = uri;
                    *req.headers_mut() = headers;
                    self.inner.metrics.upstream_requests.inc();
                    match tokio::time::timeout(
                        self.inner.upstream_timeout,
                        self.inner.client.request(req),
                    )
                    .await
                    {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(e)) => Err(Outcome::Failed {
                            status: StatusCode::BAD_GATEWAY,
                            why: e.to_string(),
                        }),
                        Err(_) => Err(Outcome::Failed {
                            status: StatusCode::GATEWAY_TIMEOUT,
                            why: "timed out".into(),
                        }),
                    }
                }
                Err(e) => Err(Outcome::Failed {
                    status: StatusCode::BAD_REQUEST,
                    why: e.to_string(),
                }),
            }
        } else {
            self.send(parts.method.clone(), &path_q, headers, key)
                .await
                .map(|(r, _)| r)
        };
        match result {
            Ok(resp) => {
                let (mut rp, rb) = resp.into_parts();
                policy::strip_hop_by_hop(&mut rp.headers);
                let cs = CacheStatus {
                    fwd: Some(fwd),
                    fwd_status: Some(rp.status.as_u16()),
                    ..CacheStatus::default()
                };
                set_cache_status(&mut rp.headers, cs.to_header_value(&self.inner.cache_name));
                let counter = self.inner.metrics.upstream_bytes.clone();
                let body = rb
                    .map_frame(move |f| {
                        if let Some(d) = f.data_ref() {
                            counter.inc_by(d.len() as u64);
                        }
                        f
                    })
                    .map_err(|e| Box::new(e) as BoxError)
                    .boxed_unsync();
                Response::from_parts(rp, body)
            }
            Err(Outcome::Failed { status, why }) => {
                tracing::warn!(key, why, "pass-through failed");
                let code = if status == StatusCode::GATEWAY_TIMEOUT {
                    "upstream_timeout"
                } else if status == StatusCode::BAD_REQUEST {
                    "bad_request"
                } else {
                    "upstream_unavailable"
                };
                json_error(status, code, "no upstream answered")
            }
            Err(_) => json_error(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "no upstream answered",
            ),
        }
    }

    /// Answers a GET or HEAD from a stored entry.
    fn serve(
        &self,
        entry: Arc<Entry>,
        parts: &Parts,
        _peer: SocketAddr,
        mut status: CacheStatus,
    ) -> Response<Body> {
        let etag = entry
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let last_modified = entry
            .last_modified()
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok());
        let validators = Validators {
            etag,
            last_modified,
        };
        let now = SystemTime::now();
        let mut h = entry.headers.clone();
        h.insert(header::AGE, policy::age_header_value(entry.age(now)));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let head = parts.method == Method::HEAD;
        // Preconditions are ignored when the answer would not be 2xx (RFC 9110
        // §13.2.1).
        let precondition = if entry.status.is_success() {
            conditional::evaluate(&parts.method, &parts.headers, &validators)
        } else {
            Precondition::Proceed
        };
        match precondition {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                h.retain_not_modified();
                set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                *r.headers_mut() = h;
                return r;
            }
            Precondition::Failed => {
                return json_error(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "a precondition of the request does not hold",
                );
            }
        }
        if let Some(body) = &entry.inline {
            // A stored answer other than 200: whole, never in ranges (RFC 9110 §14.2).
            h.remove(header::ACCEPT_RANGES);
            let mut resp = Response::new(empty());
            *resp.status_mut() = entry.status;
            if entry.status != StatusCode::NO_CONTENT {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                if !head {
                    *resp.body_mut() = full(body.clone());
                }
            }
            if status.ttl.is_some_and(|t| t < 0) {
                status.ttl = Some(0);
            }
            set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
            *resp.headers_mut() = h;
            return resp;
        }
        let range_header = parts.headers.get(header::RANGE).map(|v| v.as_bytes());
        let decision = if range_header.is_some()
            && conditional::if_range_allows(&parts.headers, &validators)
        {
            range::evaluate(range_header, entry.length, MAX_RANGES)
        } else {
            RangeDecision::Full
        };
        let content_type = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let mut resp = Response::new(empty());
        match decision {
            RangeDecision::Unsatisfiable => {
                let mut r = json_error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    "no requested range overlaps the object",
                );
                if let Ok(v) =
                    HeaderValue::from_str(&range::unsatisfied_content_range(entry.length))
                {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                set_cache_status(
                    r.headers_mut(),
                    status.to_header_value(&self.inner.cache_name),
                );
                return r;
            }
            RangeDecision::Full => {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.length));
                if !head && entry.length > 0 {
                    *resp.body_mut() = self.range_body(&entry, 0, entry.length);
                }
            }
            RangeDecision::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
                if let Ok(v) = HeaderValue::from_str(&range::content_range(r, entry.length)) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                if !head {
                    *resp.body_mut() = self.range_body(&entry, r.start, r.end);
                }
            }
            RangeDecision::Partial(ranges) => {
                let boundary = range::boundary_for(&format!("{}{etag}", entry.generation));
                let total = range::multipart_len(&boundary, &content_type, &ranges, entry.length);
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) =
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                {
                    h.insert(header::CONTENT_TYPE, v);
                }
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
                if !head {
                    *resp.body_mut() = self.multipart_body(&entry, ranges, boundary, content_type);
                }
            }
        }
        if status.ttl.is_some_and(|t| t < 0) {
            status.ttl = Some(0);
        }
        set_cache_status(&mut h, status.to_header_value(&self.inner.cache_name));
        *resp.headers_mut() = h;
        resp
    }

    /// The bytes `[start, end)` of an entry, from chunks, fetching what is missing.
    fn range_body(&self, entry: &Arc<Entry>, start: u64, end: u64) -> Body {
        let cs = self.inner.chunk_size;
        let idx = start / cs;
        if idx == (end.max(1) - 1) / cs {
            // Within one chunk that is in memory (most small ranges): one frame,
            // which the server can write with the response head.
            if let Some(b) = self.inner.chunks.hit(&(entry.generation, idx)) {
                let horizon = self.horizon(entry, start, end);
                self.read_ahead(entry, idx, horizon);
                return full(b.slice((start - idx * cs) as usize..(end - idx * cs) as usize));
            }
        }
        let s = self.chunk_stream(entry.clone(), start, end);
        StreamBody::new(s.map_ok(Frame::data)).boxed_unsync()
    }

    fn multipart_body(
        &self,
        entry: &Arc<Entry>,
        ranges: Vec<ByteRange>,
        boundary: String,
        content_type: String,
    ) -> Body {
        let me = self.clone();
        let entry = entry.clone();
        let n = ranges.len();
        let length = entry.length;
        let s = futures::stream::iter(ranges.into_iter().enumerate()).flat_map(move |(i, r)| {
            let head = range::part_head(&boundary, &content_type, r, length);
            let tail = (i + 1 == n).then(|| range::closing(&boundary));
            futures::stream::once(futures::future::ready(Ok(head)))
                .chain(me.chunk_stream(entry.clone(), r.start, r.end))
                .chain(futures::stream::iter(tail.map(Ok)))
        });
        StreamBody::new(s.map_ok(Frame::data)).boxed_unsync()
    }

    fn chunk_stream(
        &self,
        entry: Arc<Entry>,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
        let cs = self.inner.chunk_size;
        let first = start / cs;
        let last = (end.max(1) - 1) / cs;
        let horizon = self.horizon(&entry, start, end);
        let me = self.clone();
        futures::stream::iter(first..=last)
            .map(move |idx| {
                me.read_ahead(&entry, idx, horizon);
                let lo = if idx == first { start - idx * cs } else { 0 };
                let hi = if idx == last {
                    end - idx * cs
                } else {
                    entry.chunk_len(idx, cs)
                };
                match me.ensure_chunk(&entry, idx, false) {
                    Source::Ready(b) => {
                        let piece = b.slice(lo as usize..hi as usize);
                        futures::stream::once(futures::future::ready(Ok::<_, BoxError>(piece)))
                            .boxed()
                    }
                    Source::Flight { flight, .. } => flight
                        .read(lo, hi)
                        .map_err(|e| Box::new(e) as BoxError)
                        .boxed(),
                }
            })
            .flatten()
    }

    /// The last chunk worth having for a read of `[start, end)`: past the range's
    /// end by the read-ahead for a reader that starts where its last range ended (a
    /// player), else the range's own last chunk.
    fn horizon(&self, entry: &Entry, start: u64, end: u64) -> u64 {
        let cs = self.inner.chunk_size;
        let last = (end.max(1) - 1) / cs;
        let prev = entry
            .last_end
            .swap(end, std::sync::atomic::Ordering::Relaxed);
        let sequential =
            prev != u64::MAX && (prev == start || (start > 0 && prev / cs == start / cs));
        if sequential {
            (last + self.inner.config.read_ahead as u64)
                .min(entry.chunk_count(cs).saturating_sub(1))
        } else {
            last
        }
    }

    /// Starts fetching the chunks after `idx`, up to the read-ahead and `horizon`,
    /// that are neither cached nor being fetched. Those fetches are marked as read
    /// ahead: done, they also wait in the store's window of recent chunks, so the
    /// reader finds them even if the tiers' admission turned them away.
    fn read_ahead(&self, entry: &Arc<Entry>, idx: u64, horizon: u64) {
        let ahead = self.inner.config.read_ahead as u64;
        for next in (idx + 1)..=(idx + ahead).min(horizon) {
            if !self.inner.chunks.present(&(entry.generation, next)) {
                self.ensure_chunk(entry, next, true);
            }
        }
    }

    async fn purge(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(admin) = &self.inner.config.admin_token else {
            return json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "purge is not enabled (no admin token configured)",
            );
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), admin.as_bytes()) {
            return json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a valid admin token is required",
            );
        }
        let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "purge request body too large",
                )
            }
        };
        let p: PurgeRequest = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_json",
                    &format!("purge request: {e}"),
                )
            }
        };
        let target = match (&p.url, &p.prefix) {
            (Some(u), None) => PurgeTarget::Exact(normalise_purge_target(u)),
            (None, Some(pfx)) => PurgeTarget::Prefix(normalise_purge_target(pfx)),
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "give exactly one of \"url\" or \"prefix\"",
                )
            }
        };
        let n = self.purge_matching(&target, p.soft);
        let body = serde_json::json!({ "purged": n, "soft": p.soft }).to_string();
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }

    fn purge_matching(&self, target: &PurgeTarget, soft: bool) -> usize {
        let matching: Vec<(String, Arc<Entry>)> = self
            .inner
            .entries
            .iter()
            .filter(|(k, _)| target.matches(base_of(k)))
            .map(|(k, e)| ((*k).clone(), e))
            .collect();
        for (k, e) in &matching {
            if soft {
                e.purged.store(true, Ordering::Relaxed);
            } else {
                self.inner.entries.invalidate(k);
                self.drop_generation(e.generation);
            }
        }
        if !soft {
            target.invalidate_in(&self.inner.vary);
            // A URL marked pass is looked at afresh too.
            target.invalidate_in(&self.inner.pass_marks);
        }
        matching.len()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    url: Option<String>,
    prefix: Option<String>,
    #[serde(default)]
    soft: bool,
}

enum PurgeTarget {
    Exact(String),
    Prefix(String),
}

impl PurgeTarget {
    fn matches(&self, key: &str) -> bool {
        match self {
            PurgeTarget::Exact(k) => key == k,
            PurgeTarget::Prefix(p) => key.starts_with(p.as_str()),
        }
    }

    /// Drops the entries of a cache keyed by URL that this target matches.
    fn invalidate_in<V>(&self, cache: &moka::sync::Cache<String, V>)
    where
        V: Clone + Send + Sync + 'static,
    {
        let keys: Vec<String> = cache
            .iter()
            .filter(|(k, _)| self.matches(k))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            cache.invalidate(&k);
        }
    }
}

/// A purge target as a cache key: a full URL or a path, token stripped.
fn normalise_purge_target(s: &str) -> String {
    match s.parse::<Uri>() {
        Ok(u) if u.path_and_query().is_some() => cache_key(&u),
        _ => s.to_string(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The base cache key of a variant key.
fn base_of(vkey: &str) -> &str {
    vkey.split('\u{0}').next().unwrap_or(vkey)
}

/// Names listed in `Vary`, lowercased.
fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut v: Vec<HeaderName> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            if s == "*" {
                Some(HeaderName::from_static("*"))
            } else {
                HeaderName::try_from(s).ok()
            }
        })
        .collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v.dedup();
    v
}

/// Whether a stored entry may answer a request with these headers: the fields its
/// `Vary` names have the values the request that fetched it had (RFC 9111 §4.1).
fn selects(key: &str, entry: &Entry, headers: &HeaderMap) -> bool {
    let names = vary_names(&entry.headers);
    names.is_empty()
        || (!names.iter().any(|n| n == "*")
            && variant_key_for(key, &names, headers)
                == variant_key_for(key, &names, &entry.upstream_headers))
}

fn variant_key_for(key: &str, names: &[HeaderName], headers: &HeaderMap) -> String {
    let mut s = key.to_string();
    for n in names {
        s.push('\u{0}');
        s.push_str(n.as_str());
        s.push('=');
        let vals: Vec<&str> = headers
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        s.push_str(&vals.join(", "));
    }
    s
}

trait RetainNotModified {
    fn retain_not_modified(&mut self);
}

impl RetainNotModified for HeaderMap {
    /// Keeps what RFC 9110 §15.4.5 says a 304 carries.
    fn retain_not_modified(&mut self) {
        let keep = [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
            header::LAST_MODIFIED,
            header::AGE,
        ];
        let names: Vec<HeaderName> = self.keys().cloned().collect();
        for n in names {
            if !keep.contains(&n) {
                self.remove(&n);
            }
        }
    }
}

/// The first byte a request wants (to fetch the right chunk on a miss).
fn first_wanted_offset(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, _) = first.split_once('-')?;
    a.trim().parse().ok()
}

/// The request headers sent upstream: hop-by-hop, range, conditional and token
/// cookies removed.
fn upstream_request_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    policy::strip_hop_by_hop(&mut out);
    out.remove(header::HOST);
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        out.remove(name);
    }
    // The token never goes upstream, not even as a cookie.
    let cookies: Vec<String> = out
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| {
            c.split(';')
                .map(str::trim)
                .filter(|p| !p.starts_with("__token__="))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|c| !c.is_empty())
        .collect();
    out.remove(header::COOKIE);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            out.append(header::COOKIE, v);
        }
    }
    out.append(header::VIA, HeaderValue::from_static("1.1 keyframe"));
    out
}

fn append_forwarded_for(h: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let v = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&v) {
        h.insert("x-forwarded-for", v);
    }
}

/// Path and query sent upstream: the token stripped.
fn upstream_path(uri: &Uri) -> String {
    cache_key(uri)
}

fn upstream_path_from_key(key: &str) -> String {
    base_of(key).to_string()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/_keyframe/healthz"), Endpoint::Healthz);
        assert_eq!(route(&Method::POST, "/_keyframe/purge"), Endpoint::Purge);
        assert_eq!(route(&Method::GET, "/_keyframe/purge"), Endpoint::Reserved);
        assert_eq!(route(&Method::GET, "/v1/objects/x"), Endpoint::Proxy);
        assert_eq!(route(&Method::POST, "/anything"), Endpoint::Proxy);
    }

    #[test]
    fn upstreams_must_be_http_or_https_urls() {
        assert!(parse_upstream("http://127.0.0.1:8082").is_ok());
        assert!(parse_upstream("http://h/prefix/").is_ok());
        assert!(parse_upstream("https://origin.example:443").is_ok());
        assert!(parse_upstream("ftp://h").is_err());
        assert!(parse_upstream("not a url").is_err());
        assert!(parse_upstream("127.0.0.1:8082").is_err());
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

    #[test]
    fn variant_keys_follow_vary() {
        let mut resp = HeaderMap::new();
        resp.append(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, accept"),
        );
        let names = vary_names(&resp);
        assert_eq!(names.len(), 2);
        let mut a = HeaderMap::new();
        a.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let mut b = HeaderMap::new();
        b.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_ne!(
            variant_key_for("/k", &names, &a),
            variant_key_for("/k", &names, &b)
        );
        assert_eq!(base_of(&variant_key_for("/k", &names, &a)), "/k");
    }

    #[test]
    fn upstream_headers_lose_hop_by_hop_ranges_and_token_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __token__=xyz; b=2"),
        );
        h.insert(header::ACCEPT, HeaderValue::from_static("video/*"));
        let out = upstream_request_headers(&h);
        assert!(!out.contains_key("x-secret"));
        assert!(!out.contains_key(header::RANGE));
        assert_eq!(
            out.get(header::COOKIE).and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
        assert_eq!(
            out.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
            Some("video/*")
        );
    }

    #[test]
    fn first_offsets() {
        let mut h = HeaderMap::new();
        assert_eq!(first_wanted_offset(&h), None);
        h.insert(header::RANGE, HeaderValue::from_static("bytes=500-999,0-1"));
        assert_eq!(first_wanted_offset(&h), Some(500));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-500"));
        assert_eq!(first_wanted_offset(&h), None);
    }
}
