//! Trending: a time-decayed view count per title and region, with a configurable
//! half-life `h`. A view at time `t` is worth `2^-(now - t)/h` at `now`.
//!
//! Stored per (title, region) is `L = ln Σ exp(t·ln2/h)` over views: the current
//! score is `exp(L - now·ln2/h)`, and since every row decays by the same factor,
//! ordering rows by `L` orders them by their current score. Adding or taking back a
//! view is a log-sum-exp (or log-diff-exp) on `L`; rows are never rewritten just
//! because time passed. Region `*` holds every region's views together.
//!
//! Changing the half-life changes the meaning of stored values: rebuild them with
//! [`rebuild`] (one pass over the log) after changing it.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use crate::db::batch::{begin_write, per_statement, values};
use crate::db::schema::ANY_REGION;
use crate::db::{map_err, Backend, Db, DbError};

/// The exponent one view at `at_ms` adds (its `ln` weight).
pub fn view_log_weight(at_ms: i64, half_life_ms: i64) -> f64 {
    at_ms as f64 * std::f64::consts::LN_2 / half_life_ms.max(1) as f64
}

/// `ln(e^a + e^b)` without overflow.
pub fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// `ln(e^a - e^b)`, or `None` when nothing (or rounding noise) is left.
pub fn log_sub(a: f64, b: f64) -> Option<f64> {
    if b == f64::NEG_INFINITY {
        return Some(a);
    }
    let d = b - a;
    if d >= -1e-9 {
        return None;
    }
    Some(a + (-d.exp()).ln_1p())
}

/// The decayed score at `now_ms` of a stored `L`.
pub fn score_at(score_log: f64, now_ms: i64, half_life_ms: i64) -> f64 {
    (score_log - view_log_weight(now_ms, half_life_ms)).exp()
}

