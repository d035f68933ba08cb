//! The recommendation batch (`keyframe recommend`, or on a schedule inside the
//! catalog server): similar titles by co-visitation and personal picks, written as
//! a new generation of the `recommendations` table and swapped in atomically.
//!
//! **Input.** The batch reads the per-(viewer, title) watch state in one query,
//! which is a consistent snapshot on both databases. That table is the fold of the
//! event log (one row per viewer and title, however many events), so the batch's
//! memory grows with viewer-title pairs and the sparse co-count map, not with events;
//! and a privacy delete, which removes state rows, is honoured by every later run.
//!
//! **Engines.** `local` ([`covisit`]) streams the snapshot into this process and
//! uses every core; it works on SQLite and PostgreSQL. `sql` ([`sql`]) runs the
//! same job as SQL statements inside PostgreSQL (window functions, a self-join on
//! viewer, GROUP BY on title pairs), which is how it runs past one machine: on Citus,
//! distribute `watch_state` and `recommendations` by `user_id` / `subject` and the
//! self-join is co-located per worker while the pair aggregation is repartitioned.
//! Both give the same answer (a test checks it on a hand-worked dataset).
//!
//! **Swap.** Rows are written under a new generation number that readers do not
//! see; one short transaction then points `recommend_current` at it (dropping the
//! picks of viewers who erased their history since the snapshot), and older
//! generations are deleted. Readers see the old generation or the new one, never a
//! mix. Run one batch at a time per database: a concurrent second run wastes work,
//! and whichever swaps last wins.
//!
//! **Reads.** `GET /api/content/{id}/similar` and `GET /api/recommendations`
//! read the current generation, filtered again by the caller's region at read
//! time; trending fills in for new viewers and new titles.

pub mod covisit;
pub mod generation;
pub mod sql;
pub mod synth;

pub use covisit::params;
pub use generation::RecommendReport;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};

use generation::{ms, next_generation, swap};

use crate::db::{map_err, now_ms, Db, DbError};
use crate::meta::Right;
use crate::playback::availability;
use crate::Config;

/// The `subject`s of similar lists and picks (named with the schema).
pub use crate::db::schema::{item_subject, user_subject};

/// Runs the batch once with the configured engine and swaps its generation in.
/// The DataFusion and Ballista engines live in the `keyframe-engine` crate: they run
/// from `keyframe recommend`, and on the catalog's schedule through a [`Runner`].
pub async fn run_once(db: &Db, config: &Config) -> Result<RecommendReport, DbError> {
    match config.recommend_engine.as_str() {
        "sql" => sql::run_once(db, config).await,
        "local" => run_local(db, config).await,
        other => Err(DbError::Other(format!(
            "recommend_engine '{other}' needs the keyframe-engine runner (keyframe recommend, serve, catalog)"
        ))),
    }
}

/// One row of the folded history as the snapshot engines read it.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchRow {
    pub user_id: String,
    pub content_id: String,
    /// The viewer's region when they watched it; empty = unknown.
    pub region: String,
    pub last_at: i64,
}

/// Every (viewer, title) state row, in no particular order. One query: a
/// consistent snapshot on both databases.
pub fn watch_rows(db: &Db) -> impl futures::Stream<Item = Result<WatchRow, DbError>> + Send + '_ {
    use futures::StreamExt;
    sqlx::query("SELECT user_id, content_id, region, last_at FROM watch_state")
        .fetch(db.pool())
        .map(|r| {
            let r = r.map_err(map_err)?;
            Ok(WatchRow {
                user_id: r.try_get(0).map_err(map_err)?,
                content_id: r.try_get(1).map_err(map_err)?,
                region: r.try_get(2).map_err(map_err)?,
                last_at: r.try_get(3).map_err(map_err)?,
            })
        })
}

