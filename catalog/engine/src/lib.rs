//! The recommendation batch over Parquet snapshots, on Apache DataFusion in this
//! process (`--engine datafusion`) or on an Apache Ballista cluster
//! (`--engine ballista://HOST:PORT`), and the Ballista scheduler and executor
//! processes the `keyframe` binary runs (`keyframe ballista …`).
//!
//! * [`snapshot`] exports the folded history as Parquet files in the store, with a
//!   manifest naming the one complete snapshot readers use;
//! * [`plan`] is the batch as two SQL plans over it (the same definitions as the
//!   local engine, so the same lists);
//! * [`run`] runs them on the chosen engine and writes the result as one new
//!   generation, swapped in as the other engines do
//!   (`keyframe_catalog::recommend::GenerationWriter`);
//! * [`cluster`] starts a Ballista scheduler or executor from the upstream crates;
//! * [`location`] maps a store URL to what DataFusion reads and the object store.
//!
//! This crate is kept apart from `keyframe-catalog` so that DataFusion's and
//! Ballista's compile time stays out of the other crates' test binaries.

pub mod cluster;
pub mod location;
pub mod plan;
pub mod snapshot;

use std::collections::HashSet;
use std::time::Instant;

use ballista::prelude::SessionContextExt;
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store_df::ObjectStoreExt;

use keyframe_catalog::recommend::{GenerationWriter, RecommendReport};
use keyframe_catalog::{Config, Db, DbError};

pub use location::Location;
pub use snapshot::Manifest;

/// Why a snapshot engine's run failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("snapshot store: {0}")]
    Store(String),
    #[error("query: {0}")]
    Plan(String),
    #[error("no complete snapshot in the store (run `keyframe recommend --snapshot` first)")]
    NoSnapshot,
    #[error("{0}")]
    Engine(String),
}

/// Where the snapshot plans run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    DataFusion,
    /// A Ballista scheduler, `ballista://HOST:PORT`.
    Ballista(String),
}

impl Engine {
    /// The snapshot engine `name` names; `None` for `local` and `sql` (and
    /// anything else, which configuration checks refuse).
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "datafusion" => Some(Engine::DataFusion),
            n if n.starts_with("ballista://") => Some(Engine::Ballista(n.to_string())),
            _ => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Engine::DataFusion => "datafusion",
            Engine::Ballista(_) => "ballista",
        }
    }
}

/// A session on `engine` that reads `loc` (local files, and S3 with the store's options).
/// `memory_limit` bytes (0: none) bound what this process's operators hold (sorts and
/// aggregates spill past it); a Ballista client runs no operators.
pub async fn context(
    engine: &Engine,
    loc: &Location,
    memory_limit: u64,
) -> Result<SessionContext, EngineError> {
    let mut config = loc.session_config()?;
    if memory_limit > 0 {
        plan_within(&mut config, memory_limit);
        if *engine == Engine::DataFusion {
            // Ballista's 16 partitions (for spreading over executors) would run
            // here all at once, each sort with its share of one pool: one per core.
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            config = config.with_target_partitions(cores);
        }
    }
    let runtime = with_memory_limit(
        RuntimeEnvBuilder::new().with_object_store_registry(location::registry(&config)),
        memory_limit,
    )
    .build_arc()
    .map_err(plan::plan_err)?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    match engine {
        Engine::DataFusion => Ok(SessionContext::new_with_state(state)),
        Engine::Ballista(url) => SessionContext::remote_with_state(url, state)
            .await
            .map_err(|e| EngineError::Engine(format!("ballista scheduler {url}: {e}"))),
    }
}

/// Plans that can keep within `limit` bytes: sort-merge joins, which spill, instead of
/// hash joins, whose build side cannot; and a sort's merge reservation (held by every
/// sort from its start, 10 MB by default) of at most 1/64 of the limit, so that the
/// many sorts of the batch's plans do not fill the pool before any of them spills.
/// On Ballista these settings travel with the job, so the client sets them for its
/// executors (whose `--memory-limit` sizes each one's pool).
fn plan_within(config: &mut datafusion::prelude::SessionConfig, limit: u64) {
    let options = config.options_mut();
    options.optimizer.prefer_hash_join = false;
    options.execution.sort_spill_reservation_bytes =
        usize::try_from((limit / 64).clamp(64 * 1024, 10 * 1024 * 1024)).unwrap_or(64 * 1024);
}

/// `builder` with a memory pool of `limit` bytes shared fairly by the operators
/// that can spill (DataFusion's `FairSpillPool`, tracked: an error for want of
/// memory names the largest consumers); unchanged (unbounded) for 0.
pub fn with_memory_limit(builder: RuntimeEnvBuilder, limit: u64) -> RuntimeEnvBuilder {
    match usize::try_from(limit) {
        Ok(0) => builder,
        // Tracked, so that running out names the five largest consumers.
        Ok(n) => builder.with_memory_pool(std::sync::Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(n),
            const { std::num::NonZeroUsize::new(5).unwrap() },
        ))),
        Err(_) => builder,
    }
}

