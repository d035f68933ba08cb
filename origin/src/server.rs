//! The origin's HTTP server: `GET|HEAD /v1/objects/{key}` as RFC 9110 byte ranges
//! straight from object storage, plus `/_keyframe/healthz` and `/_keyframe/metrics`.
//!
//! Routing is a pure function ([`route`]); the handlers do the I/O. Bodies stream
//! from storage in bounded pieces, so a 10 GiB range costs no more memory than a
//! 1 MiB one, and a storage error mid-body aborts the connection instead of ending
//! the body early.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use keyframe_core::key::parse_key;
use keyframe_core::store::{self, Store};
use keyframe_core::token::{self, TokenKey};
use keyframe_core::ErrorCode;
use keyframe_http::access::{self, Loudness};
use keyframe_http::conditional::{self, Validators};
use keyframe_http::http_server::{self, empty, full, json_error, text_response, Body, BoxError};
use keyframe_http::metrics::{latency_histogram, render, HttpMetrics};
use keyframe_http::plan::{self, Plan, PlanBody, Representation};
use keyframe_http::range::{self, ByteRange};

use crate::config::Config;
use keyframe_http::cors::Cors;
use keyframe_http::manifest::{self, Propagation};

/// The URL prefix objects are served under.
pub const OBJECTS_PREFIX: &str = "/v1/objects/";

/// What a request asks for, decided from its method and path alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `/_keyframe/healthz`
    Healthz,
    /// `/_keyframe/metrics`
    Metrics,
    /// `GET|HEAD /v1/objects/{key}`, with the key still unchecked.
    Object(&'a str),
    /// A known path with a method it does not allow.
    MethodNotAllowed(&'static str),
    /// Anything else.
    NotFound,
}

/// Routes a request. Pure: no I/O, no state.
pub fn route<'a>(method: &Method, path: &'a str) -> Endpoint<'a> {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/_keyframe/healthz" if read => Endpoint::Healthz,
        "/_keyframe/metrics" if read => Endpoint::Metrics,
        "/_keyframe/healthz" | "/_keyframe/metrics" => Endpoint::MethodNotAllowed("GET, HEAD"),
        _ => match path.strip_prefix(OBJECTS_PREFIX) {
            Some(key) if read => Endpoint::Object(key),
            Some(_) => Endpoint::MethodNotAllowed("GET, HEAD"),
            None => Endpoint::NotFound,
        },
    }
}

/// What the origin knows of an object without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Length in bytes.
    pub size: u64,
    /// Strong entity tag, quoted.
    pub etag: String,
    /// When the object was written, to the second.
    pub last_modified: SystemTime,
    /// Media type, from the key's extension.
    pub content_type: &'static str,
    /// `ETag` and `Last-Modified` as header values, built once.
    pub etag_header: Option<HeaderValue>,
    pub last_modified_header: Option<HeaderValue>,
}

/// Errors of `read` and `info`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("object not found")]
    NotFound,
    #[error("storage error: {0}")]
    Storage(#[source] Arc<object_store::Error>),
}

impl From<object_store::Error> for ReadError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => ReadError::NotFound,
            e => ReadError::Storage(Arc::new(e)),
        }
    }
}

/// The strong ETag of an object: its SHA-256 when the key is content-addressed
/// (the file name is 64 hex digits), else a digest of the store's own version tag.
pub fn etag_for(key: &str, store_etag: Option<&str>, size: u64, modified: SystemTime) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let stem = name.split('.').next().unwrap_or(name);
    if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        return format!("\"{}\"", stem.to_ascii_lowercase());
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(store_etag.unwrap_or_default().as_bytes());
    h.update(size.to_le_bytes());
    let secs = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    h.update(secs.to_le_bytes());
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

/// Origin metrics beyond the common HTTP ones.
#[derive(Debug)]
struct OriginMetrics {
    http: HttpMetrics,
    storage_latency: Histogram,
    storage_errors: Counter,
}

struct Inner {
    config: Config,
    store: Store,
    token_key: Option<TokenKey>,
    meta: moka::future::Cache<String, Arc<ObjectInfo>>,
    registry: Registry,
    metrics: OriginMetrics,
    /// Bytes read from storage per request while streaming a body.
    read_chunk: u64,
    /// The fast path for `file://` stores.
    local: Option<LocalFiles>,
    /// `Cache-Control` of objects, built once.
    cache_control: Option<HeaderValue>,
    /// TLS to terminate, loaded once from `tls_cert` and `tls_key`.
    tls: Option<keyframe_http::tls::Tls>,
    /// Who may fetch objects from other origins' pages.
    cors: Cors,
}

