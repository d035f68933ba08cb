//! Parquet snapshots of the folded history (`keyframe recommend --snapshot`).
//!
//! A snapshot is, under `recommend-snapshots/ID/` in the store:
//!
//! * `watch/part-NN.parquet` — every (viewer, title) state row (`user_id`,
//!   `content_id`, `region`, `last_at`), split into [`PARTS`] files by a hash of the
//!   viewer, so one viewer's rows are in one file;
//! * `available.parquet` — `(region, content_id)` for every title open at the
//!   snapshot time in each viewers' region (`""`: viewers of unknown region).
//!
//! then `recommend-snapshots/MANIFEST.json` naming it, written LAST with one PUT
//! (atomic on local disk and on S3). Readers trust only the snapshot the manifest
//! names: files of an export that died half-way are never read, and are deleted by
//! a later export. IDs sort by time; an export keeps the newest two snapshots (a
//! batch still reading the previous one is not pulled from under it).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::TryStreamExt;
use object_store_df::buffered::BufWriter;
use object_store_df::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use keyframe_catalog::Db;

use crate::location::Location;
use crate::EngineError;

/// The folder of every snapshot in the store.
pub const PREFIX: &str = "recommend-snapshots";
/// The object naming the current complete snapshot.
pub const MANIFEST: &str = "recommend-snapshots/MANIFEST.json";
/// Files of the `watch` table per snapshot (by hash of the viewer).
pub const PARTS: usize = 8;
/// Rows per Arrow batch handed to a file writer.
const BATCH_ROWS: usize = 32_768;
/// Rows per Parquet row group (bounds the writers' memory).
const ROW_GROUP_ROWS: usize = 131_072;

/// What the manifest says about one complete snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// When the history was read, Unix ms (availability is as of then).
    pub snapshot_at: i64,
    /// Keys of the `watch` table's files.
    pub watch: Vec<String>,
    /// Key of the `available` table's file.
    pub available: String,
    /// Viewer-title rows.
    pub rows: u64,
    /// Distinct viewers.
    pub users: u64,
}

impl Manifest {
    /// The folder of this snapshot.
    pub fn folder(&self) -> String {
        format!("{PREFIX}/{}", self.id)
    }
}

/// The `watch` table's schema.
pub fn watch_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("content_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("last_at", DataType::Int64, false),
    ]))
}

/// The `available` table's schema.
pub fn available_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("content_id", DataType::Utf8, false),
    ]))
}

/// A Parquet writer onto one object.
pub(crate) fn writer(
    store: &Arc<dyn ObjectStore>,
    loc: &Location,
    key: &str,
    schema: SchemaRef,
) -> Result<AsyncArrowWriter<BufWriter>, EngineError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    AsyncArrowWriter::try_new(
        BufWriter::new(store.clone(), loc.path(key)),
        schema,
        Some(props),
    )
    .map_err(|e| EngineError::Store(format!("{key}: {e}")))
}

/// One partition's rows being gathered into a batch.
struct Part {
    user: StringBuilder,
    content: StringBuilder,
    region: StringBuilder,
    last_at: Int64Builder,
    len: usize,
}

impl Part {
    fn new() -> Part {
        Part {
            user: StringBuilder::new(),
            content: StringBuilder::new(),
            region: StringBuilder::new(),
            last_at: Int64Builder::new(),
            len: 0,
        }
    }

    fn batch(&mut self) -> Result<RecordBatch, EngineError> {
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.user.finish()),
            Arc::new(self.content.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.last_at.finish()),
        ];
        RecordBatch::try_new(watch_schema(), cols).map_err(|e| EngineError::Plan(e.to_string()))
    }
}

/// A stable hash of a viewer id (FNV-1a), for partitioning.
fn part_of(user: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % PARTS as u64) as usize
}

