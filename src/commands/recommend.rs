//! `keyframe recommend`: the recommendation batch once, and its report as text or
//! JSON.

use std::process::ExitCode;

use anyhow::Context;
use figment::Figment;

use super::{check_catalog, open_db, say};
use crate::cli::Shared;
use crate::Failure;

/// Runs the batch and prints its report: one line of text, or one JSON object.
pub async fn run(shared: &Shared, layers: &Figment, json: bool) -> Result<ExitCode, Failure> {
    let config: keyframe_catalog::Config = layers.extract()?;
    check_catalog(&config)?;
    let db = open_db(shared).await?;
    let report = keyframe_catalog::recommend::run_once(&db, &config)
        .await
        .map_err(|e| anyhow::anyhow!("recommendation batch failed: {e}"));
    db.close().await;
    let report = report?;
    if json {
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
