//! `keyframe origin`, `keyframe edge` and `keyframe catalog`: one server each,
//! and what starting a server takes (binding, the origin's store, signals), which
//! `serve` shares.

use std::process::ExitCode;

use anyhow::Context;
use figment::Figment;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    batch_runner, check_catalog, check_catalog_tls, connect_events, open_db, open_store, say,
    uploads,
};
use crate::cli::{ConfigError, Shared};
use crate::Failure;

/// `keyframe origin`.
///
/// `threads` is `--threads` (see [`serving_threads`]).
pub async fn origin(
    shared: &Shared,
    layers: &Figment,
    threads: Option<u16>,
) -> Result<ExitCode, Failure> {
    let config: keyframe_origin::Config = layers.extract()?;
    let store = open_store(shared)?;
    let server = origin_server(shared, config.clone(), store)?;
    let threads = serving_threads(threads);
    let listener = bind_server("origin", config.listen, config.tls_cert.is_some(), threads)?;
    server
        .run_on_threads(listener, threads, shutdown_signal(CancellationToken::new()))
        .await;
    Ok(ExitCode::SUCCESS)
}

/// `keyframe edge`.
///
/// `threads` is `--threads` (see [`serving_threads`]).
pub async fn edge(layers: &Figment, threads: Option<u16>) -> Result<ExitCode, Failure> {
    let config: keyframe_edge::Config = layers.extract()?;
    let server = keyframe_edge::Server::new(config.clone())
        .map_err(|e| Failure::Config(ConfigError(e.to_string())))?;
    let threads = serving_threads(threads);
    let listener = bind_server("edge", config.listen, config.tls_cert.is_some(), threads)?;
    server
        .run_on_threads(listener, threads, shutdown_signal(CancellationToken::new()))
        .await;
    Ok(ExitCode::SUCCESS)
}

/// `keyframe catalog`.
pub async fn catalog(shared: &Shared, layers: &Figment) -> Result<ExitCode, Failure> {
    let config: keyframe_catalog::Config = layers.extract()?;
    check_catalog(&config)?;
    check_catalog_tls(&config)?;
    let store = open_store(shared)?;
    let db = open_db(shared).await?;
    let events = connect_events(&config).await?;
    let batch = batch_runner(shared, &config)?;
    let listener = bind("catalog", config.listen, config.tls_cert.is_some()).await?;
    keyframe_catalog::server::Catalog::new(config, db.clone(), store.clone())
        .uploads(uploads(shared, &store, &db))
        .events(events)
        .batch(batch)
        .run(listener, shutdown_signal(CancellationToken::new()))
        .await
        .context("catalog server failed")?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// How many threads accept and serve the origin's or the edge's connections: one
/// per core, each with its own runtime and `SO_REUSEPORT` listener, unless
/// `--threads` sets the shared runtime's size (then that runtime serves). One
/// runtime per core keeps a connection on one thread and no thread waking another:
/// see bench/RESULTS.md, "The hit path pinned (issue 21)".
fn serving_threads(threads: Option<u16>) -> usize {
    match threads {
        Some(_) => 1,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    }
}

/// [`bind`], with `SO_REUSEPORT` when more than one thread will listen.
fn bind_server(
    what: &str,
    addr: std::net::SocketAddr,
    tls: bool,
    threads: usize,
) -> Result<TcpListener, Failure> {
    let l = keyframe_http::http_server::listen(addr, threads > 1)
        .with_context(|| format!("{what}: cannot listen on {addr}"))?;
    announce(what, &l, tls)?;
    Ok(l)
}

/// Binds a server's address and says where it listens (`https://` when it
/// terminates TLS).
pub async fn bind(
    what: &str,
    addr: std::net::SocketAddr,
    tls: bool,
) -> Result<TcpListener, Failure> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))?;
    announce(what, &l, tls)?;
    Ok(l)
}

/// Says where `l` listens (`https://` when the server terminates TLS).
fn announce(what: &str, l: &TcpListener, tls: bool) -> Result<(), Failure> {
    let local = l.local_addr().context("local address")?;
    let scheme = if tls { "https" } else { "http" };
    say(format_args!("{what} listening on {scheme}://{local}"));
    tracing::info!(server = what, %local, "listening");
    Ok(())
}

/// The origin server on `store`, serving a `file://` store's files directly.
pub fn origin_server(
    shared: &Shared,
    config: keyframe_origin::Config,
    store: keyframe_core::store::Store,
) -> Result<keyframe_origin::Server, Failure> {
    let server = keyframe_origin::Server::new(config, store)
        .map_err(|e| Failure::Config(ConfigError(e.to_string())))?;
    Ok(
        match keyframe_origin::store::local_root(&shared.store_url()) {
            Some(root) => server.with_local_root(root),
            None => server,
        },
    )
}

/// Resolves on SIGINT or SIGTERM (and cancels `stop` so every server sees it).
pub async fn shutdown_signal(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = term => {},
        () = stop.cancelled() => {},
    }
    tracing::info!("shutting down");
    stop.cancel();
}