/// Runs the batch on `engine` over the snapshot the manifest names (exporting a new
/// one first when `export` is set) and swaps its generation in.
pub async fn run(
    db: &Db,
    config: &Config,
    loc: &Location,
    engine: &Engine,
    export: bool,
) -> Result<RecommendReport, EngineError> {
    let started = Instant::now();
    let p = keyframe_catalog::recommend::params(config);
    let m = if export {
        snapshot::export(db, loc).await?
    } else {
        snapshot::current(loc)
            .await?
            .ok_or(EngineError::NoSnapshot)?
    };
    let snapshot_ms = ms(started);

    let t = Instant::now();
    let ctx = context(engine, loc, config.recommend_memory_limit.bytes()).await?;
    plan::register_snapshot(&ctx, loc, &m)?;
    let on = |e: datafusion::error::DataFusionError| match engine {
        Engine::DataFusion => plan::plan_err(e),
        Engine::Ballista(url) => EngineError::Engine(format!(
            "ballista {url}: {}",
            e.to_string().lines().next().unwrap_or_default()
        )),
    };
    let sims = ctx
        .sql(&plan::similar_sql(&p))
        .await
        .map_err(on)?
        .collect()
        .await
        .map_err(on)?
        .iter()
        .map(|b| conform(b, &plan::similar_schema()))
        .collect::<Result<Vec<_>, _>>()?;

    // The similar lists, beside the snapshot, for the picks plan to join.
    let store = loc.store()?;
    let run_key = format!(
        "{}/runs/{}/similar.parquet",
        m.folder(),
        uuid::Uuid::new_v4().simple()
    );
    let mut w = snapshot::writer(&store, loc, &run_key, plan::similar_schema())?;
    for b in &sims {
        w.write(b)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
    }
    w.close()
        .await
        .map_err(|e| EngineError::Store(e.to_string()))?;
    let result = async {
        plan::register(
            &ctx,
            "similar",
            &[loc.url(&run_key)],
            plan::similar_schema(),
        )?;
        let mut picks = ctx
            .sql(&plan::picks_sql(&p))
            .await
            .map_err(on)?
            .execute_stream()
            .await
            .map_err(on)?;

        let write_started = Instant::now();
        let mut out = GenerationWriter::begin(db, started).await?;
        let mut titles = 0u64;
        let mut kept = 0u64;
        for b in &sims {
            let (i, r, j, s) = (text(b, 0)?, int(b, 1)?, text(b, 2)?, float(b, 3)?);
            for x in 0..b.num_rows() {
                if r.value(x) == 1 {
                    titles += 1;
                }
                kept += 1;
                out.similar(i.value(x), r.value(x), j.value(x).to_string(), s.value(x))
                    .await?;
            }
        }
        let mut with_picks: HashSet<String> = HashSet::new();
        while let Some(b) = picks.try_next().await.map_err(on)? {
            let b = conform(&b, &plan::picks_schema())?;
            let (u, r, j, s, seed) = (
                text(&b, 0)?,
                int(&b, 1)?,
                text(&b, 2)?,
                float(&b, 3)?,
                text(&b, 4)?,
            );
            for x in 0..b.num_rows() {
                if r.value(x) == 1 {
                    with_picks.insert(u.value(x).to_string());
                }
                out.pick(
                    u.value(x),
                    r.value(x),
                    j.value(x).to_string(),
                    s.value(x),
                    seed.value(x).to_string(),
                )
                .await?;
            }
        }
        let report = RecommendReport {
            engine: engine.label().into(),
            titles,
            // Only the kept (top-K) pairs are known here, as with the `sql` engine.
            pairs: kept / 2,
            users: m.users,
            users_with_picks: with_picks.len() as u64,
            watched: m.rows,
            snapshot_ms,
            compute_ms: ms(t),
            ..RecommendReport::default()
        };
        Ok::<_, EngineError>(out.finish(report, m.snapshot_at, write_started).await?)
    }
    .await;
    if let Err(e) = store.delete(&loc.path(&run_key)).await {
        tracing::warn!(error = %e, "deleting the run's similar lists failed");
    }
    result
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `b` with its columns cast to `schema`'s types (strings may come back as views).
fn conform(b: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, EngineError> {
    let cols = schema
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(plan::plan_err)?;
    RecordBatch::try_new(schema.clone(), cols).map_err(plan::plan_err)
}

fn column<T: 'static>(b: &RecordBatch, i: usize) -> Result<&T, EngineError> {
    b.column(i).as_any().downcast_ref::<T>().ok_or_else(|| {
        EngineError::Plan(format!(
            "column {i} is {:?}, not as expected",
            b.column(i).data_type()
        ))
    })
}

fn text(b: &RecordBatch, i: usize) -> Result<&StringArray, EngineError> {
    column(b, i)
}

fn int(b: &RecordBatch, i: usize) -> Result<&Int64Array, EngineError> {
    column(b, i)
}

fn float(b: &RecordBatch, i: usize) -> Result<&Float64Array, EngineError> {
    column(b, i)
}
