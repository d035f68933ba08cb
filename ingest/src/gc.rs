//! Garbage collection of objects that no metadata row references: the leftovers
//! of ingests that crashed or failed to commit (`tmp/` uploads and markers, and
//! `sha256/` objects stored before a commit that never happened).
//!
//! Only objects older than a grace period are candidates, so an ingest in flight,
//! whose objects are young until its metadata commits, is never collected.

use std::time::Duration;

use futures::TryStreamExt;
use keyframe_catalog::Db;
use keyframe_origin::store::Store;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Serialize;

use crate::error::IngestError;
use crate::objects::{CONTENT_PREFIX, TMP_PREFIX};

/// Keys asked about per metadata query.
const BATCH: usize = 500;

/// One unreferenced object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub key: String,
    pub size: u64,
    /// Unix milliseconds.
    pub last_modified: i64,
}

/// What a collection found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Objects looked at under `sha256/` and `tmp/`.
    pub scanned: u64,
    /// Unreferenced objects older than the grace period.
    pub orphans: Vec<Orphan>,
    /// Their total size in bytes.
    pub orphan_bytes: u64,
    /// How many of them were deleted (none unless asked).
    pub deleted: u64,
    /// Deletions that failed, one line each.
    pub errors: Vec<String>,
}

/// Finds objects under `sha256/` and `tmp/` that no asset row references and that
/// were last modified more than `grace` ago; deletes them when `delete` is set.
pub async fn gc(
    store: &Store,
    db: &Db,
    grace: Duration,
    delete: bool,
) -> Result<GcReport, IngestError> {
    let now_ms = keyframe_catalog::db::now_ms();
    let cutoff = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let mut report = GcReport::default();
    for prefix in [TMP_PREFIX, CONTENT_PREFIX] {
        let mut listing = store.list(Some(&Path::from(prefix)));
        let mut batch: Vec<ObjectMeta> = Vec::with_capacity(BATCH);
        while let Some(meta) = listing.try_next().await? {
            report.scanned += 1;
            if meta.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            batch.push(meta);
            if batch.len() == BATCH {
                sweep(store, db, prefix, &mut batch, delete, &mut report).await?;
            }
        }
        sweep(store, db, prefix, &mut batch, delete, &mut report).await?;
    }
    Ok(report)
}

async fn sweep(
    store: &Store,
    db: &Db,
    prefix: &str,
    batch: &mut Vec<ObjectMeta>,
    delete: bool,
    report: &mut GcReport,
) -> Result<(), IngestError> {
    if batch.is_empty() {
        return Ok(());
    }
    // Nothing ever references a temporary key.
    let referenced = if prefix == TMP_PREFIX {
        Default::default()
    } else {
        let keys: Vec<String> = batch.iter().map(|m| m.location.to_string()).collect();
        db.referenced_object_keys(&keys).await?
    };
    for meta in batch.drain(..) {
        let key = meta.location.to_string();
        if referenced.contains(&key) {
            continue;
        }
        if delete {
            // An ingest may have just replaced this object (making it young again)
            // on its way to referencing it; look once more right before deleting.
            match store.head(&meta.location).await {
                Ok(now) if now.last_modified > meta.last_modified => continue,
                Err(object_store::Error::NotFound { .. }) => continue,
                _ => {}
            }
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => report.deleted += 1,
                Err(e) => report.errors.push(format!("{key}: {e}")),
            }
        }
        report.orphan_bytes += meta.size;
        report.orphans.push(Orphan {
            key,
            size: meta.size,
            last_modified: meta.last_modified.timestamp_millis(),
        });
    }
    Ok(())
}
