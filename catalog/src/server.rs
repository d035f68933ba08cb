//! The catalog's HTTP server (axum): the JSON API under `/api` (documented by the
//! OpenAPI document at `/api/openapi.json`, generated from the handlers), the web
//! page at `/`, and health and metrics under `/_keyframe/`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keyframe_core::store::Store;
use keyframe_core::ErrorCode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::api::extract::header_value;
use crate::auth::{LoginLimiter, Passwords};
use crate::cache::HotCache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::db::Db;
use crate::events::Events;
use crate::forwarded::DirectTls;
use crate::history::writer::WriterConfig;
use crate::history::{EventBudget, Writer};
use crate::playback::Signer;
use crate::state::AppState;
use crate::uploads::{NoUploads, Uploads};

/// Everything a catalog server is made of; `router()` builds it.
pub struct Catalog {
    config: Config,
    db: Db,
    store: Store,
    uploads: Arc<dyn Uploads>,
    clock: SharedClock,
    events: Option<Events>,
    batch: Option<crate::recommend::Runner>,
}

impl Catalog {
    /// A catalog without an ingest pipeline (uploads answer 503) on the system clock.
    pub fn new(config: Config, db: Db, store: Store) -> Catalog {
        Catalog {
            config,
            db,
            store,
            uploads: Arc::new(NoUploads),
            clock: Arc::new(SystemClock),
            events: None,
            batch: None,
        }
    }

    /// The recommendation batch the schedule runs (every `recommend_interval_secs`)
    /// instead of the built-in `local`/`sql` engines: how `serve` and `catalog` run
    /// `recommend_engine = "datafusion"` or `"ballista://…"` on a schedule.
    pub fn batch(mut self, runner: Option<crate::recommend::Runner>) -> Catalog {
        self.batch = runner;
        self
    }

    /// The ingest pipeline behind the upload endpoints.
    pub fn uploads(mut self, uploads: Arc<dyn Uploads>) -> Catalog {
        self.uploads = uploads;
        self
    }

    /// The clock for sessions, rights windows and tokens (tests inject one).
    pub fn clock(mut self, clock: SharedClock) -> Catalog {
        self.clock = clock;
        self
    }

    /// The JetStream the history API appends to (connected by the caller, e.g.
    /// [`Events::connect`]); `None` keeps what [`Catalog::connect_events`] finds.
    pub fn events(mut self, events: Option<Events>) -> Catalog {
        if events.is_some() {
            self.events = events;
        }
        self
    }

    /// Connects to the JetStream of the `events` option (see [`crate::events`]),
    /// creating its stream and consumer unless they exist; without the option, or
    /// connected already, does nothing. [`Catalog::run`] calls it; callers of
    /// [`Catalog::router`] with `events` must.
    pub async fn connect_events(mut self) -> Result<Catalog, ConfigError> {
        if self.events.is_none() {
            if let Some(servers) = self.config.events_servers()? {
                let wait = Duration::from_secs(self.config.events_ack_wait_secs);
                let events =
                    Events::connect(&servers, wait)
                        .await
                        .map_err(|message| ConfigError {
                            option: "events",
                            message,
                        })?;
                self.events = Some(events);
            }
        }
        Ok(self)
    }

    /// The router. Must be called inside a tokio runtime: it starts the tasks that
    /// keep the hot-read cache current, which stop when the router is dropped.
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that
    /// per-client limits and regions see the peer address.
    pub fn router(self) -> Result<Router, ConfigError> {
        // The history writer ends by itself once the router is dropped.
        self.build().map(|(router, _writer)| router)
    }

