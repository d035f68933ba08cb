//! Synthetic watch history for tests and benchmarks: N viewers, M titles with
//! zipf popularity (and zipf viewer activity, so some viewers are heavy), and
//! sessions of progress events. Deterministic for a given seed.
//!
//! [`populate`] writes the titles and viewers (rows only, no media); [`sessions`]
//! yields the events one session at a time, so any number of them can be streamed
//! into [`load`] (which folds them through the same code as the API's writer), or
//! into [`load_state`], which runs the same fold in memory and writes only the
//! per-(viewer, title) state — what the recommendation batch reads — for histories
//! too large to push through the event log in a benchmark's time.

use std::collections::HashMap;
use std::time::Instant;

use sqlx::AssertSqlSafe;

use crate::db::{map_err, now_ms, Db, DbError};
use crate::history::{fold, Event, EventKind, Thresholds, UserBatch, WatchState};

/// The shape of the data.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub users: usize,
    pub titles: usize,
    /// Events to generate (whole sessions, so slightly more).
    pub events: u64,
    /// Zipf exponent of title popularity. Default 1.0.
    pub title_skew: f64,
    /// Zipf exponent of viewer activity. Default 0.6.
    pub user_skew: f64,
    /// Mean events per session. Default 20.
    pub events_per_session: u32,
    /// Regions viewers are in; a tenth of the titles is licensed to the first one
    /// only, the rest everywhere (`*`).
    pub regions: Vec<String>,
    pub seed: u64,
    /// Sessions start within the `days` before `until_ms`.
    pub days: u32,
    /// The end of the generated period, Unix ms; 0 = now. Default 0.
    pub until_ms: i64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            users: 1000,
            titles: 200,
            events: 100_000,
            title_skew: 1.0,
            user_skew: 0.6,
            events_per_session: 20,
            regions: vec!["eu".into(), "us".into()],
            seed: 7,
            days: 30,
            until_ms: 0,
        }
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf = Vec::with_capacity(n.max(1));
        for k in 0..n.max(1) {
            acc += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The ids [`populate`] created.
#[derive(Clone, Debug, Default)]
pub struct Population {
    pub titles: Vec<String>,
    pub users: Vec<String>,
    /// Each viewer's region (index into `SynthConfig::regions`).
    pub user_regions: Vec<usize>,
}

/// Creates `cfg.titles` titles and `cfg.users` viewers (ids `synth-t…`, `synth-u…`,
/// usernames `synth-u…`, an unusable password hash).
pub async fn populate(db: &Db, cfg: &SynthConfig) -> Result<Population, DbError> {
    let now = now_ms();
    let mut rng = Rng::new(cfg.seed ^ 0x5EED);
    let pop = Population {
        titles: (0..cfg.titles).map(|i| format!("synth-t{i:07}")).collect(),
        users: (0..cfg.users).map(|i| format!("synth-u{i:08}")).collect(),
        user_regions: (0..cfg.users)
            .map(|_| rng.below(cfg.regions.len().max(1) as u64) as usize)
            .collect(),
    };
    let mut tx = crate::db::batch::begin_write(db).await.map_err(map_err)?;
    for (n, chunk) in pop.titles.chunks(500).enumerate() {
        let sql = format!(
            "INSERT INTO content (id, title, description, kind, created_at, updated_at) VALUES {}",
            crate::db::batch::values(chunk.len(), 6)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (i, id) in chunk.iter().enumerate() {
            q = q
                .bind(id)
                .bind(format!("Synthetic title {}", n * 500 + i))
                .bind("")
                .bind("video")
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
        let sql = format!(
            "INSERT INTO rights (content_id, region, available_from, available_until) VALUES {}",
            crate::db::batch::values(chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (i, id) in chunk.iter().enumerate() {
            let region = if (n * 500 + i) % 10 == 9 {
                cfg.regions.first().cloned().unwrap_or_else(|| "*".into())
            } else {
                "*".into()
            };
            q = q.bind(id).bind(region).bind(None::<i64>).bind(None::<i64>);
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    for chunk in pop.users.chunks(500) {
        let sql = format!(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES {}",
            crate::db::batch::values(chunk.len(), 6)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q
                .bind(id)
                .bind(id)
                .bind(format!("{id}@synth.invalid"))
                .bind("!synthetic")
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(pop)
}

/// The sessions of the synthetic history, one [`UserBatch`] each, until at least
/// `cfg.events` events were produced.
pub fn sessions<'a>(
    cfg: &'a SynthConfig,
    pop: &'a Population,
) -> impl Iterator<Item = UserBatch> + 'a {
    let mut rng = Rng::new(cfg.seed);
    let titles = Zipf::new(pop.titles.len(), cfg.title_skew);
    let users = Zipf::new(pop.users.len(), cfg.user_skew);
    // Activity rank is not id order: a fixed shuffle of viewers.
    let mut by_rank: Vec<usize> = (0..pop.users.len()).collect();
    for i in (1..by_rank.len()).rev() {
        by_rank.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let now = if cfg.until_ms > 0 {
        cfg.until_ms
    } else {
        now_ms()
    };
    let span = i64::from(cfg.days.max(1)) * 86_400_000;
    let mut produced = 0u64;
    let mut session = 0u64;
    std::iter::from_fn(move || {
        if produced >= cfg.events || pop.users.is_empty() || pop.titles.is_empty() {
            return None;
        }
        let u = by_rank[users.sample(&mut rng)];
        let t = titles.sample(&mut rng);
        let duration: i64 = 1_200_000 + rng.below(6_000_000) as i64;
        let n = 1 + rng.below(u64::from(cfg.events_per_session.max(1)) * 2 - 1);
        let start_at = now - span + rng.below(span as u64) as i64;
        let step = 60_000;
        let mut events = Vec::with_capacity(n as usize);
        let mut pos = 0i64;
        for seq in 0..n {
            let last = seq + 1 == n;
            let kind = if seq == 0 {
                EventKind::Start
            } else if pos >= duration {
                EventKind::Complete
            } else if last {
                EventKind::Stop
            } else {
                EventKind::Progress
            };
            events.push(Event {
                content_id: pop.titles[t].clone(),
                session_id: format!("synth-s{session}"),
                seq: seq as i64,
                position_ms: pos.min(duration),
                duration_ms: duration,
                kind,
                at: start_at + seq as i64 * step,
            });
            if kind == EventKind::Complete {
                break;
            }
            pos += step;
        }
        session += 1;
        produced += events.len() as u64;
        Some(UserBatch {
            user_id: pop.users[u].clone(),
            region: cfg
                .regions
                .get(pop.user_regions[u])
                .cloned()
                .unwrap_or_default(),
            events,
        })
    })
}

/// What [`load`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loaded {
    pub events: u64,
    pub seconds: f64,
}

/// Folds `batches` into the database through the writer's code path, committing
/// about `per_commit` events per transaction.
pub async fn load(
    db: &Db,
    batches: impl Iterator<Item = UserBatch>,
    per_commit: usize,
    th: Thresholds,
    half_life_ms: i64,
) -> Result<Loaded, DbError> {
    let started = Instant::now();
    let mut pending: Vec<UserBatch> = Vec::new();
    let mut n = 0usize;
    let mut events = 0u64;
    for b in batches {
        n += b.events.len();
        pending.push(b);
        if n >= per_commit {
            for o in db.record_history(&pending, th, half_life_ms).await? {
                events += o.accepted as u64;
            }
            pending.clear();
            n = 0;
        }
    }
    if !pending.is_empty() {
        for o in db.record_history(&pending, th, half_life_ms).await? {
            events += o.accepted as u64;
        }
    }
    Ok(Loaded {
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Folds `batches` in memory with the history fold ([`fold::fold`], the code the
/// writer runs) and writes the resulting `watch_state` rows, `per_commit` rows per
/// transaction; no event log, counters or trending. For a fresh database: the
/// state rows are inserted, not merged. Memory: one state per viewer-title pair.
pub async fn load_state(
    db: &Db,
    batches: impl Iterator<Item = UserBatch>,
    per_commit: usize,
    th: Thresholds,
) -> Result<Loaded, DbError> {
    let started = Instant::now();
    let mut states: HashMap<(String, String), WatchState> = HashMap::new();
    let mut events = 0u64;
    for b in batches {
        events += b.events.len() as u64;
        let mut by_title: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in &b.events {
            by_title.entry(e.content_id.as_str()).or_default().push(e);
        }
        for (title, list) in by_title {
            let key = (b.user_id.clone(), title.to_string());
            let prev = states.remove(&key);
            if let Some((s, _)) = fold::fold(prev, &list, &b.region, th) {
                states.insert(key, s);
            }
        }
    }
    const COLS: usize = 14;
    let per_statement = crate::db::batch::per_statement(COLS);
    let rows: Vec<((String, String), WatchState)> = states.into_iter().collect();
    for commit in rows.chunks(per_commit.max(1)) {
        let mut tx = crate::db::batch::begin_write(db).await.map_err(map_err)?;
        for chunk in commit.chunks(per_statement) {
            let sql = format!(
                "INSERT INTO watch_state ({}) VALUES {}",
                crate::history::store::STATE_COLUMNS,
                crate::db::batch::values(chunk.len(), COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((user, content), s) in chunk {
                q = crate::history::store::bind_state(q, user, content, s);
            }
            q.execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
    }
    Ok(Loaded {
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks() {
        let z = Zipf::new(100, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        // P(rank 0) = 1 / H(100) ≈ 0.193; rank 1 about half of that.
        assert!((18_000..21_000).contains(&counts[0]), "{}", counts[0]);
        assert!((8_500..10_800).contains(&counts[1]), "{}", counts[1]);
        assert!(counts[99] < 500);
    }

    #[test]
    fn sessions_are_deterministic_and_well_formed() {
        let cfg = SynthConfig {
            events: 2_000,
            until_ms: 1_700_000_000_000,
            ..SynthConfig::default()
        };
        let pop = Population {
            titles: (0..50).map(|i| format!("t{i}")).collect(),
            users: (0..20).map(|i| format!("u{i}")).collect(),
            user_regions: vec![0; 20],
        };
        let a: Vec<UserBatch> = sessions(&cfg, &pop).collect();
        let b: Vec<UserBatch> = sessions(&cfg, &pop).collect();
        assert_eq!(a.len(), b.len());
        let total: usize = a.iter().map(|s| s.events.len()).sum();
        assert!(total >= 2_000);
        for s in &a {
            assert_eq!(s.events[0].kind, EventKind::Start);
            assert!(s
                .events
                .windows(2)
                .all(|w| w[0].seq + 1 == w[1].seq && w[0].at < w[1].at));
        }
        assert_eq!(a[3].events, b[3].events);
    }
}
