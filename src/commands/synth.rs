//! `keyframe bench history-synth`: the synthetic watch history of the
//! recommendation benchmarks (`keyframe_catalog::recommend::synth`: zipf title
//! popularity, zipf viewer activity, sessions of progress events), generated and
//! folded into a database through the history writer's code, without a test build.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use keyframe_catalog::history::Thresholds;
use keyframe_catalog::recommend::synth;

use super::{open_db, say};
use crate::cli::{ConfigError, DbFlags, Shared};
use crate::Failure;

/// Flags of `keyframe bench history-synth`.
#[derive(Debug, Args, Serialize)]
pub struct HistorySynthArgs {
    /// Events to generate (whole sessions, so slightly more).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    #[serde(skip)]
    pub events: u64,
    /// Viewers [default: events / 100, at least 100].
    #[arg(long, value_name = "N")]
    #[serde(skip)]
    pub users: Option<usize>,
    /// Titles.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    #[serde(skip)]
    pub titles: usize,
    /// Seed of the generator (the same seed gives the same history).
    #[arg(long, value_name = "N", default_value_t = 7)]
    #[serde(skip)]
    pub seed: u64,
    /// Events per database transaction.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    #[serde(skip)]
    pub per_commit: usize,
    /// Fold in memory and write only the per-(viewer, title) state, which is what
    /// the recommendation batch reads: no event log, counters or trending. Much
    /// faster, for histories of 100M events.
    #[arg(long)]
    #[serde(skip)]
    pub state_only: bool,
    /// The target database (`--db`; an empty one: titles and viewers are created).
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: DbFlags,
}

/// Creates the titles and viewers, folds the events, prints one line.
pub async fn run(shared: &Shared, a: &HistorySynthArgs) -> Result<ExitCode, Failure> {
    if a.events == 0 || a.titles == 0 || a.users == Some(0) || a.per_commit == 0 {
        return Err(ConfigError(
            "--events, --users, --titles and --per-commit must be above 0".into(),
        )
        .into());
    }
    let cfg = synth::SynthConfig {
        events: a.events,
        users: a.users.unwrap_or((a.events / 100).max(100) as usize),
        titles: a.titles,
        seed: a.seed,
        ..synth::SynthConfig::default()
    };
    let db = open_db(shared).await?;
    let t = Instant::now();
    let result = async {
        let pop = synth::populate(&db, &cfg).await?;
        let sessions = synth::sessions(&cfg, &pop);
        if a.state_only {
            synth::load_state(&db, sessions, a.per_commit * 4, Thresholds::default()).await
        } else {
            synth::load(
                &db,
                sessions,
                a.per_commit,
                Thresholds::default(),
                86_400_000,
            )
            .await
        }
    }
    .await;
    db.close().await;
    let loaded = result.map_err(|e| {
        Failure::Runtime(anyhow::anyhow!(
            "history-synth failed (is the database empty?): {e}"
        ))
    })?;
    say(format_args!(
        "history-synth: {} events of {} viewers on {} titles folded{} in {:.1} s ({:.0} events/s; {:.1} s with populate)",
        loaded.events,
        cfg.users,
        cfg.titles,
        if a.state_only { " (state only)" } else { "" },
        loaded.seconds,
        loaded.events as f64 / loaded.seconds.max(1e-9),
        t.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}
