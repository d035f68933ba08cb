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
use keyframe_http::conditional::{self, Precondition, Validators};
use keyframe_http::http_server::{self, empty, full, json_error, text_response, Body, BoxError};
use keyframe_http::metrics::{latency_histogram, render, HttpMetrics, StatusLabels};
use keyframe_http::range::{self, ByteRange, RangeDecision};

use crate::config::Config;

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

fn read_exact_at(file: &std::fs::File, range: Range<u64>) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], range.start + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
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
        let mut limits = self.inner.config.limits();
        limits.tls = self.inner.tls.clone();
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
        let started = Instant::now();
        let m = &self.inner.metrics.http;
        m.in_flight.inc();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = self.respond(&req).await;
        m.in_flight.dec();
        let status = resp.status();
        m.requests
            .get_or_create(&StatusLabels {
                status: status.as_u16(),
            })
            .inc();
        m.duration.observe(started.elapsed().as_secs_f64());
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // The access line is written when the body ends or is dropped, with the bytes
        // that actually went out: a download cut at 68 MB logs 68 MB, not the length.
        resp.map(|body| {
            AccessLogged {
                body,
                line: AccessLine {
                    peer,
                    method,
                    path,
                    status,
                    started,
                    length,
                    sent: 0,
                    ended: false,
                },
            }
            .boxed_unsync()
        })
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
            Endpoint::MethodNotAllowed(allow) => {
                let mut r = json_error(
                    ErrorCode::MethodNotAllowed,
                    "this path allows only GET and HEAD",
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                r
            }
            Endpoint::NotFound => json_error(ErrorCode::NotFound, "no such path"),
            Endpoint::Object(raw_key) => self.object(req, raw_key).await,
        }
    }

    async fn object(&self, req: &Request<Incoming>, raw_key: &str) -> Response<Body> {
        if let Some(key) = &self.inner.token_key {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let checked = match token::extract(req.uri(), req.headers()) {
                None => Err(token::TokenError::Missing),
                Some(t) => token::verify(key, &t, req.uri().path(), now),
            };
            if let Err(e) = checked {
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
        self.object_response(req.headers(), head_only, path, &info)
            .await
    }

    /// Builds the response for an object whose metadata is known.
    async fn object_response(
        &self,
        headers: &HeaderMap,
        head_only: bool,
        path: Path,
        info: &ObjectInfo,
    ) -> Response<Body> {
        let validators = Validators {
            etag: &info.etag,
            last_modified: Some(info.last_modified),
        };
        let method = if head_only { Method::HEAD } else { Method::GET };
        let mut resp = Response::new(empty());
        let mut hm = HeaderMap::new();
        let h = &mut hm;
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(v) = &info.etag_header {
            h.insert(header::ETAG, v.clone());
        }
        if let Some(v) = &info.last_modified_header {
            h.insert(header::LAST_MODIFIED, v.clone());
        }
        if let Some(v) = &self.inner.cache_control {
            h.insert(header::CACHE_CONTROL, v.clone());
        }
        match conditional::evaluate(&method, headers, &validators) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                *resp.headers_mut() = hm;
                return resp;
            }
            Precondition::Failed => {
                let mut r = json_error(
                    ErrorCode::PreconditionFailed,
                    "a precondition of the request does not hold",
                );
                r.headers_mut()
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                return r;
            }
        }
        let range_header = headers.get(header::RANGE).map(|v| v.as_bytes());
        let decision =
            if range_header.is_some() && conditional::if_range_allows(headers, &validators) {
                range::evaluate(range_header, info.size, self.inner.config_max_ranges())
            } else {
                RangeDecision::Full
            };
        let h = &mut hm;
        match decision {
            RangeDecision::Full => {
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(info.content_type),
                );
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
                if !head_only {
                    *resp.body_mut() = self
                        .single_body(
                            path,
                            ByteRange {
                                start: 0,
                                end: info.size,
                            },
                        )
                        .await;
                }
            }
            RangeDecision::Unsatisfiable => {
                let mut r = json_error(
                    ErrorCode::RangeNotSatisfiable,
                    "no requested range overlaps the object",
                );
                if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_content_range(info.size)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r.headers_mut()
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                return r;
            }
            RangeDecision::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(info.content_type),
                );
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
                if let Ok(v) = HeaderValue::from_str(&range::content_range(r, info.size)) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                if !head_only {
                    *resp.body_mut() = self.single_body(path, r).await;
                }
            }
            RangeDecision::Partial(ranges) => {
                let boundary = range::boundary_for(&info.etag);
                let total = range::multipart_len(&boundary, info.content_type, &ranges, info.size);
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) =
                    HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
                {
                    h.insert(header::CONTENT_TYPE, v);
                }
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
                if !head_only {
                    let parts = Multipart {
                        boundary,
                        content_type: info.content_type,
                        size: info.size,
                        ranges: ranges.clone(),
                    };
                    *resp.body_mut() = self.body(path, ranges.clone(), Some(parts));
                }
            }
        }
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
                        self.inner.metrics.http.response_bytes.inc_by(r.len());
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
        let bytes_counter = self.inner.metrics.http.response_bytes.clone();
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
            .inspect_ok(move |b| {
                bytes_counter.inc_by(b.len() as u64);
            })
            .map_ok(Frame::data)
            .map_err(|e| {
                tracing::warn!(error = %e, "storage read failed mid-body; aborting the response");
                Box::new(e) as BoxError
            });
        StreamBody::new(stream).boxed_unsync()
    }
}

/// A response body that writes the request's access line when it ends or is
/// dropped, counting the bytes it handed to the connection.
struct AccessLogged {
    body: Body,
    line: AccessLine,
}

/// What the access line says.
struct AccessLine {
    peer: SocketAddr,
    method: Method,
    path: String,
    status: StatusCode,
    started: Instant,
    /// The `Content-Length` the response announced.
    length: Option<u64>,
    /// Body bytes handed to the connection.
    sent: u64,
    /// The body reached its end (or an error ended it).
    ended: bool,
}

impl http_body::Body for AccessLogged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.line.sent += d.len() as u64;
                }
            }
            std::task::Poll::Ready(None) => self.line.ended = true,
            std::task::Poll::Ready(Some(Err(_))) | std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for AccessLogged {
    fn drop(&mut self) {
        let l = &self.line;
        let complete =
            l.ended || http_body::Body::is_end_stream(&self.body) || l.length == Some(l.sent);
        tracing::info!(
            target: "keyframe::access",
            server = "origin",
            peer = %l.peer,
            method = %l.method,
            path = l.path,
            status = l.status.as_u16(),
            bytes = l.sent,
            complete,
            micros = l.started.elapsed().as_micros() as u64,
            "request"
        );
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
