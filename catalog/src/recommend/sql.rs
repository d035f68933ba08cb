//! The recommendation batch as SQL that PostgreSQL runs, and Citus distributes:
//! the same job and the same answer as the in-process engine ([`super::covisit`]).
//!
//! Running it at scale on Citus (one coordinator, N workers):
//!
//! ```sql
//! SELECT create_distributed_table('watch_state', 'user_id');
//! SELECT create_distributed_table('recommendations', 'subject');
//! SELECT create_reference_table('rights');
//! SELECT create_reference_table('recommend_current');
//! ```
//!
//! then `keyframe recommend` with `recommend_engine = "sql"` and `--db` pointing at
//! the coordinator. The per-viewer window (`row_number() OVER (PARTITION BY
//! user_id)`) and the viewer self-join run co-located on each worker; the GROUP BY
//! on title pairs and the per-title top K are repartitioned by Citus. Memory per
//! worker is its share of pairs; the coordinator only plans. On plain PostgreSQL
//! the same statements run in one process (with parallel workers for the
//! aggregation when `max_parallel_workers_per_gather` allows).

use std::time::Instant;

use sqlx::Row;

use super::covisit::params;
use super::generation::{ms, next_generation, swap, RecommendReport};
use crate::db::{map_err, now_ms, Backend, Db, DbError};
use crate::Config;

/// Viewers' titles, most recent first, capped (as the in-process engine does).
const RANKED: &str = "ranked AS ( \
    SELECT user_id, content_id, region, \
           row_number() OVER (PARTITION BY user_id \
                              ORDER BY last_at DESC, content_id COLLATE \"C\") AS rn \
    FROM watch_state)";

/// Item-item cosine of co-counts, top K per title, as generation `$1` rows.
const SIMILAR: &str = "INSERT INTO recommendations (generation, subject, rank, content_id, score, reason) \
    WITH {RANKED}, \
    capped AS (SELECT user_id, content_id FROM ranked WHERE rn <= $2), \
    n AS (SELECT content_id, count(*)::float8 AS n FROM capped GROUP BY content_id), \
    co AS (SELECT a.content_id AS i, b.content_id AS j, count(*)::float8 AS c \
           FROM capped a JOIN capped b ON a.user_id = b.user_id AND a.content_id <> b.content_id \
           GROUP BY a.content_id, b.content_id), \
    sim AS (SELECT co.i, co.j, co.c / sqrt(ni.n * nj.n) AS s \
            FROM co JOIN n ni ON ni.content_id = co.i JOIN n nj ON nj.content_id = co.j), \
    top AS (SELECT i, j, s, row_number() OVER (PARTITION BY i ORDER BY s DESC, j COLLATE \"C\") AS r \
            FROM sim) \
    SELECT $1, 'item:' || i, r, j, s, NULL FROM top WHERE r <= $3";

/// Personal picks from the generation's similar lists, as generation `$1` rows.
const PICKS: &str =
    "INSERT INTO recommendations (generation, subject, rank, content_id, score, reason) \
    WITH {RANKED}, \
    seeds AS (SELECT user_id, content_id AS seed, rn FROM ranked WHERE rn <= $2), \
    uregion AS (SELECT user_id, region FROM ranked WHERE rn = 1), \
    cand AS (SELECT s.user_id, m.content_id AS j, m.score, s.seed, s.rn \
             FROM seeds s JOIN recommendations m \
               ON m.generation = $1 AND m.subject = 'item:' || s.seed), \
    ok AS (SELECT c.* FROM cand c JOIN uregion u ON u.user_id = c.user_id \
           WHERE NOT EXISTS (SELECT 1 FROM watch_state w \
                             WHERE w.user_id = c.user_id AND w.content_id = c.j) \
             AND EXISTS (SELECT 1 FROM rights r WHERE r.content_id = c.j \
                 AND (r.region = '*' OR (u.region <> '' AND r.region = u.region)) \
                 AND (r.available_from IS NULL OR r.available_from <= $4) \
                 AND (r.available_until IS NULL OR r.available_until > $4))), \
    agg AS (SELECT user_id, j, sum(score) AS score FROM ok GROUP BY user_id, j), \
    best AS (SELECT DISTINCT ON (user_id, j) user_id, j, seed FROM ok \
             ORDER BY user_id, j, score DESC, rn ASC), \
    picks AS (SELECT a.user_id, a.j, a.score, b.seed, \
                     row_number() OVER (PARTITION BY a.user_id \
                                        ORDER BY a.score DESC, a.j COLLATE \"C\") AS r \
              FROM agg a JOIN best b ON b.user_id = a.user_id AND b.j = a.j) \
    SELECT $1, 'user:' || user_id, r, j, score, seed FROM picks WHERE r <= $3";

/// Runs the batch inside PostgreSQL and swaps its generation in.
pub async fn run_once(db: &Db, config: &Config) -> Result<RecommendReport, DbError> {
    if db.backend() != Backend::Postgres {
        return Err(DbError::Other(
            "recommend_engine = \"sql\" needs PostgreSQL".into(),
        ));
    }
    let started = Instant::now();
    let snapshot_at = now_ms();
    let p = params(config);
    let generation = next_generation(db).await?;
    // One snapshot for both statements.
    let mut tx = db
        .pool()
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(map_err)?;
    let similar_rows = sqlx::query(sqlx::AssertSqlSafe(SIMILAR.replace("{RANKED}", RANKED)))
        .bind(generation)
        .bind(p.max_titles_per_user as i64)
        .bind(p.top_k as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    let pick_rows = sqlx::query(sqlx::AssertSqlSafe(PICKS.replace("{RANKED}", RANKED)))
        .bind(generation)
        .bind(p.seed_titles as i64)
        .bind(p.per_user as i64)
        .bind(snapshot_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    let counts = sqlx::query(
        "SELECT (SELECT count(*) FROM watch_state), \
                (SELECT count(DISTINCT user_id) FROM watch_state), \
                (SELECT count(DISTINCT subject) FROM recommendations \
                  WHERE generation = $1 AND subject LIKE 'item:%'), \
                (SELECT count(DISTINCT subject) FROM recommendations \
                  WHERE generation = $1 AND subject LIKE 'user:%'), \
                (SELECT count(*) FROM recommendations WHERE generation = $1 AND subject LIKE 'item:%')",
    )
    .bind(generation)
    .fetch_one(&mut *tx)
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    let get = |i: usize| counts.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
    let compute_ms = ms(started.elapsed());
    let mut report = RecommendReport {
        generation,
        engine: "sql".into(),
        titles: get(2).map_err(map_err)?,
        // Only the kept (top-K) pairs are known here, not every co-watched pair.
        pairs: get(4).map_err(map_err)? / 2,
        users: get(1).map_err(map_err)?,
        users_with_picks: get(3).map_err(map_err)?,
        watched: get(0).map_err(map_err)?,
        rows: similar_rows + pick_rows,
        snapshot_ms: 0,
        compute_ms,
        write_ms: 0,
        elapsed_ms: 0,
    };
    swap(db, &mut report, snapshot_at, started, Instant::now()).await?;
    Ok(report)
}
