//! Garbage collection of objects that no metadata row references: the leftovers
//! of ingests that crashed or failed to commit (`tmp/` uploads and markers, and
//! `sha256/` objects stored before a commit that never happened).
//!
//! Only objects older than a grace period are candidates, so an ingest in flight,
//! whose objects are young until its metadata commits, is never collected.
//!
//! A write cut short leaves more than what the store lists. On a `file://` store,
//! `object_store` stages every write (a multipart upload, and a plain `put` too) in a
//! file next to its destination named `<key>#<n>`, which its listings hide; gc walks
//! the `tmp/` and `sha256/` directories for those itself. The memory store holds
//! nothing across a crash. On S3 an interrupted multipart upload is invisible to
//! listings and `object_store` 0.14 cannot list incomplete uploads (its
//! `MultipartStore` only creates, completes and aborts them by id): gc removes the
//! marker, and a bucket lifecycle rule (`AbortIncompleteMultipartUpload`) removes the
//! parts (deploy/README.md).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use keyframe_catalog::Db;
use keyframe_core::store::Store;
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
    /// Objects looked at under `sha256/` and `tmp/` (staging files included).
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
    if let Some(root) = local_root(store) {
        let grace_cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let staged = tokio::task::spawn_blocking(move || staging_leftovers(&root))
            .await
            .map_err(|e| IngestError::Input(std::io::Error::other(e)))?;
        for s in staged {
            report.scanned += 1;
            if s.modified > grace_cutoff {
                continue;
            }
            if delete {
                // Still being written (by an ingest that is alive after all)?
                let now = std::fs::metadata(&s.path).and_then(|m| m.modified());
                match now {
                    Ok(t) if t > s.modified => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    _ => {}
                }
                match std::fs::remove_file(&s.path) {
                    Ok(()) => report.deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.deleted += 1,
                    Err(e) => report.errors.push(format!("{}: {e}", s.key)),
                }
            }
            report.orphan_bytes += s.size;
            report.orphans.push(Orphan {
                key: s.key,
                size: s.size,
                last_modified: s
                    .modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
            });
        }
    }
    Ok(report)
}

/// The directory of a `file://` store. `object_store` gives no accessor on the
/// trait object; its `Display` is `LocalFileSystem(file:///root/)`.
pub fn local_root(store: &Store) -> Option<PathBuf> {
    let shown = store.to_string();
    let url = shown.strip_prefix("LocalFileSystem(")?.strip_suffix(')')?;
    url::Url::parse(url).ok()?.to_file_path().ok()
}

/// A staging file that an interrupted write left on local disk.
struct Staged {
    /// Relative to the store's root, as a key would be (`tmp/<uuid>#1`).
    key: String,
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// Whether a file name is one of `object_store`'s staging names, `<name>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every staging file under the store's `tmp/` and `sha256/` directories.
fn staging_leftovers(root: &std::path::Path) -> Vec<Staged> {
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> = [TMP_PREFIX, CONTENT_PREFIX]
        .iter()
        .map(|p| root.join(p))
        .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = entry.file_name();
            if !kind.is_file() || !is_staging_name(&name.to_string_lossy()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let key = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| path.display().to_string());
            found.push(Staged {
                key,
                path,
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging_name("0f3a#1"));
        assert!(is_staging_name("abc.mp4#12"));
        assert!(!is_staging_name("abc.mp4"));
        assert!(!is_staging_name("abc#"));
        assert!(!is_staging_name("abc#x1"));
    }

    #[test]
    fn the_root_of_a_file_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("file://{}", dir.path().display());
        let store = keyframe_origin::store::open(&url).expect("open");
        assert_eq!(
            local_root(&store).map(|p| p.canonicalize().expect("canon")),
            Some(dir.path().canonicalize().expect("canon"))
        );
        let memory = keyframe_origin::store::open("memory://").expect("open");
        assert_eq!(local_root(&memory), None);
    }
}
