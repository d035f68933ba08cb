//! `keyframe ingest`, `keyframe gc` and `keyframe migrate`: the commands that
//! change what is stored, through the ingest crate and the catalog's database.

use std::process::ExitCode;

use super::{open_db, open_store, redact, say};
use crate::cli::{ConfigError, Shared};
use crate::{exit, Failure};

/// `keyframe ingest`: into this node's store and database, or with `--server`
/// through a catalog's admin API.
pub async fn ingest(
    shared: &Shared,
    mut args: keyframe_ingest::IngestArgs,
) -> Result<ExitCode, Failure> {
    // Renditions are encoded next to the data, not in a small /tmp.
    let tmp = shared.data_dir.join("tmp");
    if std::fs::create_dir_all(&tmp).is_ok() {
        args.temp_dir = Some(tmp);
    }
    args.check().map_err(ConfigError)?;
    let ok = if args.server.is_some() {
        keyframe_ingest::cli::run_remote(&args).await
    } else {
        let store = open_store(shared)?;
        let db = open_db(shared).await?;
        let ok = keyframe_ingest::run_cli(args, store, db.clone()).await;
        db.close().await;
        ok
    };
    Ok(exit(ok))
}

/// `keyframe gc`.
pub async fn gc(shared: &Shared, args: keyframe_ingest::GcArgs) -> Result<ExitCode, Failure> {
    let store = open_store(shared)?;
    let db = open_db(shared).await?;
    let ok = keyframe_ingest::run_gc(args, store, db.clone()).await;
    db.close().await;
    Ok(exit(ok))
}

/// `keyframe migrate`: opening the database applies the migrations.
pub async fn migrate(shared: &Shared) -> Result<ExitCode, Failure> {
    let db = open_db(shared).await?;
    db.close().await;
    say(format_args!(
        "migrations applied to {}",
        redact(&shared.db_url())
    ));
    Ok(ExitCode::SUCCESS)
}