    /// The router and the history writer's task, which ends after the router is
    /// dropped and the writer has committed what was queued.
    fn build(self) -> Result<(Router, tokio::task::JoinHandle<()>), ConfigError> {
        let config = self.config;
        config.check()?;
        if config.events_servers()?.is_some() && self.events.is_none() {
            return Err(ConfigError {
                option: "events",
                message: "not connected (call Catalog::connect_events first)".into(),
            });
        }
        let regions = config.region_map()?;
        let signer = Signer::new(config.signing_key()?);
        let passwords = Passwords::new(config.argon2_params()?);
        let limiter = LoginLimiter::new(config.login_limits());
        let event_budget = Arc::new(EventBudget::new(config.history_events_per_user_minute));
        let hot = Arc::new(HotCache::new(config.cache_entries));
        let stop = CancellationToken::new();
        let changes = crate::cache::start(hot.clone(), &self.db, stop.clone());
        let (history, writer) = Writer::start(
            self.db.clone(),
            WriterConfig {
                queue_events: config.history_queue_events as usize,
                batch_events: config.history_commit_events as usize,
                thresholds: config.history_thresholds(),
                half_life_ms: config.trending_half_life_ms(),
            },
            // Resume points in the hot cache must not outlive the commit.
            changes.watch_announcer(),
        );
        let mut registry = Registry::default();
        let events = self
            .events
            .map(|e| e.with_metrics(crate::events::EventsMetrics::register(&mut registry)));
        let consumer = events.clone().map(|events| {
            crate::events::start_consumer(
                events,
                self.db.clone(),
                crate::events::ConsumerConfig {
                    batch_events: config.history_commit_events as usize,
                    thresholds: config.history_thresholds(),
                    half_life_ms: config.trending_half_life_ms(),
                },
                changes.watch_announcer(),
                stop.child_token(),
            )
        });
        // Both end once the router is dropped: the writer after committing what is
        // queued, the consumer after the fold in progress.
        let writer = tokio::spawn(async move {
            let _ = writer.await;
            if let Some(consumer) = consumer {
                let _ = consumer.await;
            }
        });
        tokio::spawn(crate::recommend::schedule(
            self.db.clone(),
            config.clone(),
            self.batch.clone(),
            stop.child_token(),
        ));

        let (api, openapi) = crate::api::routes().split_for_parts();
        let openapi_json: Arc<str> = openapi
            .to_json()
            .map_err(|e| ConfigError {
                option: "openapi",
                message: e.to_string(),
            })?
            .into();
        let http = Arc::new(keyframe_http::metrics::HttpMetrics::register(&mut registry));
        let state = AppState {
            config: Arc::new(config),
            db: self.db,
            store: self.store,
            registry: Arc::new(registry),
            hot,
            changes,
            passwords: Arc::new(passwords),
            limiter: Arc::new(limiter),
            regions: Arc::new(regions),
            signer: Arc::new(signer),
            uploads: self.uploads,
            clock: self.clock,
            history,
            events,
            event_budget,
            openapi_json,
            _tasks: Arc::new(stop.drop_guard()),
        };
        let router = Router::new()
            .merge(api)
            .route("/", get(crate::web::index))
            // The page's own addresses (deep links, reload, history): the page.
            .route("/title/{id}", get(crate::web::index))
            .route("/search", get(crate::web::index))
            .route("/category/{name}", get(crate::web::index))
            .route("/app.js", get(crate::web::script))
            .route("/app.css", get(crate::web::style))
            .route("/vendor/hls.min.js", get(crate::web::hls_js))
            .route("/_keyframe/healthz", get(healthz))
            .route("/_keyframe/metrics", get(metrics))
            .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such path") })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "method not allowed on this path",
                )
            })
            .with_state(state)
            .layer(axum::middleware::from_fn(move |req, next| {
                observe(http.clone(), req, next)
            }));
        Ok((router, writer))
    }

    /// Serves the catalog on `listener` until `shutdown` resolves, through the accept
    /// loop of the origin and the edge (`keyframe_http::http_server::serve`): its
    /// header timeout from the accept, connection limits and graceful shutdown, and,
    /// with `tls_cert`/`tls_key`, HTTPS (the handshake under the header timeout).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let invalid = |e: ConfigError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let grace = Duration::from_secs(self.config.grace_secs);
        let tls = self.config.tls().map_err(invalid)?;
        let hsts = match (&tls, self.config.hsts_max_age_secs) {
            (Some(_), age) if age > 0 => Some(header_value(&format!("max-age={age}"))),
            _ => None,
        };
        let direct_tls = tls.is_some();
        let limits = self.config.limits(tls);
        let (app, writer) = self
            .connect_events()
            .await
            .map_err(invalid)?
            .build()
            .map_err(invalid)?;
        let handler = move |req: http::Request<hyper::body::Incoming>, peer: SocketAddr| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            if direct_tls {
                req.extensions_mut().insert(DirectTls);
            }
            let mut app = app.clone();
            let hsts = hsts.clone();
            async move {
                let mut resp = match tower_service::Service::call(&mut app, req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if let Some(v) = hsts {
                    resp.headers_mut()
                        .insert(header::STRICT_TRANSPORT_SECURITY, v);
                }
                resp.map(|body| {
                    http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
                        body,
                        |e| -> keyframe_http::http_server::BoxError { Box::new(e) },
                    ))
                })
            }
        };
        keyframe_http::http_server::serve(listener, limits, handler, shutdown).await;
        // The router is gone (unless a connection outlived the grace period, which the
        // writer's wait below bounds): the history writer commits what is queued, then
        // ends.
        if tokio::time::timeout(grace, writer).await.is_err() {
            tracing::warn!("history writer still busy after the grace period");
        }
        Ok(())
    }
}

