//! The history tables: appending and folding batches of events, the reads behind
//! the API, the export, and privacy deletes that take back everything an event
//! added (state, counters, trending, personal recommendations).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::fold::{fold, Event, EventKind, Thresholds, WatchState};
use super::trending;
use crate::db::batch::{begin_write, per_statement, values};
use crate::db::schema::user_subject;
use crate::db::{map_err, now_ms, Backend, Db, DbError};

/// One viewer's events from one request, with the region the request came from
/// (`""` when unknown).
#[derive(Clone, Debug)]
pub struct UserBatch {
    pub user_id: String,
    pub region: String,
    pub events: Vec<Event>,
}

/// What became of a batch's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Events appended and folded.
    pub accepted: usize,
    /// Events already in the log (or twice in the request), ignored.
    pub duplicates: usize,
}

pub(crate) const STATE_COLUMNS: &str =
    "user_id, content_id, position_ms, duration_ms, resume_ms, played, \
     play_count, watched_ms, first_at, last_at, last_session, last_seq, region, hidden";

fn state_from_row(r: &sqlx::any::AnyRow) -> Result<(String, String, WatchState), sqlx::Error> {
    Ok((
        r.try_get("user_id")?,
        r.try_get("content_id")?,
        WatchState {
            position_ms: r.try_get("position_ms")?,
            duration_ms: r.try_get("duration_ms")?,
            resume_ms: r.try_get("resume_ms")?,
            played: r.try_get::<i64, _>("played")? != 0,
            play_count: r.try_get("play_count")?,
            watched_ms: r.try_get("watched_ms")?,
            first_at: r.try_get("first_at")?,
            last_at: r.try_get("last_at")?,
            last_session: r.try_get("last_session")?,
            last_seq: r.try_get("last_seq")?,
            region: r.try_get("region")?,
            hidden: r.try_get::<i64, _>("hidden")? != 0,
        },
    ))
}

/// Binds one `watch_state` row's values, in [`STATE_COLUMNS`] order.
pub(crate) fn bind_state<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    user: &'q str,
    content: &'q str,
    s: &'q WatchState,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(user)
        .bind(content)
        .bind(s.position_ms)
        .bind(s.duration_ms)
        .bind(s.resume_ms)
        .bind(i64::from(s.played))
        .bind(s.play_count)
        .bind(s.watched_ms)
        .bind(s.first_at)
        .bind(s.last_at)
        .bind(&s.last_session)
        .bind(s.last_seq)
        .bind(&s.region)
        .bind(i64::from(s.hidden))
}

