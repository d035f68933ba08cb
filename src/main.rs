//! The `keyframe` binary: parses flags, resolves configuration, sets up tracing,
//! and calls into the crates. Nothing here is logic of its own.

mod cli;
mod user;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ConfigError, LogFormat, Shared};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Exit status for a usage or configuration error.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(EXIT_USAGE)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line naming the flag and the problem.
            say_err(format_args!("{}", cli::usage_line(&e)));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.shared.threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            say_err(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut log = None;
    let result = runtime.block_on(run(cli, &mut log));
    // Lets the runtime's tasks go, then the log's worker write what it holds (for at
    // most a second: a stalled sink cannot hold the exit up).
    drop(runtime);
    drop(log);
    match result {
        Ok(code) => code,
        Err(Failure::Config(e)) => {
            say_err(format_args!("error: {e}"));
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Runtime(e)) => {
            say_err(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// One line on stdout. A closed or broken stdout (`keyframe serve | head -1`) is
/// not an error of the command: the line is dropped, never a panic (`println!`).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One line on stderr, dropped (never a panic, as with `eprintln!`) when stderr is
/// gone.
fn say_err(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// How a command failed: bad configuration (exit 2) or at run time (exit 1).
enum Failure {
    Config(ConfigError),
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e)
    }
}

impl From<figment::Error> for Failure {
    fn from(e: figment::Error) -> Self {
        Failure::Config(e.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Runs the command; `log` keeps the log's worker (see [`init_tracing`]) for `main`
/// to drop once everything else has stopped.
async fn run(
    cli: Cli,
    log: &mut Option<tracing_appender::non_blocking::WorkerGuard>,
) -> Result<ExitCode, Failure> {
    let flags_layers = cli.layers()?;
    let shared: Shared = flags_layers.extract()?;
    *log = Some(init_tracing(&shared)?);
    match cli.command {
        Command::Serve(_) => {
            let serve: cli::ServeAddrs = flags_layers.extract()?;
            let mut origin: keyframe_origin::Config = flags_layers.extract()?;
            let mut edge: keyframe_edge::Config = flags_layers.extract()?;
            let mut catalog: keyframe_catalog::Config = flags_layers.extract()?;
            check_catalog(&catalog)?;
            check_catalog_tls(&catalog)?;
            // One node is one region (`--region`, default `local`): every viewer the
            // header does not place is in it, for the catalog and the edge alike.
            let region = cli::node_region(edge.region.as_deref())?;
            if flags_layers.find_value("default_region").is_err() {
                catalog.default_region = region.clone();
            }
            if flags_layers.find_value("region_networks").is_err() {
                edge.region_networks =
                    vec![format!("0.0.0.0/0={region}"), format!("::/0={region}")];
            }
            origin.listen = serve.origin_listen;
            // Under `serve` TLS is the edge's and the catalog's: the edge → origin hop
            // stays on loopback.
            origin.tls_cert = None;
            origin.tls_key = None;
            // And so are tokens: the edge is the node's one public door, checks a
            // token and strips it before it fetches from this origin, which must then
            // not ask for one, and so must be reachable from this host only.
            if origin.token_key.as_deref().is_some_and(|k| !k.is_empty())
                && !origin.listen.ip().is_loopback()
            {
                return Err(ConfigError(format!(
                    "invalid value for option 'origin-listen': {}: with a token key, serve's \
                     origin must listen on a loopback address (the edge checks tokens; the \
                     origin behind it does not)",
                    origin.listen
                ))
                .into());
            }
            origin.token_key = None;
            edge.listen = serve.edge_listen;
            catalog.listen = serve.catalog_listen;
            let wiring = Wiring {
                edge_to_origin: flags_layers.find_value("upstream").is_err()
                    && flags_layers.find_value("parent").is_err(),
                catalog_to_edge: flags_layers.find_value("edge_url").is_err(),
            };
            serve_all(&shared, origin, edge, catalog, wiring).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Origin(_) => {
            let config: keyframe_origin::Config = flags_layers.extract()?;
            let store = open_store(&shared)?;
            let server = origin_server(&shared, config.clone(), store)?;
            let listener = bind("origin", config.listen, config.tls_cert.is_some()).await?;
            server
                .run(listener, shutdown_signal(CancellationToken::new()))
                .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Edge(_) => {
            let config: keyframe_edge::Config = flags_layers.extract()?;
            let server = keyframe_edge::Server::new(config.clone())
                .map_err(|e| Failure::Config(ConfigError(e.to_string())))?;
            let listener = bind("edge", config.listen, config.tls_cert.is_some()).await?;
            server
                .run(listener, shutdown_signal(CancellationToken::new()))
                .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog(_) => {
            let config: keyframe_catalog::Config = flags_layers.extract()?;
            check_catalog(&config)?;
            check_catalog_tls(&config)?;
            let store = open_store(&shared)?;
            let db = open_db(&shared).await?;
            let listener = bind("catalog", config.listen, config.tls_cert.is_some()).await?;
            keyframe_catalog::server::run_with_uploads(
                listener,
                config,
                db.clone(),
                store.clone(),
                uploads(&store, &db),
                shutdown_signal(CancellationToken::new()),
            )
            .await
            .context("catalog server failed")?;
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck(args) => healthcheck(&args).await,
        Command::Bench(args) => {
            keyframe_bench::check(&args).map_err(|e| ConfigError(format!("{e:#}")))?;
            let ok = keyframe_bench::dispatch(args)
                .await
                .map_err(Failure::Runtime)?;
            Ok(exit(ok))
        }
        Command::Migrate(_) => {
            let db = open_db(&shared).await?;
            db.close().await;
            say(format_args!(
                "migrations applied to {}",
                redact(&shared.db_url())
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(cmd) => {
            let args = cmd.args;
            args.check().map_err(ConfigError)?;
            let ok = if args.server.is_some() {
                keyframe_ingest::cli::run_remote(&args).await
            } else {
                let store = open_store(&shared)?;
                let db = open_db(&shared).await?;
                let ok = keyframe_ingest::run_cli(args, store, db.clone()).await;
                db.close().await;
                ok
            };
            Ok(exit(ok))
        }
        Command::Gc(cmd) => {
            let store = open_store(&shared)?;
            let db = open_db(&shared).await?;
            let ok = keyframe_ingest::run_gc(cmd.args, store, db.clone()).await;
            db.close().await;
            Ok(exit(ok))
        }
        Command::User(cmd) => {
            let config: keyframe_catalog::Config = flags_layers.extract()?;
            check_catalog(&config)?;
            let db = open_db(&shared).await?;
            let done = user::run(&cmd.action, &db, &config).await;
            db.close().await;
            match done {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(user::UserError::Usage(m)) => Err(Failure::Config(ConfigError(m))),
                Err(user::UserError::Runtime(m)) => Err(Failure::Runtime(anyhow::anyhow!(m))),
            }
        }
        Command::Recommend(flags) => {
            let config: keyframe_catalog::Config = flags_layers.extract()?;
            check_catalog(&config)?;
            let db = open_db(&shared).await?;
            let report = keyframe_catalog::recommend::run_once(&db, &config)
                .await
                .map_err(|e| anyhow::anyhow!("recommendation batch failed: {e}"));
            db.close().await;
            let report = report?;
            if flags.json {
                say(format_args!(
                    "{}",
                    serde_json::to_string(&report).context("report as JSON")?
                ));
            } else {
                say(format_args!(
                    "generation {} ({} engine): {} titles with similar titles, {} co-watched pairs, \
                     {} of {} viewers with picks",
                    report.generation,
                    report.engine,
                    report.titles,
                    report.pairs,
                    report.users_with_picks,
                    report.users
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `keyframe healthcheck`: exit 0 on a 2xx answer, else one line and exit 1.
async fn healthcheck(args: &cli::HealthcheckArgs) -> Result<ExitCode, Failure> {
    let url = keyframe_edge::probe::health_url(&args.target).map_err(ConfigError)?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(ConfigError(format!(
            "--timeout must be between 0 and 3600 seconds, not {}",
            args.timeout
        ))
        .into());
    }
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    match keyframe_edge::probe::probe(&url, args.ca.as_deref(), timeout).await {
        Ok(status) => {
            say(format_args!("healthy: {url} answered {status}"));
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => Err(Failure::Runtime(anyhow::anyhow!(why))),
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The ingest pipeline behind the catalog's upload endpoints.
fn uploads(
    store: &keyframe_core::store::Store,
    db: &keyframe_catalog::Db,
) -> std::sync::Arc<dyn keyframe_catalog::Uploads> {
    std::sync::Arc::new(keyframe_ingest::PipelineUploads::new(
        store.clone(),
        db.clone(),
    ))
}

/// Which defaults of `serve` point one server at another (known only once bound).
struct Wiring {
    edge_to_origin: bool,
    catalog_to_edge: bool,
}

async fn serve_all(
    shared: &Shared,
    origin: keyframe_origin::Config,
    mut edge: keyframe_edge::Config,
    mut catalog: keyframe_catalog::Config,
    wiring: Wiring,
) -> Result<(), Failure> {
    // Every setting is checked before a port is bound; the edge itself is made
    // once the origin's address is known.
    cli::check_edge(&edge, wiring.edge_to_origin).map_err(Failure::Config)?;
    let store = open_store(shared)?;
    let db = open_db(shared).await?;
    let origin_server = origin_server(shared, origin.clone(), store.clone())?;
    let origin_l = bind("origin", origin.listen, false).await?;
    let edge_tls = edge.tls_cert.is_some();
    let edge_l = bind("edge", edge.listen, edge_tls).await?;
    let catalog_l = bind("catalog", catalog.listen, catalog.tls_cert.is_some()).await?;
    if wiring.edge_to_origin {
        edge.upstream = vec![format!("http://{}", local_addr(&origin_l)?)];
    }
    if wiring.catalog_to_edge {
        let scheme = if edge_tls { "https" } else { "http" };
        catalog.edge_url = format!("{scheme}://{}", local_addr(&edge_l)?);
    }
    let edge_server = keyframe_edge::Server::new(edge.clone())
        .map_err(|e| Failure::Config(ConfigError(e.to_string())))?;
    let stop = CancellationToken::new();
    let signal = tokio::spawn(shutdown_signal(stop.clone()));
    // The edge's downloads in flight need the origin until they end: the origin
    // stops only once the edge has (each after its own grace), so a download through
    // the edge is never cut by the origin closing under it.
    let edge_stopped = CancellationToken::new();
    let o = tokio::spawn(origin_server.run(origin_l, edge_stopped.clone().cancelled_owned()));
    let e = tokio::spawn({
        let done = edge_stopped.clone();
        let run = edge_server.run(edge_l, stop.clone().cancelled_owned());
        async move {
            let _done = done.drop_guard();
            run.await;
        }
    });
    let c = tokio::spawn(keyframe_catalog::server::run_with_uploads(
        catalog_l,
        catalog,
        db.clone(),
        store.clone(),
        uploads(&store, &db),
        stop.clone().cancelled_owned(),
    ));
    let (o, e, c) = tokio::join!(o, e, c);
    signal.abort();
    db.close().await;
    o.context("origin task failed")?;
    e.context("edge task failed")?;
    c.context("catalog task failed")?
        .context("catalog server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Binds a server's address and says where it listens (`https://` when it
/// terminates TLS).
async fn bind(what: &str, addr: std::net::SocketAddr, tls: bool) -> Result<TcpListener, Failure> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))?;
    let local = l.local_addr().context("local address")?;
    let scheme = if tls { "https" } else { "http" };
    say(format_args!("{what} listening on {scheme}://{local}"));
    tracing::info!(server = what, %local, "listening");
    Ok(l)
}

fn origin_server(
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

/// A catalog configuration error is a usage error: one line, exit 2.
fn check_catalog(config: &keyframe_catalog::Config) -> Result<(), Failure> {
    config.check().map_err(|e| {
        Failure::Config(ConfigError(format!(
            "invalid value for option '{}': {}",
            e.option.replace('_', "-"),
            e.message
        )))
    })
}

/// The catalog's TLS files load (only the commands that serve read them).
fn check_catalog_tls(config: &keyframe_catalog::Config) -> Result<(), Failure> {
    config.tls().map(drop).map_err(|e| {
        Failure::Config(ConfigError(format!(
            "invalid value for option '{}': {}",
            e.option.replace('_', "-"),
            e.message
        )))
    })
}

fn local_addr(l: &TcpListener) -> Result<std::net::SocketAddr, Failure> {
    Ok(l.local_addr().context("local address")?)
}

fn open_store(shared: &Shared) -> Result<keyframe_core::store::Store, Failure> {
    use keyframe_origin::store::StoreError;
    keyframe_origin::store::open(&shared.store_url()).map_err(|e| match e {
        // The URL is wrong: a configuration error.
        StoreError::Scheme(_) | StoreError::Malformed { .. } | StoreError::Open { .. } => {
            Failure::Config(ConfigError(format!(
                "invalid value for option 'store': {e}"
            )))
        }
        e => Failure::Runtime(anyhow::anyhow!("store: {e}")),
    })
}

async fn open_db(shared: &Shared) -> Result<keyframe_catalog::Db, Failure> {
    let url = shared.db_url();
    shared
        .make_sqlite_dir()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("database {}: {e}", redact(&url))))?;
    let db = keyframe_catalog::Db::connect(&url)
        .await
        .map_err(|e| match e {
            keyframe_catalog::DbError::Scheme(_) => {
                Failure::Config(ConfigError(format!("invalid value for option 'db': {e}")))
            }
            e => Failure::Runtime(anyhow::anyhow!("database {}: {e}", redact(&url))),
        })?;
    db.migrate()
        .await
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("database {}: {e}", redact(&url))))?;
    Ok(db)
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Resolves on SIGINT or SIGTERM (and cancels `stop` so every server sees it).
async fn shutdown_signal(stop: CancellationToken) {
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

/// Log lines per worker queue: past this many waiting lines (a slow or stalled
/// sink), new ones are dropped and counted rather than block the thread logging.
const LOG_QUEUE_LINES: usize = 16_384;

/// Sets up tracing to stderr through a worker thread. Logging never blocks or
/// stops a server: lines go through a bounded queue ([`LOG_QUEUE_LINES`]) that
/// drops them when full, and a line stderr refuses (`EPIPE` when the reader of a
/// pipe went away) is dropped too; both are counted in
/// `keyframe_log_lines_dropped_total`. The returned guard flushes on drop.
fn init_tracing(shared: &Shared) -> Result<tracing_appender::non_blocking::WorkerGuard, Failure> {
    let filter = tracing_subscriber::EnvFilter::try_new(&shared.log)
        .map_err(|e| ConfigError(format!("invalid value for option 'log': {e}")))?;
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("keyframe-log")
        .finish(LogSink {
            // A descriptor of its own: the worker, blocked on a full pipe, holds no
            // lock that a last `error:` line of `main` would wait for.
            out: match std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
                Ok(fd) => Box::new(std::fs::File::from(fd)),
                Err(_) => Box::new(std::io::stderr()),
            },
            failed: failed.clone(),
        });
    let queue_full = writer.error_counter();
    keyframe_http::metrics::set_log_lines_dropped(move || {
        failed.load(std::sync::atomic::Ordering::Relaxed)
            + u64::try_from(queue_full.dropped_lines()).unwrap_or(u64::MAX)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .with_writer(writer);
    let res = match shared.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| Failure::Runtime(anyhow::anyhow!("tracing: {e}")))?;
    Ok(guard)
}

/// stderr as the log's worker thread writes it: a line that cannot be written is
/// counted and dropped, never an error (the worker would lose the rest of its batch).
struct LogSink {
    out: Box<dyn std::io::Write + Send>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// The worker writes each line with one `write_all`.
    fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.out.write_all(line).is_err() {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