/// Every request through the byte servers' one wrapper (`access::observe`): its
/// id, its count by status, its time to the response head, its access line.
async fn observe(
    m: Arc<keyframe_http::metrics::HttpMetrics>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use http_body_util::BodyExt;
    use keyframe_http::access::{self, Loudness};
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let resp = access::observe("catalog", &m, req, peer, Loudness::Info, |req| async move {
        next.run(req).await.map(|body| {
            body.map_err(|e| -> keyframe_http::http_server::BoxError { Box::new(e) })
                .boxed_unsync()
        })
    })
    .await;
    resp.map(axum::body::Body::new)
}

/// The catalog's router with `uploads` as the ingest pipeline (see
/// [`Catalog::router`]).
pub fn router(
    config: Config,
    db: Db,
    store: Store,
    uploads: Arc<dyn Uploads>,
) -> Result<Router, ConfigError> {
    Catalog::new(config, db, store).uploads(uploads).router()
}

/// The OpenAPI document of the JSON API, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::api::routes().split_for_parts().1
}

async fn healthz(State(s): State<AppState>) -> Result<&'static str, ApiError> {
    s.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "health check: database unreachable");
        ApiError::new(
            ErrorCode::DatabaseUnavailable,
            "the database is unreachable",
        )
    })?;
    keyframe_core::store::check(&*s.store).await.map_err(|e| {
        tracing::warn!(error = %e, "health check: storage unreachable");
        ApiError::new(
            ErrorCode::StorageUnavailable,
            "object storage is unreachable",
        )
    })?;
    Ok("ok\n")
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, keyframe_http::metrics::CONTENT_TYPE)],
        keyframe_http::metrics::render(&s.registry),
    )
        .into_response()
}

/// Serves the catalog on `listener` until `shutdown` resolves, without an ingest
/// pipeline (upload endpoints answer 503). A configuration error is an
/// `InvalidInput` I/O error; call [`Config::check`] first for a friendlier one.
pub async fn run(
    listener: TcpListener,
    config: Config,
    db: Db,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Catalog::new(config, db, store)
        .run(listener, shutdown)
        .await
}

/// Like [`run`], with `uploads` as the ingest pipeline behind the upload endpoints.
pub async fn run_with_uploads(
    listener: TcpListener,
    config: Config,
    db: Db,
    store: Store,
    uploads: Arc<dyn Uploads>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Catalog::new(config, db, store)
        .uploads(uploads)
        .run(listener, shutdown)
        .await
}