/// `(region, title)` for every title that may be watched at `now` in each of
/// `regions`, and with region `""` the titles open to viewers of unknown region (as
/// the local engine's availability tables).
pub async fn available_pairs(
    db: &Db,
    regions: &[String],
    now: i64,
) -> Result<Vec<(String, String)>, DbError> {
    let rights = all_rights(db).await?;
    let mut out = Vec::new();
    for (id, r) in &rights {
        if availability(r, None, now).available {
            out.push((String::new(), id.clone()));
        }
        for region in regions.iter().filter(|x| !x.is_empty()) {
            if availability(r, Some(region), now).available {
                out.push((region.clone(), id.clone()));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes the rows of a new generation computed elsewhere (the snapshot engines)
/// and swaps it in, like the local engine does.
pub struct GenerationWriter<'a> {
    tx: Batcher<'a>,
    buf: Vec<Row6>,
    rows: u64,
    started: Instant,
}

impl<'a> GenerationWriter<'a> {
    /// Starts a generation above every one written so far; `started` is when the run began.
    pub async fn begin(db: &'a Db, started: Instant) -> Result<Self, DbError> {
        let generation = next_generation(db).await?;
        Ok(GenerationWriter {
            tx: Batcher::new(db, generation),
            buf: Vec::with_capacity(ROWS_PER_TX),
            rows: 0,
            started,
        })
    }

    /// The generation being written.
    pub fn generation(&self) -> i64 {
        self.tx.generation
    }

    /// Adds `similar` at `rank` (from 1) to the list of `title`.
    pub async fn similar(
        &mut self,
        title: &str,
        rank: i64,
        similar: String,
        score: f64,
    ) -> Result<(), DbError> {
        self.push((item_subject(title), rank, similar, score, None))
            .await
    }

    /// Adds a pick at `rank` (from 1) for `user`, because they watched `reason`.
    pub async fn pick(
        &mut self,
        user: &str,
        rank: i64,
        title: String,
        score: f64,
        reason: String,
    ) -> Result<(), DbError> {
        self.push((user_subject(user), rank, title, score, Some(reason)))
            .await
    }

    async fn push(&mut self, row: Row6) -> Result<(), DbError> {
        self.buf.push(row);
        if self.buf.len() >= ROWS_PER_TX {
            self.rows += self.tx.flush(&mut self.buf).await?;
        }
        Ok(())
    }

    /// Writes what is left and makes the generation current (see [`generation`]);
    /// `report`'s generation, rows and times are filled in. `snapshot_at` is when
    /// the input was read: picks of viewers who erased their history since are dropped.
    pub async fn finish(
        mut self,
        mut report: RecommendReport,
        snapshot_at: i64,
        write_started: Instant,
    ) -> Result<RecommendReport, DbError> {
        self.rows += self.tx.flush(&mut self.buf).await?;
        report.generation = self.tx.generation;
        report.rows = self.rows;
        swap(
            self.tx.db,
            &mut report,
            snapshot_at,
            self.started,
            write_started,
        )
        .await?;
        Ok(report)
    }
}

/// Runs the in-process engine once.
pub async fn run_local(db: &Db, config: &Config) -> Result<RecommendReport, DbError> {
    let started = Instant::now();
    let snapshot_at = now_ms();
    let p = params(config);
    let (snap, regions, watched) = snapshot(db).await?;
    let rights = all_rights(db).await?;
    let snapshot_ms = ms(started.elapsed());

    let t = Instant::now();
    let (sims, picks, pairs, snap) = tokio::task::spawn_blocking(move || {
        let (sims, pairs) = covisit::similar(&snap, &p);
        let (available, anywhere) = availability_tables(&snap, &regions, &rights, snapshot_at);
        let picks = covisit::picks(&snap, &p, &sims, &available, &anywhere);
        (sims, picks, pairs, snap)
    })
    .await
    .map_err(|e| DbError::Other(format!("recommendation batch: {e}")))?;
    let compute_ms = ms(t.elapsed());

    let t = Instant::now();
    let generation = next_generation(db).await?;
    let mut rows: u64 = 0;
    let mut buf: Vec<Row6> = Vec::with_capacity(ROWS_PER_TX);
    let mut tx = Batcher::new(db, generation);
    for (a, list) in sims.iter().enumerate() {
        for (rank, (b, s)) in list.iter().enumerate() {
            buf.push((
                item_subject(&snap.titles[a]),
                rank as i64 + 1,
                snap.titles[*b as usize].clone(),
                *s,
                None,
            ));
        }
        if buf.len() >= ROWS_PER_TX {
            rows += tx.flush(&mut buf).await?;
        }
    }
    let mut users_with_picks = 0;
    for (u, list) in snap.users.iter().zip(&picks) {
        users_with_picks += u64::from(!list.is_empty());
        for (rank, (y, s, seed)) in list.iter().enumerate() {
            buf.push((
                user_subject(&u.user_id),
                rank as i64 + 1,
                snap.titles[*y as usize].clone(),
                *s,
                Some(snap.titles[*seed as usize].clone()),
            ));
        }
        if buf.len() >= ROWS_PER_TX {
            rows += tx.flush(&mut buf).await?;
        }
    }
    rows += tx.flush(&mut buf).await?;
    let mut report = RecommendReport {
        generation,
        engine: "local".into(),
        titles: sims.iter().filter(|l| !l.is_empty()).count() as u64,
        pairs,
        users: snap.users.len() as u64,
        users_with_picks,
        watched,
        rows,
        snapshot_ms,
        compute_ms,
        write_ms: 0,
        elapsed_ms: 0,
    };
    swap(db, &mut report, snapshot_at, started, t).await?;
    Ok(report)
}

/// `(subject, rank, content_id, score, reason)`.
type Row6 = (String, i64, String, f64, Option<String>);

/// Rows per insert transaction: small enough that intake is not blocked for long on
/// SQLite, whose writes take turns.
const ROWS_PER_TX: usize = 20_000;
/// Rows per INSERT statement (6 values each; see `db::batch::PARAMS_PER_STATEMENT`).
const ROWS_PER_STATEMENT: usize = crate::db::batch::per_statement(6);

struct Batcher<'a> {
    db: &'a Db,
    generation: i64,
}

impl<'a> Batcher<'a> {
    fn new(db: &'a Db, generation: i64) -> Self {
        Batcher { db, generation }
    }

    async fn flush(&mut self, buf: &mut Vec<Row6>) -> Result<u64, DbError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut tx = crate::db::batch::begin_write(self.db)
            .await
            .map_err(map_err)?;
        for chunk in buf.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO recommendations (generation, subject, rank, content_id, score, reason) \
                 VALUES {}",
                crate::db::batch::values(chunk.len(), 6)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (subject, rank, content, score, reason) in chunk {
                q = q
                    .bind(self.generation)
                    .bind(subject)
                    .bind(*rank)
                    .bind(content)
                    .bind(*score)
                    .bind(reason);
            }
            q.execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        let n = buf.len() as u64;
        buf.clear();
        Ok(n)
    }
}

/// Reads the viewer-title pairs: viewers with their titles, most recent first, and
/// their region (that of their most recent title).
async fn snapshot(db: &Db) -> Result<(covisit::Snapshot, Vec<String>, u64), DbError> {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut titles: Vec<String> = Vec::new();
    let mut regions: Vec<String> = Vec::new();
    let mut region_ids: HashMap<String, u32> = HashMap::new();
    let mut users: Vec<covisit::UserTitles> = Vec::new();
    let mut watched = 0u64;
    let mut rows = sqlx::query(
        "SELECT user_id, content_id, region FROM watch_state \
         ORDER BY user_id, last_at DESC, content_id",
    )
    .fetch(db.pool());
    while let Some(r) = rows.try_next().await.map_err(map_err)? {
        let user: String = r.try_get(0).map_err(map_err)?;
        let content: String = r.try_get(1).map_err(map_err)?;
        watched += 1;
        let t = match ids.get(&content) {
            Some(&t) => t,
            None => {
                let t = titles.len() as u32;
                ids.insert(content.clone(), t);
                titles.push(content);
                t
            }
        };
        if users.last().is_none_or(|u| u.user_id != user) {
            let region: String = r.try_get(2).map_err(map_err)?;
            let region = if region.is_empty() {
                None
            } else {
                Some(match region_ids.get(&region) {
                    Some(&x) => x,
                    None => {
                        let x = regions.len() as u32;
                        region_ids.insert(region.clone(), x);
                        regions.push(region);
                        x
                    }
                })
            };
            users.push(covisit::UserTitles {
                user_id: user,
                region,
                titles: Vec::new(),
            });
        }
        if let Some(u) = users.last_mut() {
            u.titles.push(t);
        }
    }
    drop(rows);
    // Renumber titles in id order, so that ties break by id as in SQL.
    let mut order: Vec<u32> = (0..titles.len() as u32).collect();
    order.sort_unstable_by(|a, b| titles[*a as usize].cmp(&titles[*b as usize]));
    let mut renumber = vec![0u32; titles.len()];
    for (new, old) in order.iter().enumerate() {
        renumber[*old as usize] = new as u32;
    }
    let titles: Vec<String> = order
        .iter()
        .map(|&old| std::mem::take(&mut titles[old as usize]))
        .collect();
    for u in &mut users {
        for t in &mut u.titles {
            *t = renumber[*t as usize];
        }
    }
    Ok((covisit::Snapshot { titles, users }, regions, watched))
}

async fn all_rights(db: &Db) -> Result<HashMap<String, Vec<Right>>, DbError> {
    let mut out: HashMap<String, Vec<Right>> = HashMap::new();
    for r in sqlx::query("SELECT content_id, region, available_from, available_until FROM rights")
        .fetch_all(db.pool())
        .await
        .map_err(map_err)?
    {
        out.entry(r.try_get(0).map_err(map_err)?)
            .or_default()
            .push(Right {
                region: r.try_get(1).map_err(map_err)?,
                available_from: r.try_get(2).map_err(map_err)?,
                available_until: r.try_get(3).map_err(map_err)?,
            });
    }
    Ok(out)
}

/// Per region (and for unknown regions), which titles may be watched at `now`.
fn availability_tables(
    s: &covisit::Snapshot,
    regions: &[String],
    rights: &HashMap<String, Vec<Right>>,
    now: i64,
) -> (Vec<Vec<bool>>, Vec<bool>) {
    let open = |id: &str, region: Option<&str>| {
        rights
            .get(id)
            .is_some_and(|r| availability(r, region, now).available)
    };
    let per_region = regions
        .iter()
        .map(|r| s.titles.iter().map(|t| open(t, Some(r))).collect())
        .collect();
    let anywhere = s.titles.iter().map(|t| open(t, None)).collect();
    (per_region, anywhere)
}

/// A recommended title.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommended {
    pub content_id: String,
    pub score: f64,
    /// For picks: the title that led to it ("because you watched").
    pub reason: Option<String>,
}