/// Exports the folded history of `db` as a new snapshot and makes the manifest name it.
pub async fn export(db: &Db, loc: &Location) -> Result<Manifest, EngineError> {
    let store = loc.store()?;
    let snapshot_at = keyframe_catalog::db::now_ms();
    let id = format!(
        "{snapshot_at:013}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let folder = format!("{PREFIX}/{id}");
    let keys: Vec<String> = (0..PARTS)
        .map(|i| format!("{folder}/watch/part-{i:02}.parquet"))
        .collect();
    let mut writers = keys
        .iter()
        .map(|k| writer(&store, loc, k, watch_schema()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts: Vec<Part> = (0..PARTS).map(|_| Part::new()).collect();
    let mut users: HashSet<String> = HashSet::new();
    let mut regions: BTreeSet<String> = BTreeSet::new();
    let mut rows = 0u64;
    let mut stream = keyframe_catalog::recommend::watch_rows(db);
    while let Some(r) = stream.try_next().await.map_err(EngineError::Db)? {
        rows += 1;
        let i = part_of(&r.user_id);
        let p = &mut parts[i];
        p.user.append_value(&r.user_id);
        p.content.append_value(&r.content_id);
        p.region.append_value(&r.region);
        p.last_at.append_value(r.last_at);
        p.len += 1;
        if !users.contains(&r.user_id) {
            users.insert(r.user_id);
        }
        if !regions.contains(&r.region) {
            regions.insert(r.region);
        }
        if p.len >= BATCH_ROWS {
            let batch = p.batch()?;
            writers[i].write(&batch).await.map_err(store_err)?;
        }
    }
    drop(stream);
    for (p, w) in parts.iter_mut().zip(writers.iter_mut()) {
        if p.len > 0 {
            let batch = p.batch()?;
            w.write(&batch).await.map_err(store_err)?;
        }
    }
    for w in writers {
        w.close().await.map_err(store_err)?;
    }

    let regions: Vec<String> = regions.into_iter().collect();
    let open = keyframe_catalog::recommend::available_pairs(db, &regions, snapshot_at)
        .await
        .map_err(EngineError::Db)?;
    let mut region = StringBuilder::new();
    let mut content = StringBuilder::new();
    for (r, c) in &open {
        region.append_value(r);
        content.append_value(c);
    }
    let batch = RecordBatch::try_new(
        available_schema(),
        vec![Arc::new(region.finish()), Arc::new(content.finish())],
    )
    .map_err(|e| EngineError::Plan(e.to_string()))?;
    let available = format!("{folder}/available.parquet");
    let mut w = writer(&store, loc, &available, available_schema())?;
    w.write(&batch).await.map_err(store_err)?;
    w.close().await.map_err(store_err)?;

    let manifest = Manifest {
        id,
        snapshot_at,
        watch: keys,
        available,
        rows,
        users: users.len() as u64,
    };
    let body =
        serde_json::to_vec_pretty(&manifest).map_err(|e| EngineError::Store(e.to_string()))?;
    store
        .put(&loc.path(MANIFEST), PutPayload::from(body))
        .await
        .map_err(store_err)?;
    prune(&store, loc, &manifest.id).await;
    Ok(manifest)
}

fn store_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Store(e.to_string())
}

/// The snapshot the manifest names, if any.
pub async fn current(loc: &Location) -> Result<Option<Manifest>, EngineError> {
    let store = loc.store()?;
    match store.get(&loc.path(MANIFEST)).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(store_err)?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| EngineError::Store(format!("{MANIFEST}: {e}")))
        }
        Err(object_store_df::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}

/// Deletes every snapshot folder older than the two newest (`keep` is the newest).
/// Failures only leave garbage behind; they are logged.
async fn prune(store: &Arc<dyn ObjectStore>, loc: &Location, keep: &str) {
    let listed = match store.list_with_delimiter(Some(&loc.path(PREFIX))).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "listing old snapshots failed");
            return;
        }
    };
    let mut ids: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .filter(|id| id.as_str() <= keep)
        .collect();
    ids.sort();
    let old = ids.len().saturating_sub(2);
    for id in &ids[..old] {
        let objects: Vec<_> = match store
            .list(Some(&loc.path(&format!("{PREFIX}/{id}"))))
            .try_collect()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, snapshot = %id, "listing an old snapshot failed");
                continue;
            }
        };
        for o in objects {
            if let Err(e) = store.delete(&o.location).await {
                tracing::warn!(error = %e, path = %o.location, "deleting an old snapshot failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(part_of("synth-u00000001"), part_of("synth-u00000001"));
        let used: HashSet<usize> = (0..100).map(|i| part_of(&format!("u{i}"))).collect();
        assert_eq!(used.len(), PARTS);
    }
}