async fn upsert_states(
    tx: &mut sqlx::AnyConnection,
    states: &[(&str, &str, &WatchState)],
) -> Result<(), sqlx::Error> {
    for chunk in states.chunks(per_statement(14)) {
        let sql = format!(
            "INSERT INTO watch_state ({STATE_COLUMNS}) VALUES {} \
             ON CONFLICT (user_id, content_id) DO UPDATE SET position_ms = excluded.position_ms, \
             duration_ms = excluded.duration_ms, resume_ms = excluded.resume_ms, \
             played = excluded.played, play_count = excluded.play_count, \
             watched_ms = excluded.watched_ms, first_at = excluded.first_at, \
             last_at = excluded.last_at, last_session = excluded.last_session, \
             last_seq = excluded.last_seq, region = excluded.region, hidden = excluded.hidden",
            values(chunk.len(), 14)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (user, content, s) in chunk {
            q = bind_state(q, user, content, s);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Adds (or with negative values takes back) views and watch time per (title,
/// region) and keeps no row at zero.
async fn apply_stats(
    tx: &mut sqlx::AnyConnection,
    stats: &HashMap<(String, String), (i64, i64)>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<_> = stats
        .iter()
        .filter(|(_, (v, w))| *v != 0 || *w != 0)
        .collect();
    for chunk in rows.chunks(per_statement(4)) {
        let sql = format!(
            "INSERT INTO content_stats (content_id, region, views, watch_ms) VALUES {} \
             ON CONFLICT (content_id, region) DO UPDATE SET \
             views = content_stats.views + excluded.views, \
             watch_ms = content_stats.watch_ms + excluded.watch_ms",
            values(chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for ((content, region), (views, watch)) in chunk {
            q = q.bind(content).bind(region).bind(*views).bind(*watch);
        }
        q.execute(&mut *tx).await?;
    }
    if stats.values().any(|(v, w)| *v < 0 || *w < 0) {
        sqlx::query("DELETE FROM content_stats WHERE views <= 0 AND watch_ms <= 0")
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Db {
    /// Appends `batches` to the log and folds them, in one transaction. Events whose
    /// `(user, session_id, seq)` is already in the log, or repeats one earlier in
    /// `batches`, are duplicates and change nothing. Returns one outcome per batch.
    pub async fn record_history(
        &self,
        batches: &[UserBatch],
        th: Thresholds,
        half_life_ms: i64,
    ) -> Result<Vec<Outcome>, DbError> {
        let received_at = now_ms();
        let mut tx = begin_write(self).await.map_err(map_err)?;
        let out = record_in(
            &mut tx,
            self.backend(),
            batches,
            th,
            half_life_ms,
            received_at,
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }
}

async fn record_in(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    batches: &[UserBatch],
    th: Thresholds,
    half_life_ms: i64,
    received_at: i64,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes = vec![Outcome::default(); batches.len()];
    if backend == Backend::Postgres {
        lock_users(tx, batches).await?;
    }
    // 1. Which events are new: not twice in the batches, not in the log.
    let mut seen: HashSet<(&str, &str, i64)> = HashSet::new();
    let mut fresh: Vec<(usize, &Event)> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        for e in &batch.events {
            if seen.insert((&batch.user_id, &e.session_id, e.seq)) {
                fresh.push((b, e));
            } else {
                outcomes[b].duplicates += 1;
            }
        }
    }
    let mut ranges: HashMap<(&str, &str), (i64, i64)> = HashMap::new();
    for (b, e) in &fresh {
        let r = ranges
            .entry((&batches[*b].user_id, &e.session_id))
            .or_insert((e.seq, e.seq));
        r.0 = r.0.min(e.seq);
        r.1 = r.1.max(e.seq);
    }
    let mut logged: HashSet<(String, String, i64)> = HashSet::new();
    let ranges: Vec<_> = ranges.into_iter().collect();
    for chunk in ranges.chunks(per_statement(4)) {
        let cond = (0..chunk.len())
            .map(|i| {
                let n = 4 * i;
                format!(
                    "(user_id = ${} AND session_id = ${} AND seq BETWEEN ${} AND ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT user_id, session_id, seq FROM watch_events WHERE {cond}"
        )));
        for ((user, session), (lo, hi)) in chunk {
            q = q.bind(*user).bind(*session).bind(*lo).bind(*hi);
        }
        for r in q.fetch_all(&mut *tx).await? {
            logged.insert((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
    }
    let mut new_events: Vec<(usize, &Event)> = Vec::with_capacity(fresh.len());
    for (b, e) in fresh {
        let key = (batches[b].user_id.clone(), e.session_id.clone(), e.seq);
        if logged.contains(&key) {
            outcomes[b].duplicates += 1;
        } else {
            outcomes[b].accepted += 1;
            new_events.push((b, e));
        }
    }
    if new_events.is_empty() {
        return Ok(outcomes);
    }

    // 2. The states they fold into.
    let mut groups: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, (b, e)) in new_events.iter().enumerate() {
        groups
            .entry((&batches[*b].user_id, &e.content_id))
            .or_default()
            .push(i);
    }
    let pairs: Vec<(&str, &str)> = groups.keys().copied().collect();
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut states: HashMap<(String, String), WatchState> = HashMap::new();
    for chunk in pairs.chunks(per_statement(2)) {
        let cond = (0..chunk.len())
            .map(|i| format!("(user_id = ${} AND content_id = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM watch_state WHERE {cond}{lock}"
        )));
        for (u, c) in chunk {
            q = q.bind(*u).bind(*c);
        }
        for r in q.fetch_all(&mut *tx).await? {
            let (u, c, s) = state_from_row(&r)?;
            states.insert((u, c), s);
        }
    }

    // 3. Fold, and what each event adds to counters and trending.
    let mut added = vec![0i64; new_events.len()];
    let mut folded: Vec<(&str, &str, WatchState)> = Vec::with_capacity(groups.len());
    let mut stats: HashMap<(String, String), (i64, i64)> = HashMap::new();
    let mut trend: HashMap<(String, String), f64> = HashMap::new();
    for ((user, content), idx) in &groups {
        let events: Vec<&Event> = idx.iter().map(|&i| new_events[i].1).collect();
        let region = &batches[new_events[idx[0]].0].region;
        let prev = states.remove(&(user.to_string(), content.to_string()));
        let Some((state, contributions)) = fold(prev, &events, region, th) else {
            continue;
        };
        for (k, &i) in idx.iter().enumerate() {
            added[i] = contributions[k];
        }
        folded.push((user, content, state));
    }
    let counted = views(tx, &new_events, &groups, &added, th, received_at).await?;
    for (i, (b, e)) in new_events.iter().enumerate() {
        let region = &batches[*b].region;
        let view = counted[i];
        let s = stats
            .entry((e.content_id.clone(), region.clone()))
            .or_default();
        s.0 += i64::from(view);
        s.1 += added[i];
        if view {
            let w = trending::view_log_weight(e.at.min(received_at), half_life_ms);
            for key in trending::region_keys(region) {
                let t = trend
                    .entry((e.content_id.clone(), key.to_string()))
                    .or_insert(f64::NEG_INFINITY);
                *t = trending::log_add(*t, w);
            }
        }
    }

    // 4. Write it all.
    let per = per_statement(12);
    for (chunk_no, chunk) in new_events.chunks(per).enumerate() {
        let sql = format!(
            "INSERT INTO watch_events (user_id, session_id, seq, content_id, kind, position_ms, \
             duration_ms, at, received_at, region, watched_ms, counted_view) VALUES {} \
             ON CONFLICT DO NOTHING",
            values(chunk.len(), 12)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (k, (b, e)) in chunk.iter().enumerate() {
            let batch = &batches[*b];
            q = q
                .bind(&batch.user_id)
                .bind(&e.session_id)
                .bind(e.seq)
                .bind(&e.content_id)
                .bind(e.kind.as_str())
                .bind(e.position_ms)
                .bind(e.duration_ms)
                .bind(e.at)
                .bind(received_at)
                .bind(&batch.region)
                .bind(added[chunk_no * per + k])
                .bind(i64::from(counted[chunk_no * per + k]));
        }
        q.execute(&mut *tx).await?;
    }
    let rows: Vec<(&str, &str, &WatchState)> = folded.iter().map(|(u, c, s)| (*u, *c, s)).collect();
    upsert_states(tx, &rows).await?;
    apply_stats(tx, &stats).await?;
    trending::apply(tx, backend, &trend, true).await?;
    Ok(outcomes)
}

/// On PostgreSQL, makes folds of one viewer's events run one after the other (a
/// transaction-scoped advisory lock per viewer, taken in key order, so two folds
/// cannot deadlock): the log check below then sees what a concurrent fold
/// committed. Without it two folds of one event (a JetStream redelivery racing
/// the first delivery, two catalogs) both find it new and both add it to the
/// counters. SQLite's `BEGIN IMMEDIATE` serializes writers already.
async fn lock_users(
    tx: &mut sqlx::AnyConnection,
    batches: &[UserBatch],
) -> Result<(), sqlx::Error> {
    use sha2::Digest;
    let mut keys: Vec<i64> = batches
        .iter()
        .map(|b| {
            let d = sha2::Sha256::digest(b.user_id.as_bytes());
            let mut k = [0u8; 8];
            k.copy_from_slice(&d[..8]);
            i64::from_be_bytes(k)
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(per_statement(1)) {
        let sql = format!(
            "SELECT pg_advisory_xact_lock(k) FROM (VALUES {}) AS t(k)",
            values(chunk.len(), 1)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(*k);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Which of `new_events` count a view: per viewer × title, an event that advances
/// playback (a `start`, when no watch time is required) once the watch time since the viewer's last counted view
/// reaches `th.view_min_watch_ms`, and no sooner than `th.view_window_ms` after that
/// view (by the events' times, clamped to arrival). So a thousand `start` events
/// with fresh session ids count nothing, and a viewer counts at most once a window.
async fn views(
    tx: &mut sqlx::AnyConnection,
    new_events: &[(usize, &Event)],
    groups: &HashMap<(&str, &str), Vec<usize>>,
    added: &[i64],
    th: Thresholds,
    received_at: i64,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut counted = vec![false; new_events.len()];
    // With no watch time required, a `start` counts at once.
    let qualifies = |i: usize| match th.view_min_watch_ms {
        0 => new_events[i].1.kind == EventKind::Start,
        _ => added[i] > 0,
    };
    let pairs: Vec<(&str, &str)> = groups
        .iter()
        .filter(|(_, idx)| idx.iter().any(|&i| qualifies(i)))
        .map(|(k, _)| *k)
        .collect();
    // The last counted view of each pair, and the watch time logged since.
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    for chunk in pairs.chunks(per_statement(2)) {
        let cond = (0..chunk.len())
            .map(|i| format!("(user_id = ${} AND content_id = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT user_id, content_id, MAX(CASE WHEN at < received_at THEN at ELSE received_at END) \
             FROM watch_events WHERE counted_view = 1 AND ({cond}) GROUP BY user_id, content_id"
        )));
        for (u, c) in chunk {
            q = q.bind(*u).bind(*c);
        }
        for r in q.fetch_all(&mut *tx).await? {
            last.insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
    }
    let mut since: HashMap<(String, String), i64> = HashMap::new();
    for chunk in pairs.chunks(per_statement(3)) {
        let cond = (0..chunk.len())
            .map(|i| {
                format!(
                    "(user_id = ${} AND content_id = ${} AND at > ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT user_id, content_id, CAST(SUM(watched_ms) AS BIGINT) FROM watch_events \
             WHERE {cond} GROUP BY user_id, content_id"
        )));
        for (u, c) in chunk {
            let bound = last
                .get(&(u.to_string(), c.to_string()))
                .copied()
                .unwrap_or(i64::MIN);
            q = q.bind(*u).bind(*c).bind(bound);
        }
        for r in q.fetch_all(&mut *tx).await? {
            since.insert(
                (r.try_get(0)?, r.try_get(1)?),
                r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
            );
        }
    }
    for (user, content) in pairs {
        let key = (user.to_string(), content.to_string());
        let mut last_view = last.get(&key).copied();
        let mut watched = since.get(&key).copied().unwrap_or(0);
        let mut idx = groups[&(user, content)].clone();
        idx.sort_by_key(|&i| (new_events[i].1.at, new_events[i].1.seq));
        for i in idx {
            let e = new_events[i].1;
            let t = e.at.min(received_at);
            watched += added[i];
            let open = last_view.is_none_or(|l| t.saturating_sub(l) >= th.view_window_ms);
            if open && qualifies(i) && watched >= th.view_min_watch_ms {
                counted[i] = true;
                last_view = Some(t);
                watched = 0;
            }
        }
    }
    Ok(counted)
}

/// Which history a delete removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteScope {
    All,
    /// One title.
    Content(String),
    /// Events that happened before this time (Unix ms).
    Before(i64),
}

/// What a delete removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// Events removed from the log.
    pub events: u64,
    /// Titles whose watch state was removed (others in scope were refolded from what
    /// is left).
    pub titles: u64,
}

/// An event as exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExportedEvent {
    pub content_id: String,
    pub session_id: String,
    pub seq: i64,
    pub kind: String,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub at: i64,
    pub received_at: i64,
    pub region: String,
}

const EVENT_COLUMNS: &str =
    "content_id, session_id, seq, kind, position_ms, duration_ms, at, received_at, region";

fn exported_from_row(r: &sqlx::any::AnyRow) -> Result<ExportedEvent, sqlx::Error> {
    Ok(ExportedEvent {
        content_id: r.try_get("content_id")?,
        session_id: r.try_get("session_id")?,
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        position_ms: r.try_get("position_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        at: r.try_get("at")?,
        received_at: r.try_get("received_at")?,
        region: r.try_get("region")?,
    })
}

impl Db {
    /// A viewer's state for one title, if they watched it.
    pub async fn watch_state(
        &self,
        user_id: &str,
        content_id: &str,
    ) -> Result<Option<WatchState>, DbError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM watch_state WHERE user_id = $1 AND content_id = $2"
        )))
        .bind(user_id)
        .bind(content_id)
        .fetch_optional(self.pool())
        .await
        .map_err(map_err)?
        .map(|r| state_from_row(&r).map(|(_, _, s)| s))
        .transpose()
        .map_err(map_err)
    }

    /// A viewer's titles, most recently watched first; `resumable` keeps only those
    /// with a resume point that are not hidden ("continue watching").
    pub async fn watch_history(
        &self,
        user_id: &str,
        resumable: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<(String, WatchState)>, DbError> {
        let filter = if resumable {
            " AND resume_ms IS NOT NULL AND hidden = 0"
        } else {
            ""
        };
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM watch_state WHERE user_id = $1{filter} \
             ORDER BY last_at DESC, content_id ASC LIMIT $2 OFFSET $3"
        )))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| state_from_row(r).map(|(_, c, s)| (c, s)))
        .collect::<Result<_, _>>()
        .map_err(map_err)
    }

    /// All of a viewer's titles, most recently watched first, read a thousand at a
    /// time.
    pub async fn whole_watch_history(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, WatchState)>, DbError> {
        const PAGE: i64 = 1000;
        let mut all = Vec::new();
        loop {
            let rows = self
                .watch_history(user_id, false, PAGE, all.len() as i64)
                .await?;
            let n = rows.len() as i64;
            all.extend(rows);
            if n < PAGE {
                return Ok(all);
            }
        }
    }

    /// Hides a title from a viewer's "continue watching", keeping its position
    /// (a newer event shows it again). Whether the viewer had watched it.
    pub async fn hide_continue(&self, user_id: &str, content_id: &str) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE watch_state SET hidden = 1 WHERE user_id = $1 AND content_id = $2")
                .bind(user_id)
                .bind(content_id)
                .execute(self.pool())
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    /// Every event of a viewer, oldest first.
    pub async fn export_history(&self, user_id: &str) -> Result<Vec<ExportedEvent>, DbError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM watch_events WHERE user_id = $1 \
             ORDER BY at, session_id, seq"
        )))
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(exported_from_row)
        .collect::<Result<_, _>>()
        .map_err(map_err)
    }

    /// Deletes a viewer's history in `scope` and everything derived from it, in one
    /// transaction: the events; their views and watch time in the counters; their
    /// trending weight; the watch state of the titles concerned (refolded from the
    /// events that remain, or removed); and the viewer's personal recommendations
    /// in every generation (they come back from the next batch, without the deleted
    /// events). Similar-title lists are aggregates over every viewer; they lose the
    /// deleted events at the next recommendation batch.
    pub async fn delete_history(
        &self,
        user_id: &str,
        scope: &DeleteScope,
        th: Thresholds,
        half_life_ms: i64,
    ) -> Result<Deleted, DbError> {
        let mut tx = begin_write(self).await.map_err(map_err)?;
        let deleted = self
            .delete_history_in(&mut tx, user_id, scope, th, half_life_ms)
            .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(deleted)
    }

    /// [`Db::delete_history`] inside a transaction of the caller's (account
    /// deletion deletes the history and the account together).
    pub(crate) async fn delete_history_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user_id: &str,
        scope: &DeleteScope,
        th: Thresholds,
        half_life_ms: i64,
    ) -> Result<Deleted, DbError> {
        let (filter, arg): (&str, Option<Arg>) = match scope {
            DeleteScope::All => ("", None),
            DeleteScope::Content(c) => (" AND content_id = $2", Some(Arg::Text(c.clone()))),
            DeleteScope::Before(t) => (" AND at < $2", Some(Arg::Int(*t))),
        };
        let bind = |sql: String| {
            let q = sqlx::query(AssertSqlSafe(sql)).bind(user_id.to_string());
            match &arg {
                None => q,
                Some(Arg::Text(t)) => q.bind(t.clone()),
                Some(Arg::Int(i)) => q.bind(*i),
            }
        };
        let rows = bind(format!(
            "SELECT content_id, region, counted_view, watched_ms, at, received_at FROM watch_events \
             WHERE user_id = $1{filter}"
        ))
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        let mut stats: HashMap<(String, String), (i64, i64)> = HashMap::new();
        let mut trend: HashMap<(String, String), f64> = HashMap::new();
        let mut titles: HashSet<String> = HashSet::new();
        for r in &rows {
            let content: String = r.try_get(0).map_err(map_err)?;
            let region: String = r.try_get(1).map_err(map_err)?;
            let view: i64 = r.try_get(2).map_err(map_err)?;
            let watched: i64 = r.try_get(3).map_err(map_err)?;
            let at: i64 = r.try_get(4).map_err(map_err)?;
            let received_at: i64 = r.try_get(5).map_err(map_err)?;
            let s = stats.entry((content.clone(), region.clone())).or_default();
            s.0 -= view;
            s.1 -= watched;
            if view != 0 {
                // Weighted as when it was added (the writer clamps `at` to arrival).
                let w = trending::view_log_weight(at.min(received_at), half_life_ms);
                for key in trending::region_keys(&region) {
                    let t = trend
                        .entry((content.clone(), key.to_string()))
                        .or_insert(f64::NEG_INFINITY);
                    *t = trending::log_add(*t, w);
                }
            }
            titles.insert(content);
        }
        let events = bind(format!(
            "DELETE FROM watch_events WHERE user_id = $1{filter}"
        ))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        let mut removed = 0u64;
        match scope {
            DeleteScope::All => {
                removed = sqlx::query("DELETE FROM watch_state WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
            }
            DeleteScope::Content(c) => {
                removed =
                    sqlx::query("DELETE FROM watch_state WHERE user_id = $1 AND content_id = $2")
                        .bind(user_id)
                        .bind(c)
                        .execute(&mut **tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
            }
            DeleteScope::Before(_) => {
                for content in &titles {
                    let left = sqlx::query(AssertSqlSafe(format!(
                        "SELECT {EVENT_COLUMNS} FROM watch_events \
                         WHERE user_id = $1 AND content_id = $2"
                    )))
                    .bind(user_id)
                    .bind(content)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(map_err)?;
                    let mut events = Vec::with_capacity(left.len());
                    let mut region = String::new();
                    let mut last = i64::MIN;
                    for r in &left {
                        let e = exported_from_row(r).map_err(map_err)?;
                        if e.at >= last {
                            last = e.at;
                            region = e.region.clone();
                        }
                        events.push(Event {
                            content_id: e.content_id,
                            session_id: e.session_id,
                            seq: e.seq,
                            position_ms: e.position_ms,
                            duration_ms: e.duration_ms,
                            kind: EventKind::parse(&e.kind).unwrap_or(EventKind::Progress),
                            at: e.at,
                        });
                    }
                    let refs: Vec<&Event> = events.iter().collect();
                    match fold(None, &refs, &region, th) {
                        Some((state, _)) => {
                            upsert_states(tx, &[(user_id, content, &state)])
                                .await
                                .map_err(map_err)?;
                        }
                        None => {
                            removed += sqlx::query(
                                "DELETE FROM watch_state WHERE user_id = $1 AND content_id = $2",
                            )
                            .bind(user_id)
                            .bind(content)
                            .execute(&mut **tx)
                            .await
                            .map_err(map_err)?
                            .rows_affected();
                        }
                    }
                }
            }
        }
        apply_stats(tx, &stats).await.map_err(map_err)?;
        trending::apply(tx, self.backend(), &trend, false)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM recommendations WHERE subject = $1")
            .bind(user_subject(user_id))
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO history_erasures (user_id, at) VALUES ($1, $2)")
            .bind(user_id)
            .bind(now_ms())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(Deleted {
            events,
            titles: removed,
        })
    }

    /// Views and watch time of a title per region.
    pub async fn content_stats(
        &self,
        content_id: &str,
    ) -> Result<Vec<(String, i64, i64)>, DbError> {
        sqlx::query(
            "SELECT region, views, watch_ms FROM content_stats WHERE content_id = $1 ORDER BY region",
        )
        .bind(content_id)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)
    }
}

enum Arg {
    Text(String),
    Int(i64),
}