/// The current generation's list for `subject`, best first.
pub async fn current_list(db: &Db, subject: &str, limit: i64) -> Result<Vec<Recommended>, DbError> {
    sqlx::query(
        "SELECT r.content_id, r.score, r.reason FROM recommendations r \
         JOIN recommend_current g ON g.id = 1 AND r.generation = g.generation \
         WHERE r.subject = $1 ORDER BY r.rank LIMIT $2",
    )
    .bind(subject)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(map_err)?
    .iter()
    .map(|r| {
        Ok(Recommended {
            content_id: r.try_get(0)?,
            score: r.try_get(1)?,
            reason: r.try_get(2)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(map_err)
}

/// The current generation, if any batch has run.
pub async fn current_generation(db: &Db) -> Result<Option<i64>, DbError> {
    sqlx::query("SELECT generation FROM recommend_current WHERE id = 1")
        .fetch_optional(db.pool())
        .await
        .map_err(map_err)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(map_err)
}

/// A batch the catalog's schedule runs instead of [`run_once`]. The `datafusion` and
/// `ballista://` engines live in `keyframe-engine`, which depends on this crate, so
/// the root binary hands the catalog a runner for them ([`crate::server::Catalog::batch`]).
pub type Runner = std::sync::Arc<
    dyn Fn(Db, Config) -> futures::future::BoxFuture<'static, Result<RecommendReport, String>>
        + Send
        + Sync,
>;

/// Runs the batch every `recommend_interval_secs` until `stop` is cancelled (the
/// first run one interval after start), with `runner` when given, else
/// [`run_once`]. Failures are logged and retried at the next tick.
pub async fn schedule(
    db: Db,
    config: Config,
    runner: Option<Runner>,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = Duration::from_secs(config.recommend_interval_secs);
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let run = async {
            match &runner {
                Some(runner) => runner(db.clone(), config.clone()).await,
                None => run_once(&db, &config).await.map_err(|e| e.to_string()),
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = run => match r {
                Ok(report) => tracing::info!(
                    generation = report.generation,
                    titles = report.titles,
                    pairs = report.pairs,
                    users = report.users,
                    elapsed_ms = report.elapsed_ms,
                    "recommendation batch done"
                ),
                Err(e) => tracing::warn!(error = %e, "recommendation batch failed"),
            }
        }
    }
}

/// Whether two engines' lists for one subject agree: the same length, the same
/// scores rank by rank within `tol`, and the same titles (and reasons) except where
/// scores tie within `tol` (float sums in another order may swap such titles, or
/// pick another of them at the cut). Tests and benchmarks compare engines with it.
pub fn same_list(a: &[Recommended], b: &[Recommended], tol: f64) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} vs {} entries", a.len(), b.len()));
    }
    let last = a.last().map_or(0.0, |x| x.score);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if (x.score - y.score).abs() > tol {
            return Err(format!("rank {}: score {} vs {}", i + 1, x.score, y.score));
        }
        if x.content_id == y.content_id {
            if x.reason != y.reason {
                return Err(format!(
                    "rank {}: reason {:?} vs {:?}",
                    i + 1,
                    x.reason,
                    y.reason
                ));
            }
            continue;
        }
        let tied = b
            .iter()
            .any(|z| z.content_id == x.content_id && (z.score - x.score).abs() <= tol)
            || (x.score - last).abs() <= tol;
        if !tied {
            return Err(format!(
                "rank {}: {} vs {}",
                i + 1,
                x.content_id,
                y.content_id
            ));
        }
    }
    Ok(())
}
