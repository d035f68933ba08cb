//! `keyframe recommend`: the recommendation batch once, and its report as text or
//! JSON. `local` and `sql` run in `keyframe-catalog`; `datafusion` and
//! `ballista://…` run over a Parquet snapshot in `keyframe-engine`, and
//! `--snapshot` exports a fresh one first.

use std::process::ExitCode;

use anyhow::Context;
use figment::Figment;

use super::{check_catalog, open_db, say};
use crate::cli::{ConfigError, RecommendFlags, Shared};
use crate::Failure;

/// Runs the batch and prints its report: one line of text, or one JSON object.
pub async fn run(
    shared: &Shared,
    layers: &Figment,
    flags: &RecommendFlags,
) -> Result<ExitCode, Failure> {
    let config: keyframe_catalog::Config = layers.extract()?;
    check_catalog(&config)?;
    let engine = keyframe_engine::Engine::parse(&config.recommend_engine);
    let location = if engine.is_some() || flags.snapshot {
        Some(
            keyframe_engine::Location::parse(&shared.store_url())
                .map_err(|e| ConfigError(format!("invalid value for option 'store': {e}")))?,
        )
    } else {
        None
    };
    let db = open_db(shared).await?;
    let report = match (&engine, &location) {
        (Some(engine), Some(loc)) => {
            keyframe_engine::run(&db, &config, loc, engine, flags.snapshot)
                .await
                .map_err(|e| anyhow::anyhow!("recommendation batch failed: {e}"))
        }
        _ => {
            let exported = match &location {
                Some(loc) => keyframe_engine::snapshot::export(&db, loc)
                    .await
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("snapshot export failed: {e}")),
                None => Ok(()),
            };
            match exported {
                Ok(()) => keyframe_catalog::recommend::run_once(&db, &config)
                    .await
                    .map_err(|e| anyhow::anyhow!("recommendation batch failed: {e}")),
                Err(e) => Err(e),
            }
        }
    };
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