/// Adds (`sign > 0`) or takes back views: `deltas` maps (title, region) to the
/// log-sum-exp of the views' weights. Runs inside the caller's transaction.
pub(crate) async fn apply(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    deltas: &HashMap<(String, String), f64>,
    add: bool,
) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let keys: Vec<&(String, String)> = deltas.keys().collect();
    if add && backend == Backend::Postgres {
        // Merge in SQL, so that concurrent writers (several catalog processes)
        // cannot lose each other's views.
        for chunk in keys.chunks(per_statement(3)) {
            let sql = format!(
                "INSERT INTO trending (content_id, region, score_log) VALUES {} \
                 ON CONFLICT (content_id, region) DO UPDATE SET score_log = \
                 GREATEST(trending.score_log, excluded.score_log) + \
                 ln(1 + exp(-abs(trending.score_log - excluded.score_log)))",
                values(chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(&k.0).bind(&k.1).bind(deltas[*k]);
            }
            q.execute(&mut *tx).await?;
        }
        return Ok(());
    }
    // SQLite has no ln/exp; its write transaction is exclusive, so read-merge-write
    // is safe. Taking back views is rare and done the same way on both.
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut current: HashMap<(String, String), f64> = HashMap::new();
    for chunk in keys.chunks(per_statement(2)) {
        let cond = (0..chunk.len())
            .map(|i| format!("(content_id = ${} AND region = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT content_id, region, score_log FROM trending WHERE {cond}{lock}"
        )));
        for k in chunk {
            q = q.bind(&k.0).bind(&k.1);
        }
        for r in q.fetch_all(&mut *tx).await? {
            current.insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
    }
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    for (k, d) in deltas {
        let old = current.get(k).copied();
        let new = match (old, add) {
            (Some(o), true) => Some(log_add(o, *d)),
            (None, true) => Some(*d),
            (Some(o), false) => log_sub(o, *d),
            (None, false) => continue,
        };
        match new {
            Some(v) => upserts.push((k, v)),
            None => removals.push(k),
        }
    }
    for chunk in upserts.chunks(per_statement(3)) {
        let sql = format!(
            "INSERT INTO trending (content_id, region, score_log) VALUES {} \
             ON CONFLICT (content_id, region) DO UPDATE SET score_log = excluded.score_log",
            values(chunk.len(), 3)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (k, v) in chunk {
            q = q.bind(&k.0).bind(&k.1).bind(*v);
        }
        q.execute(&mut *tx).await?;
    }
    for k in removals {
        sqlx::query("DELETE FROM trending WHERE content_id = $1 AND region = $2")
            .bind(&k.0)
            .bind(&k.1)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A trending title.
#[derive(Clone, Debug, PartialEq)]
pub struct Trending {
    pub content_id: String,
    /// Decayed views at the time asked.
    pub score: f64,
}

/// The region key trending rows use for a caller's region (`*` when unknown).
pub fn region_key(region: Option<&str>) -> &str {
    region.unwrap_or(ANY_REGION)
}

/// The `limit` most trending titles in `scope` (`None`: every region together)
/// that may be watched in `region` at `now_ms`, skipping `offset`.
#[allow(clippy::too_many_arguments)]
pub async fn top(
    db: &Db,
    scope: Option<&str>,
    region: Option<&str>,
    now_ms: i64,
    half_life_ms: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Trending>, DbError> {
    let key = region_key(scope);
    let rows = sqlx::query(
        "SELECT t.content_id, t.score_log FROM trending t WHERE t.region = $1 \
         AND EXISTS (SELECT 1 FROM rights r WHERE r.content_id = t.content_id \
           AND (r.region = $2 OR r.region = $3) \
           AND (r.available_from IS NULL OR r.available_from <= $4) \
           AND (r.available_until IS NULL OR r.available_until > $4)) \
         ORDER BY t.score_log DESC, t.content_id ASC LIMIT $5 OFFSET $6",
    )
    .bind(key)
    .bind(region.unwrap_or(ANY_REGION))
    .bind(ANY_REGION)
    .bind(now_ms)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(Trending {
                content_id: r.try_get(0)?,
                score: score_at(r.try_get(1)?, now_ms, half_life_ms),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)
}

/// Recomputes every trending row from the log (after a change of half-life).
pub async fn rebuild(db: &Db, half_life_ms: i64) -> Result<usize, DbError> {
    use futures::TryStreamExt;
    let mut deltas: HashMap<(String, String), f64> = HashMap::new();
    {
        let mut rows =
            sqlx::query("SELECT content_id, region, at FROM watch_events WHERE counted_view = 1")
                .fetch(db.pool());
        while let Some(r) = rows.try_next().await.map_err(map_err)? {
            let content: String = r.try_get(0).map_err(map_err)?;
            let region: String = r.try_get(1).map_err(map_err)?;
            let w = view_log_weight(r.try_get(2).map_err(map_err)?, half_life_ms);
            for reg in region_keys(&region) {
                let e = deltas
                    .entry((content.clone(), reg.to_string()))
                    .or_insert(f64::NEG_INFINITY);
                *e = log_add(*e, w);
            }
        }
    }
    let mut tx = begin_write(db).await.map_err(map_err)?;
    sqlx::query("DELETE FROM trending")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    apply(&mut tx, Backend::Sqlite, &deltas, true)
        .await
        .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(deltas.len())
}

/// The trending rows a view in `region` adds to: its region's (when known) and `*`.
pub(crate) fn region_keys(region: &str) -> impl Iterator<Item = &str> {
    std::iter::once(ANY_REGION)
        .chain((!region.is_empty() && region != ANY_REGION).then_some(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_space_sums_match_plain_sums() {
        let h = 3_600_000;
        let now = 1_700_000_000_000;
        // Two views now and one a half-life ago: 2.5 views' worth.
        let mut l = f64::NEG_INFINITY;
        for at in [now, now, now - h] {
            l = log_add(l, view_log_weight(at, h));
        }
        assert!((score_at(l, now, h) - 2.5).abs() < 1e-9);
        // A day of half-lives later it is tiny, and the order never changed.
        assert!((score_at(l, now + 2 * h, h) - 0.625).abs() < 1e-9);
        // Taking the old view back leaves 2.
        let l2 = log_sub(l, view_log_weight(now - h, h)).expect("left");
        assert!((score_at(l2, now, h) - 2.0).abs() < 1e-9);
        // Taking everything back leaves nothing.
        assert_eq!(
            log_sub(view_log_weight(now, h), view_log_weight(now, h)),
            None
        );
    }
}
