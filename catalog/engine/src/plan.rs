//! The recommendation batch as two DataFusion SQL plans over a snapshot, run in
//! process or on a Ballista cluster (the same plans either way).
//!
//! The definitions are those of the local engine (`keyframe_catalog::recommend::covisit`)
//! and of the `sql` engine, so all give the same lists:
//!
//! * a viewer's titles rank by `last_at` desc, then id; the first
//!   `max_titles_per_user` count for similarity, the first `seed_titles` seed picks;
//! * similarity is `co(a, b) / sqrt(n(a) · n(b))`, each title keeps its top K by
//!   similarity, ties by the smaller id (byte order);
//! * a pick's score is the sum of `sim(seed, y)` over the viewer's seeds, titles
//!   watched or not available in the viewer's region (that of their most recent
//!   title) skipped; its reason is the seed that gave most (ties: the more recent);
//!   a viewer keeps the top `per_user` by score, ties by id.
//!
//! The first plan's result (titles × K rows) comes back to this process, is written
//! next to the snapshot as `similar.parquet`, and the second plan joins it.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use keyframe_catalog::recommend::covisit::Params;

use crate::snapshot::{available_schema, watch_schema, Manifest};
use crate::EngineError;

/// Viewers' titles, most recent first (as the local engine orders them).
const RANKED: &str = "ranked AS ( \
    SELECT user_id, content_id, region, \
           row_number() OVER (PARTITION BY user_id ORDER BY last_at DESC, content_id) AS rn \
    FROM watch)";

/// Item-item cosine of co-counts, top K per title: `(i, r, j, s)`.
pub fn similar_sql(p: &Params) -> String {
    format!(
        "WITH {RANKED}, \
         capped AS (SELECT user_id, content_id FROM ranked WHERE rn <= {cap}), \
         n AS (SELECT content_id, CAST(count(*) AS DOUBLE) AS n FROM capped GROUP BY content_id), \
         co AS (SELECT a.content_id AS i, b.content_id AS j, CAST(count(*) AS DOUBLE) AS c \
                FROM capped a JOIN capped b \
                  ON a.user_id = b.user_id AND a.content_id <> b.content_id \
                GROUP BY a.content_id, b.content_id), \
         sim AS (SELECT co.i, co.j, co.c / sqrt(ni.n * nj.n) AS s \
                 FROM co JOIN n ni ON ni.content_id = co.i JOIN n nj ON nj.content_id = co.j), \
         top AS (SELECT i, j, s, row_number() OVER (PARTITION BY i ORDER BY s DESC, j) AS r \
                 FROM sim) \
         SELECT i, CAST(r AS BIGINT) AS r, j, s FROM top WHERE r <= {k}",
        cap = p.max_titles_per_user,
        k = p.top_k
    )
}

/// Personal picks from the `similar` table: `(user_id, r, j, score, seed)`.
pub fn picks_sql(p: &Params) -> String {
    format!(
        "WITH {RANKED}, \
         seeds AS (SELECT user_id, content_id AS seed, rn FROM ranked WHERE rn <= {seeds}), \
         uregion AS (SELECT user_id, region FROM ranked WHERE rn = 1), \
         cand AS (SELECT s.user_id, m.j, m.s AS score, s.seed, s.rn \
                  FROM seeds s JOIN similar m ON m.i = s.seed), \
         ok AS (SELECT c.user_id, c.j, c.score, c.seed, c.rn FROM cand c \
                JOIN uregion u ON u.user_id = c.user_id \
                JOIN available a ON a.region = u.region AND a.content_id = c.j \
                LEFT JOIN watch w ON w.user_id = c.user_id AND w.content_id = c.j \
                WHERE w.user_id IS NULL), \
         agg AS (SELECT user_id, j, sum(score) AS score FROM ok GROUP BY user_id, j), \
         best AS (SELECT user_id, j, seed FROM ( \
                    SELECT user_id, j, seed, row_number() OVER \
                      (PARTITION BY user_id, j ORDER BY score DESC, rn ASC) AS q FROM ok) AS x \
                  WHERE q = 1), \
         picks AS (SELECT a.user_id, a.j, a.score, b.seed, row_number() OVER \
                     (PARTITION BY a.user_id ORDER BY a.score DESC, a.j) AS r \
                   FROM agg a JOIN best b ON b.user_id = a.user_id AND b.j = a.j) \
         SELECT user_id, CAST(r AS BIGINT) AS r, j, score, seed FROM picks WHERE r <= {per_user}",
        seeds = p.seed_titles,
        per_user = p.per_user
    )
}

/// The `similar` table's schema (the first plan's output).
pub fn similar_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("i", DataType::Utf8, false),
        Field::new("r", DataType::Int64, false),
        Field::new("j", DataType::Utf8, false),
        Field::new("s", DataType::Float64, false),
    ]))
}

/// The picks plan's output: `(user_id, r, j, score, seed)`.
pub fn picks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("r", DataType::Int64, false),
        Field::new("j", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("seed", DataType::Utf8, false),
    ]))
}

/// Registers Parquet files (exactly these, no listing) as table `name`.
pub fn register(
    ctx: &SessionContext,
    name: &str,
    urls: &[String],
    schema: SchemaRef,
) -> Result<(), EngineError> {
    let paths = urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(plan_err)?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(paths)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(plan_err)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(plan_err)?;
    Ok(())
}

/// Registers the snapshot's `watch` and `available` tables.
pub fn register_snapshot(
    ctx: &SessionContext,
    loc: &crate::location::Location,
    m: &Manifest,
) -> Result<(), EngineError> {
    let watch: Vec<String> = m.watch.iter().map(|k| loc.url(k)).collect();
    register(ctx, "watch", &watch, watch_schema())?;
    register(
        ctx,
        "available",
        &[loc.url(&m.available)],
        available_schema(),
    )
}

pub(crate) fn plan_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(e.to_string())
}