/// Positional reads from the files of a `file://` store, with open handles kept:
/// content-addressed objects never change, so a handle stays valid. Small reads
/// (at most [`INLINE_READ`]) come from the page cache in a microsecond or two and
/// run inline; larger ones run on the blocking pool so a slow disk never stalls
/// the async workers for long.
struct LocalFiles {
    root: std::path::PathBuf,
    open: moka::sync::Cache<String, Arc<std::fs::File>>,
}

/// Reads up to this size run inline on the async worker.
pub const INLINE_READ: u64 = 64 * 1024;

fn io_error(path: &Path, e: std::io::Error) -> object_store::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: path.to_string(),
            source: Box::new(e),
        }
    } else {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        }
    }
}

/// `range` of `file`, shorter only at the file's end. The bytes are read into the
/// buffer's spare capacity: zero-filling it first (`vec![0; len]`) cost a tenth of
/// a 4 KiB hit's instructions (callgrind), and a memset of every 1 MiB read.
fn read_exact_at(file: &std::fs::File, range: Range<u64>) -> std::io::Result<Bytes> {
    let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = range.start + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed `len`: never more than was asked.
    buf.truncate(len);
    Ok(Bytes::from(buf))
}

impl LocalFiles {
    fn new(root: std::path::PathBuf) -> Self {
        LocalFiles {
            root,
            open: moka::sync::Cache::builder()
                .max_capacity(1024)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    async fn read(&self, key: &Path, range: Range<u64>) -> Result<Bytes, object_store::Error> {
        let k = key.to_string();
        let file = match self.open.get(&k) {
            Some(f) => f,
            None => {
                // Keys were validated: no empty, `.` or `..` segment can escape the root.
                let path = self.root.join(&k);
                let f = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    })?
                    .map_err(|e| io_error(key, e))?;
                let f = Arc::new(f);
                self.open.insert(k, f.clone());
                f
            }
        };
        if range.end - range.start <= INLINE_READ {
            return read_exact_at(&file, range).map_err(|e| io_error(key, e));
        }
        tokio::task::spawn_blocking(move || read_exact_at(&file, range))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })?
            .map_err(|e| io_error(key, e))
    }
}

/// An origin server over one object store.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("store", &self.inner.store.to_string())
            .finish()
    }
}

