//! One module per command family; this file holds what several of them share:
//! stdout lines, opening the store and the database, and the catalog's checks.
//!
//! Every command returns `Result<ExitCode, Failure>`: a [`Failure::Config`] is a
//! usage error (exit 2), a [`Failure::Runtime`] a failure at run time (exit 1).

pub mod ballista;
pub mod content;
pub mod recommend;
pub mod serve;
pub mod servers;
pub mod synth;
pub mod tools;
pub mod user;

use crate::cli::{ConfigError, Shared};
use crate::Failure;

/// One line on stdout. A closed or broken stdout (`keyframe serve | head -1`) is
/// not an error of the command: the line is dropped, never a panic (`println!`).
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The ingest pipeline behind the catalog's upload endpoints, with its temporary
/// files under the data directory.
pub fn uploads(
    shared: &Shared,
    store: &keyframe_core::store::Store,
    db: &keyframe_catalog::Db,
) -> std::sync::Arc<dyn keyframe_catalog::Uploads> {
    std::sync::Arc::new(
        keyframe_ingest::PipelineUploads::new(store.clone(), db.clone())
            .with_temp_dir(keyframe_ingest::uploads::uploads_temp_dir(&shared.data_dir)),
    )
}

/// The catalog schedule's batch for `recommend_engine = "datafusion"` or
/// `"ballista://…"`: export a fresh Parquet snapshot of the store, run the engine
/// over it, swap the generation in. `None` for `local` and `sql`, which the catalog
/// runs itself. A bad store URL is a usage error at start, not a failure an hour on.
pub fn batch_runner(
    shared: &Shared,
    config: &keyframe_catalog::Config,
) -> Result<Option<keyframe_catalog::recommend::Runner>, Failure> {
    let Some(engine) = keyframe_engine::Engine::parse(&config.recommend_engine) else {
        return Ok(None);
    };
    let loc = keyframe_engine::Location::parse(&shared.store_url())
        .map_err(|e| ConfigError(format!("invalid value for option 'store': {e}")))?;
    Ok(Some(std::sync::Arc::new(move |db, config| {
        let (engine, loc) = (engine.clone(), loc.clone());
        Box::pin(async move {
            keyframe_engine::run(&db, &config, &loc, &engine, true)
                .await
                .map_err(|e| e.to_string())
        })
    })))
}

/// A catalog configuration error is a usage error: one line, exit 2.
pub fn check_catalog(config: &keyframe_catalog::Config) -> Result<(), Failure> {
    config.check().map_err(|e| catalog_option(&e))
}

/// The catalog's TLS files load (only the commands that serve read them).
pub fn check_catalog_tls(config: &keyframe_catalog::Config) -> Result<(), Failure> {
    config.tls().map(drop).map_err(|e| catalog_option(&e))
}

/// A catalog option's error as the one line of a usage error.
fn catalog_option(e: &keyframe_catalog::config::ConfigError) -> Failure {
    Failure::Config(ConfigError(format!(
        "invalid value for option '{}': {}",
        e.option.replace('_', "-"),
        e.message
    )))
}

/// The JetStream of the catalog's `events` option (if any), reached before a port
/// is bound: an unreachable stream is a runtime error, one line, exit 1.
pub async fn connect_events(
    config: &keyframe_catalog::Config,
) -> Result<Option<keyframe_catalog::events::Events>, Failure> {
    let servers = config.events_servers().map_err(|e| catalog_option(&e))?;
    match servers {
        None => Ok(None),
        Some(servers) => keyframe_catalog::events::Events::connect(
            &servers,
            std::time::Duration::from_secs(config.events_ack_wait_secs),
        )
        .await
        .map(Some)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("events: {e}"))),
    }
}

pub fn open_store(shared: &Shared) -> Result<keyframe_core::store::Store, Failure> {
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

pub async fn open_db(shared: &Shared) -> Result<keyframe_catalog::Db, Failure> {
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
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
