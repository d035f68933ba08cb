//! Generations of the `recommendations` table: the next number, the report of a
//! run, and the swap that makes a written generation current (used by both
//! engines).

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;

use crate::db::{map_err, now_ms, Db, DbError};

/// What one run of the batch did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecommendReport {
    /// The generation now current.
    pub generation: i64,
    /// `local` or `sql`.
    pub engine: String,
    /// Titles with at least one similar title.
    pub titles: u64,
    /// Distinct co-watched title pairs.
    pub pairs: u64,
    /// Viewers in the snapshot.
    pub users: u64,
    /// Viewers who got picks.
    pub users_with_picks: u64,
    /// Viewer-title pairs read.
    pub watched: u64,
    /// Rows written.
    pub rows: u64,
    pub snapshot_ms: u64,
    pub compute_ms: u64,
    pub write_ms: u64,
    pub elapsed_ms: u64,
}

impl std::fmt::Display for RecommendReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "recommendations generation {} ({}): {} titles, {} pairs, {} users ({} with picks), {} rows",
            self.generation,
            self.engine,
            self.titles,
            self.pairs,
            self.users,
            self.users_with_picks,
            self.rows
        )?;
        write!(
            f,
            "elapsed {:.1} s (snapshot {:.1} s, compute {:.1} s, write {:.1} s) over {} viewer-title pairs",
            self.elapsed_ms as f64 / 1000.0,
            self.snapshot_ms as f64 / 1000.0,
            self.compute_ms as f64 / 1000.0,
            self.write_ms as f64 / 1000.0,
            self.watched
        )
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A generation number above every one written so far.
pub(crate) async fn next_generation(db: &Db) -> Result<i64, DbError> {
    let r = sqlx::query(
        "SELECT COALESCE(MAX(generation), 0), \
         COALESCE((SELECT MAX(generation) FROM recommend_current), 0) FROM recommendations",
    )
    .fetch_one(db.pool())
    .await
    .map_err(map_err)?;
    let a: i64 = r.try_get(0).map_err(map_err)?;
    let b: i64 = r.try_get(1).map_err(map_err)?;
    Ok(a.max(b) + 1)
}

/// Makes `report.generation` current, dropping the picks of viewers who erased
/// their history since `snapshot_at`, then deletes older generations.
pub(crate) async fn swap(
    db: &Db,
    report: &mut RecommendReport,
    snapshot_at: i64,
    started: Instant,
    write_started: Instant,
) -> Result<(), DbError> {
    let generation = report.generation;
    let mut tx = crate::db::batch::begin_write(db).await.map_err(map_err)?;
    sqlx::query(
        "DELETE FROM recommendations WHERE generation = $1 AND subject IN \
         (SELECT 'user:' || user_id FROM history_erasures WHERE at >= $2)",
    )
    .bind(generation)
    .bind(snapshot_at)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    report.write_ms = ms(write_started.elapsed());
    report.elapsed_ms = ms(started.elapsed());
    let text = serde_json::to_string(&*report).unwrap_or_default();
    sqlx::query(
        "INSERT INTO recommend_current (id, generation, created_at, report) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, \
         created_at = excluded.created_at, report = excluded.report",
    )
    .bind(generation)
    .bind(now_ms())
    .bind(text)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    sqlx::query("DELETE FROM recommendations WHERE generation <> $1")
        .bind(generation)
        .execute(db.pool())
        .await
        .map_err(map_err)?;
    // Erasures older than a day matter to no batch still running.
    sqlx::query("DELETE FROM history_erasures WHERE at < $1")
        .bind(snapshot_at - 86_400_000)
        .execute(db.pool())
        .await
        .map_err(map_err)?;
    report.elapsed_ms = ms(started.elapsed());
    Ok(())
}