/// Why a server could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("token-key: {0}")]
    TokenKey(#[from] token::TokenError),
    /// `tls-cert`/`tls-key`: one without the other, or a file that will not load.
    #[error(transparent)]
    Tls(#[from] keyframe_http::tls::TlsError),
    #[error(transparent)]
    Cors(#[from] keyframe_http::cors::CorsError),
}

impl Server {
    /// Builds a server over `store`.
    pub fn new(config: Config, store: Store) -> Result<Self, ConfigError> {
        let token_key = config
            .token_key
            .as_deref()
            // An empty value (`KEYFRAME_TOKEN_KEY=`) means no key, as in the catalog.
            .filter(|k| !k.trim().is_empty())
            .map(TokenKey::from_config)
            .transpose()?;
        let tls = config.tls()?;
        let cors = Cors::from_config(&config.cors_allowed_origins)?;
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let storage_latency = latency_histogram();
        let storage_errors = Counter::default();
        registry.register(
            "keyframe_origin_storage_request_duration_seconds",
            "Latency of object-store requests",
            storage_latency.clone(),
        );
        registry.register(
            "keyframe_origin_storage_errors",
            "Object-store requests that failed",
            storage_errors.clone(),
        );
        let read_chunk = if store.to_string().starts_with("LocalFileSystem") {
            1 << 20
        } else {
            8 << 20
        };
        let cache_control = HeaderValue::from_str(&config.cache_control).ok();
        let meta = moka::future::Cache::builder()
            .max_capacity(config.metadata_cache_entries)
            .build();
        Ok(Server {
            inner: Arc::new(Inner {
                config,
                store,
                token_key,
                meta,
                registry,
                metrics: OriginMetrics {
                    http,
                    storage_latency,
                    storage_errors,
                },
                read_chunk,
                local: None,
                cache_control,
                tls,
                cors,
            }),
        })
    }

    /// Serves a `file://` store's objects straight from its directory `root` (the
    /// same objects the store holds), with kept file handles and positional reads.
    pub fn with_local_root(self, root: std::path::PathBuf) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.local = Some(LocalFiles::new(root));
                Server {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Server { inner },
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
        limits.tls = self.inner.tls.clone();
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

    /// The object's size, validators and type, from a cached `head`.
    pub async fn info(&self, key: &Path) -> Result<Arc<ObjectInfo>, ReadError> {
        let k = key.to_string();
        if let Some(hit) = self.inner.meta.get(&k).await {
            return Ok(hit);
        }
        self.inner
            .meta
            .try_get_with(k.clone(), async {
                let started = Instant::now();
                let res = self.inner.store.head(key).await;
                self.observe_storage(started, res.is_err() && !is_not_found(&res));
                let m = res?;
                let last_modified = SystemTime::from(m.last_modified);
                let last_modified = truncate_to_secs(last_modified);
                let etag = etag_for(&k, m.e_tag.as_deref(), m.size, last_modified);
                Ok::<_, ReadError>(Arc::new(ObjectInfo {
                    size: m.size,
                    etag_header: HeaderValue::from_str(&etag).ok(),
                    etag,
                    last_modified_header: HeaderValue::from_str(&conditional::http_date(
                        last_modified,
                    ))
                    .ok(),
                    last_modified,
                    content_type: keyframe_core::mime::type_for_key(&k),
                }))
            })
            .await
            .map_err(|e: Arc<ReadError>| match &*e {
                ReadError::NotFound => ReadError::NotFound,
                ReadError::Storage(s) => ReadError::Storage(s.clone()),
            })
    }

    /// `read(key, range)`: the bytes of `range` as a stream of pieces of at most
    /// one read chunk, with one piece read ahead. Memory is bounded by two chunks
    /// per stream whatever the range's length; a slow consumer slows the reads.
    pub fn read(
        &self,
        key: Path,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        let chunk = self.inner.read_chunk;
        let pieces = (range.start..range.end)
            .step_by(usize::try_from(chunk).unwrap_or(usize::MAX))
            .map(move |s| s..(s + chunk).min(range.end));
        let server = self.clone();
        futures::stream::iter(pieces)
            .map(move |r| {
                let server = server.clone();
                let key = key.clone();
                async move {
                    let started = Instant::now();
                    let res = match &server.inner.local {
                        Some(local) => local.read(&key, r.clone()).await,
                        None => server.inner.store.get_range(&key, r.clone()).await,
                    };
                    server.observe_storage(started, res.is_err());
                    let bytes = res?;
                    if bytes.len() as u64 != r.end - r.start {
                        // The object changed or the store misbehaved: never pass
                        // a short read off as the requested bytes.
                        return Err(ReadError::Storage(Arc::new(object_store::Error::Generic {
                            store: "origin",
                            source: format!(
                                "short read: asked {} bytes, got {}",
                                r.end - r.start,
                                bytes.len()
                            )
                            .into(),
                        })));
                    }
                    Ok(bytes)
                }
            })
            .buffered(2)
    }

    fn observe_storage(&self, started: Instant, failed: bool) {
        let m = &self.inner.metrics;
        m.storage_latency.observe(started.elapsed().as_secs_f64());
        if failed {
            m.storage_errors.inc();
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let m = &self.inner.metrics.http;
        access::observe("origin", m, req, peer, Loudness::Info, |req| async move {
            let objects = req.uri().path().starts_with(OBJECTS_PREFIX);
            match self.inner.cors.preflight(req.method(), req.headers()) {
                Some(r) if objects => r,
                _ => {
                    let mut r = self.respond(&req).await;
                    if objects {
                        let origin = req.headers().get(header::ORIGIN);
                        self.inner.cors.apply(origin, r.headers_mut());
                    }
                    r
                }
            }
        })
        .await
    }

    async fn respond(&self, req: &Request<Incoming>) -> Response<Body> {
        match route(req.method(), req.uri().path()) {
            Endpoint::Healthz => match store::check(&*self.inner.store).await {
                Ok(()) => text_response(StatusCode::OK, "ok\n"),
                Err(e) => {
                    tracing::warn!(error = %e, "health check: storage unreachable");
                    json_error(
                        ErrorCode::StorageUnavailable,
                        "object storage is unreachable",
                    )
                }
            },
            Endpoint::Metrics => {
                let mut r = Response::new(full(render(&self.inner.registry)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(keyframe_http::metrics::CONTENT_TYPE),
                );
                r
            }
            Endpoint::MethodNotAllowed(allow) => http_server::method_not_allowed(allow),
            Endpoint::NotFound => json_error(ErrorCode::NotFound, "no such path"),
            Endpoint::Object(raw_key) => {
                // A checked token in the query goes on into the manifest's references.
                match Propagation::of(req.uri()).filter(|_| self.inner.token_key.is_some()) {
                    Some(p) => {
                        p.apply(req.method(), self.object(req, raw_key, Some(&p)).await)
                            .await
                    }
                    None => self.object(req, raw_key, None).await,
                }
            }
        }
    }

    async fn object(
        &self,
        req: &Request<Incoming>,
        raw_key: &str,
        propagation: Option<&Propagation>,
    ) -> Response<Body> {
        if let Some(key) = &self.inner.token_key {
            if let Err(e) = token::check(key, req.uri(), req.headers(), SystemTime::now()) {
                return json_error(e.code(), &e.to_string());
            }
        }
        let path = match parse_key(raw_key) {
            Ok(p) => p,
            Err(e) => return json_error(ErrorCode::BadKey, &e.to_string()),
        };
        let info = match self.info(&path).await {
            Ok(i) => i,
            Err(ReadError::NotFound) => return json_error(ErrorCode::NotFound, "no such object"),
            Err(ReadError::Storage(e)) => {
                tracing::warn!(key = raw_key, error = %e, "storage head failed");
                return json_error(
                    ErrorCode::StorageUnavailable,
                    "object storage did not answer",
                );
            }
        };
        let head_only = req.method() == Method::HEAD;
        let mut headers = std::borrow::Cow::Borrowed(req.headers());
        if let Some(p) = propagation.filter(|_| manifest::is_manifest_path(req.uri().path())) {
            p.whole_manifest(req.uri().path(), headers.to_mut());
        }
        self.object_response(&headers, head_only, path, &info).await
    }

    /// Builds the response for an object whose metadata is known.
    async fn object_response(
        &self,
        headers: &HeaderMap,
        head_only: bool,
        path: Path,
        info: &ObjectInfo,
    ) -> Response<Body> {
        let method = if head_only { Method::HEAD } else { Method::GET };
        let boundary = || range::boundary_for(&info.etag);
        let rep = Representation {
            validators: Validators {
                etag: &info.etag,
                last_modified: Some(info.last_modified),
            },
            len: info.size,
            content_type: info.content_type,
            ranges: true,
            boundary: &boundary,
        };
        let limits = plan::Limits {
            max_ranges: self.inner.config_max_ranges(),
        };
        let Plan {
            status,
            headers: planned,
            body,
        } = plan::plan(&method, headers, &rep, limits);
        if let PlanBody::Error { code, message } = body {
            let mut r = json_error(code, message);
            r.headers_mut().extend(planned);
            return r;
        }
        let mut hm = HeaderMap::new();
        if let Some(v) = &info.etag_header {
            hm.insert(header::ETAG, v.clone());
        }
        if let Some(v) = &info.last_modified_header {
            hm.insert(header::LAST_MODIFIED, v.clone());
        }
        if let Some(v) = &self.inner.cache_control {
            hm.insert(header::CACHE_CONTROL, v.clone());
        }
        if status == StatusCode::NOT_MODIFIED {
            hm.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        } else {
            hm.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(info.content_type),
            );
        }
        // The plan's Content-Type (multipart) wins over the object's.
        hm.extend(planned);
        let mut resp = Response::new(match body {
            PlanBody::Empty | PlanBody::Error { .. } => empty(),
            PlanBody::Whole => {
                let whole = ByteRange {
                    start: 0,
                    end: info.size,
                };
                self.single_body(path, whole).await
            }
            PlanBody::Range(r) => self.single_body(path, r).await,
            PlanBody::Multipart { boundary, ranges } => {
                let parts = Multipart {
                    boundary,
                    content_type: info.content_type,
                    size: info.size,
                    ranges: ranges.clone(),
                };
                self.body(path, ranges, Some(parts))
            }
        });
        *resp.status_mut() = status;
        *resp.headers_mut() = hm;
        resp
    }

    /// The body of one range: small ones from local files are read up front into
    /// one buffer (headers and body then leave in one write); the rest stream.
    async fn single_body(&self, path: Path, r: ByteRange) -> Body {
        if let Some(local) = &self.inner.local {
            if r.len() <= INLINE_READ {
                let started = Instant::now();
                let res = local.read(&path, r.start..r.end).await;
                self.observe_storage(started, res.is_err());
                if let Ok(b) = res {
                    if b.len() as u64 == r.len() {
                        return full(b);
                    }
                }
                // Fall through: the streaming path reports the error mid-body.
            }
        }
        self.body(path, vec![r], None)
    }

    /// A streaming body of `ranges` of the object, framed as multipart when asked.
    fn body(&self, path: Path, ranges: Vec<ByteRange>, multipart: Option<Multipart>) -> Body {
        let server = self.clone();
        let stream = futures::stream::iter(ranges.into_iter().enumerate())
            .flat_map(move |(i, r)| {
                let head = multipart.as_ref().map(|m| {
                    Ok::<_, ReadError>(range::part_head(
                        &m.boundary,
                        m.content_type,
                        m.ranges[i],
                        m.size,
                    ))
                });
                let tail = multipart
                    .as_ref()
                    .filter(|m| i + 1 == m.ranges.len())
                    .map(|m| Ok(range::closing(&m.boundary)));
                futures::stream::iter(head)
                    .chain(server.read(path.clone(), r.start..r.end))
                    .chain(futures::stream::iter(tail))
            })
            .map_ok(Frame::data)
            .map_err(|e| {
                tracing::warn!(error = %e, "storage read failed mid-body; aborting the response");
                Box::new(e) as BoxError
            });
        StreamBody::new(stream).boxed_unsync()
    }
}

impl Inner {
    fn config_max_ranges(&self) -> usize {
        self.config.max_ranges.max(1)
    }
}

struct Multipart {
    boundary: String,
    content_type: &'static str,
    size: u64,
    ranges: Vec<ByteRange>,
}

fn is_not_found<T>(res: &Result<T, object_store::Error>) -> bool {
    matches!(res, Err(object_store::Error::NotFound { .. }))
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_reads_return_the_range_and_stop_at_the_end() {
        use std::io::Write;
        let mut f = tempfile::tempfile().expect("temp file");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&data).expect("write");
        for (start, end) in [
            (0, 0),
            (0, 4096),
            (1, 65_537),
            (99_000, 100_000),
            (5, 99_999),
        ] {
            let got = read_exact_at(&f, start..end).expect("read");
            assert_eq!(
                &got[..],
                &data[start as usize..end as usize],
                "{start}..{end}"
            );
        }
        // Past the end: only what the file has.
        let got = read_exact_at(&f, 99_990..100_100).expect("read");
        assert_eq!(&got[..], &data[99_990..]);
        assert!(read_exact_at(&f, 200_000..200_010)
            .expect("read")
            .is_empty());
    }

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/_keyframe/healthz"), Endpoint::Healthz);
        assert_eq!(
            route(&Method::HEAD, "/_keyframe/metrics"),
            Endpoint::Metrics
        );
        assert_eq!(
            route(&Method::GET, "/v1/objects/a/b.mp4"),
            Endpoint::Object("a/b.mp4")
        );
        assert_eq!(route(&Method::HEAD, "/v1/objects/"), Endpoint::Object(""));
        assert_eq!(
            route(&Method::POST, "/v1/objects/a"),
            Endpoint::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(route(&Method::GET, "/v1/object/a"), Endpoint::NotFound);
        assert_eq!(route(&Method::GET, "/"), Endpoint::NotFound);
    }

    #[test]
    fn etags_come_from_the_content_hash() {
        let hash = "ab".repeat(32);
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(
            etag_for(&format!("sha256/ab/{hash}.mp4"), Some("x"), 5, t),
            format!("\"{hash}\"")
        );
        let a = etag_for("plain/name.mp4", Some("v1"), 5, t);
        let b = etag_for("plain/name.mp4", Some("v2"), 5, t);
        assert_ne!(a, b);
        assert!(a.starts_with('"') && a.ends_with('"'));
    }
}
