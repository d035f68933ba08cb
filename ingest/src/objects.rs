//! Content-addressed objects in the store.
//!
//! Bytes stream to a temporary key, `tmp/<uuid>`, as a multipart upload (several
//! parts in flight, bounded buffers) while SHA-256 is computed; once complete, the
//! object is renamed to `sha256/<2 hex>/<64 hex>.<ext>` and its size checked. So a
//! content key only ever names complete bytes, and identical bytes share one key.
//!
//! Where a move is a server-side copy (S3 and other remote stores: slow, and
//! limited to 5 GB per copy on AWS), a file input is hashed first and then uploaded
//! straight to its content address with [`upload_direct`]: a multipart upload is
//! invisible until it completes, so the key still only ever names complete bytes.
//!
//! Before the upload starts, a small marker is written at the temporary key: a
//! multipart upload cut short by a crash is invisible to listings (a staging file
//! on disk, an incomplete upload on S3), but the marker is not, so `gc` finds what
//! the crash left behind.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use keyframe_catalog::Db;
use keyframe_core::key::parse_key;
use keyframe_core::mime::extension_for_type;
use keyframe_core::store::Store;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::error::IngestError;

/// Prefix of content-addressed objects.
pub const CONTENT_PREFIX: &str = "sha256";
/// Prefix of uploads in progress.
pub const TMP_PREFIX: &str = "tmp";

/// The smallest part of a multipart upload (S3 needs at least 5 MiB).
const MIN_PART: usize = 8 << 20;
/// S3 allows 10,000 parts; keep a margin for a size hint that is a little short.
const MAX_PARTS: u64 = 9_000;
/// Bytes of parts in flight that the upload aims at.
const IN_FLIGHT: usize = 32 << 20;
/// Parts of an upload to local disk or memory: the local store writes parts one at
/// a time under a lock, so more or larger parts in flight only hold more memory
/// (they made a long ladder's storing phase peak at 64 MiB of buffers).
const LOCAL_PART: usize = 2 << 20;

/// The content address of bytes with this SHA-256 (lowercase hex) and media type.
pub fn content_key(sha256_hex: &str, mime: &str) -> String {
    let prefix = sha256_hex.get(..2).unwrap_or("00");
    format!(
        "{CONTENT_PREFIX}/{prefix}/{sha256_hex}.{}",
        extension_for_type(mime)
    )
}

/// How a stream is cut into parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadPlan {
    pub part_size: usize,
    /// Parts uploading at once.
    pub concurrency: usize,
}

impl UploadPlan {
    /// Parts big enough that a file of `size_hint` bytes needs at most 9,000 of them,
    /// and as many in flight as fit in about 32 MiB (at least two). Without a hint,
    /// 8 MiB parts (files up to about 70 GiB on S3). Buffers stay under 100 MiB up to
    /// about 250 GiB; past that the parts S3 needs are larger than that budget.
    /// The plan for an upload of `size_hint` bytes into `store`: [`Self::for_size`]
    /// for S3 and the like, two 2 MiB parts in flight where renaming is cheap
    /// (local disk, memory), which has no part-size minimum and gains nothing
    /// from parallel parts.
    pub fn for_store(store: &Store, size_hint: Option<u64>) -> UploadPlan {
        if moves_are_cheap(store) {
            UploadPlan {
                part_size: LOCAL_PART,
                concurrency: 2,
            }
        } else {
            UploadPlan::for_size(size_hint)
        }
    }

    pub fn for_size(size_hint: Option<u64>) -> UploadPlan {
        let needed = size_hint.map_or(0, |s| s.div_ceil(MAX_PARTS));
        let needed = usize::try_from(needed).unwrap_or(usize::MAX);
        // Whole MiB, which keeps parts aligned with the reads.
        let part_size = needed
            .div_ceil(1 << 20)
            .saturating_mul(1 << 20)
            .max(MIN_PART);
        UploadPlan {
            part_size,
            concurrency: (IN_FLIGHT / part_size).clamp(2, 8),
        }
    }
}

/// A complete upload at its temporary key.
#[derive(Debug)]
pub struct TempObject {
    pub path: Path,
    pub size: u64,
    pub sha256: String,
}

/// An object at its content address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// Whether a metadata row already referenced these bytes, so nothing was copied.
    pub already_stored: bool,
}

/// Called with the number of bytes read so far.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

/// Streams `input` to a new temporary key, hashing it. Any failure removes what was
/// written; an empty input is [`IngestError::Empty`].
pub async fn upload_temp(
    store: &Store,
    input: BoxStream<'static, io::Result<Bytes>>,
    plan: UploadPlan,
    on_bytes: Option<&OnBytes>,
) -> Result<TempObject, IngestError> {
    let path = Path::from(format!("{TMP_PREFIX}/{}", uuid::Uuid::new_v4().simple()));
    put_marker(store, &path, "").await?;
    let written = write_hashed(
        store,
        &path,
        input,
        plan,
        |n| {
            if let Some(f) = on_bytes {
                f(n);
            }
        },
        |_, size| {
            if size == 0 {
                Err(IngestError::Empty)
            } else {
                Ok(())
            }
        },
    )
    .await;
    match written {
        Ok((sha256, size)) => Ok(TempObject { path, size, sha256 }),
        Err(e) => {
            remove(store, &path).await;
            Err(e)
        }
    }
}

/// Writes the small object that marks an upload in progress at `path`: a multipart
/// upload cut short by a crash is invisible to listings, the marker is not.
async fn put_marker(store: &Store, path: &Path, what: &str) -> Result<(), IngestError> {
    let text = format!(
        "keyframe ingest{what} in progress since {} (pid {})\n",
        keyframe_catalog::db::now_ms(),
        std::process::id()
    );
    store.put(path, PutPayload::from(text)).await?;
    Ok(())
}

/// Multipart-uploads `input` to `path` while hashing it, with at most
/// `plan.concurrency` parts in flight; `progress` sees the bytes sent so far.
/// `check` sees the hash and size once every byte is sent and before the upload
/// completes: an error there, or anywhere, aborts the upload, so nothing becomes
/// visible at `path`. Returns the hex SHA-256 and the size.
async fn write_hashed(
    store: &Store,
    path: &Path,
    mut input: BoxStream<'static, io::Result<Bytes>>,
    plan: UploadPlan,
    progress: impl Fn(u64),
    check: impl FnOnce(&str, u64) -> Result<(), IngestError>,
) -> Result<(String, u64), IngestError> {
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, plan.part_size);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let streamed: Result<String, IngestError> = async {
        while let Some(chunk) = input.next().await {
            let chunk = chunk.map_err(IngestError::Input)?;
            if chunk.is_empty() {
                continue;
            }
            hasher.update(&chunk);
            size += chunk.len() as u64;
            writer.wait_for_capacity(plan.concurrency).await?;
            writer.put(chunk);
            progress(size);
        }
        let sha256 = hex::encode(hasher.finalize());
        check(&sha256, size)?;
        Ok(sha256)
    }
    .await;
    match streamed {
        Ok(sha256) => {
            writer.finish().await?;
            Ok((sha256, size))
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::debug!(key = %path, error = %abort, "aborting the upload failed");
            }
            Err(e)
        }
    }
}

/// Moves a complete temporary object to its content address and checks the size
/// stored there. When a metadata row already references that address, the bytes
/// are known and the temporary object is simply dropped. Otherwise it replaces
/// whatever is there (the same bytes by construction, or a damaged copy), which
/// also makes the object young again, so `gc`'s grace period protects it until the
/// metadata is committed. The temporary object is gone afterwards, whatever happens.
pub async fn finalize(
    store: &Store,
    db: &Db,
    tmp: TempObject,
    mime: &str,
) -> Result<Stored, IngestError> {
    let result = finalize_inner(store, db, &tmp, mime).await;
    if result.is_err() {
        remove(store, &tmp.path).await;
    }
    result
}

async fn finalize_inner(
    store: &Store,
    db: &Db,
    tmp: &TempObject,
    mime: &str,
) -> Result<Stored, IngestError> {
    let key = content_key(&tmp.sha256, mime);
    let path = content_path(&key)?;
    if already_referenced(store, db, &key, &path, tmp.size).await? {
        remove(store, &tmp.path).await;
        return Ok(Stored {
            key,
            size: tmp.size,
            sha256: tmp.sha256.clone(),
            already_stored: true,
        });
    }
    // A rename on local disk; a copy and a delete elsewhere.
    store.rename(&tmp.path, &path).await?;
    verify(store, &key, &path, tmp.size).await?;
    Ok(Stored {
        key,
        size: tmp.size,
        sha256: tmp.sha256.clone(),
        already_stored: false,
    })
}

/// Whether renaming an object is cheap (a file rename, or memory) rather than a
/// server-side copy. `object_store` gives no capability flag; its `Display` names
/// the implementation (`LocalFileSystem(…)`, `InMemory`, `AmazonS3(…)`).
pub fn moves_are_cheap(store: &Store) -> bool {
    let name = store.to_string();
    name.starts_with("LocalFileSystem") || name.starts_with("InMemory")
}

/// SHA-256 and size of a local file, read in 1 MiB pieces.
pub async fn hash_file(
    file: &std::path::Path,
    on_bytes: Option<&OnBytes>,
) -> Result<(String, u64), IngestError> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(IngestError::Input)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(IngestError::Input)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Some(f) = on_bytes {
            f(size / 2);
        }
    }
    if size == 0 {
        return Err(IngestError::Empty);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Uploads a local file whose hash is known straight to its content address, as a
/// multipart upload that becomes visible only when complete, hashing the bytes
/// again as they go: if the file changed since it was hashed, the upload is
/// aborted and nothing is visible. Skipped when a metadata row already references
/// these bytes.
pub async fn upload_direct(
    store: &Store,
    db: &Db,
    file: &std::path::Path,
    (sha256, size): (String, u64),
    mime: &str,
    on_bytes: Option<&OnBytes>,
) -> Result<Stored, IngestError> {
    let key = content_key(&sha256, mime);
    let path = content_path(&key)?;
    if already_referenced(store, db, &key, &path, size).await? {
        return Ok(Stored {
            key,
            size,
            sha256,
            already_stored: true,
        });
    }
    let marker = Path::from(format!("{TMP_PREFIX}/{}", uuid::Uuid::new_v4().simple()));
    put_marker(store, &marker, &format!(" of {key}")).await?;
    let result = async {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(IngestError::Input)?;
        let input = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).boxed();
        write_hashed(
            store,
            &path,
            input,
            UploadPlan::for_size(Some(size)),
            // The hash pass was the first half of the work.
            |n| {
                if let Some(f) = on_bytes {
                    f(size / 2 + n / 2);
                }
            },
            |hash, n| {
                if n == size && hash == sha256 {
                    Ok(())
                } else {
                    Err(IngestError::Input(io::Error::other(
                        "the file changed while it was being ingested",
                    )))
                }
            },
        )
        .await?;
        let verified = verify(store, &key, &path, size).await;
        if verified.is_err() {
            remove(store, &path).await;
        }
        verified
    }
    .await;
    remove(store, &marker).await;
    result?;
    Ok(Stored {
        key,
        size,
        sha256,
        already_stored: false,
    })
}

/// Stores a small object held in memory (a poster, a variant) at its content
/// address, unless a metadata row already references it there.
pub async fn put_small(
    store: &Store,
    db: &Db,
    bytes: Vec<u8>,
    mime: &str,
) -> Result<Stored, IngestError> {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let key = content_key(&sha256, mime);
    let path = content_path(&key)?;
    let size = bytes.len() as u64;
    if already_referenced(store, db, &key, &path, size).await? {
        return Ok(Stored {
            key,
            size,
            sha256,
            already_stored: true,
        });
    }
    // One PUT is atomic: readers see all of the object or none of it.
    store.put(&path, PutPayload::from(bytes)).await?;
    verify(store, &key, &path, size).await?;
    Ok(Stored {
        key,
        size,
        sha256,
        already_stored: false,
    })
}

fn content_path(key: &str) -> Result<Path, IngestError> {
    parse_key(key).map_err(|e| IngestError::Key {
        key: key.to_string(),
        why: e.to_string(),
    })
}

/// Whether `size` bytes are stored at `key` and a metadata row refers to them, so
/// an upload of the same bytes only adds metadata.
async fn already_referenced(
    store: &Store,
    db: &Db,
    key: &str,
    path: &Path,
    size: u64,
) -> Result<bool, IngestError> {
    Ok(existing_size(store, path).await? == Some(size) && db.object_referenced(key).await?)
}

async fn existing_size(store: &Store, path: &Path) -> Result<Option<u64>, IngestError> {
    match store.head(path).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn verify(store: &Store, key: &str, path: &Path, expected: u64) -> Result<(), IngestError> {
    let found = store.head(path).await?.size;
    if found != expected {
        return Err(IngestError::Verify {
            key: key.to_string(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Deletes an object, logging (not failing) when that does not work: this runs on
/// paths that are already failing, and `gc` collects what is left.
async fn remove(store: &Store, path: &Path) {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(key = %path, error = %e, "could not remove a temporary object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_derive_from_hash_and_type() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            content_key(sha, "video/mp4"),
            format!("sha256/9f/{sha}.mp4")
        );
        assert_eq!(
            content_key(sha, "image/jpeg"),
            format!("sha256/9f/{sha}.jpg")
        );
        assert_eq!(
            content_key(sha, "application/x-whatever"),
            format!("sha256/9f/{sha}.bin")
        );
        assert!(parse_key(&content_key(sha, "text/vtt")).is_ok());
        // The hash of "test", as sha256sum prints it.
        assert_eq!(hex::encode(Sha256::digest(b"test")), sha);
    }

    #[test]
    fn plans_stay_within_part_limits() {
        let small = UploadPlan::for_size(None);
        assert_eq!(
            small,
            UploadPlan {
                part_size: 8 << 20,
                concurrency: 4
            }
        );
        assert_eq!(UploadPlan::for_size(Some(10)), small);
        for size in [4u64 << 30, 50 << 30, 100 << 30, 240 << 30] {
            let p = UploadPlan::for_size(Some(size));
            assert!(size.div_ceil(p.part_size as u64) <= 10_000, "{size}: {p:?}");
            assert!(
                p.part_size * (p.concurrency + 1) <= 100 << 20,
                "{size}: {p:?}"
            );
            assert!(p.concurrency >= 2);
        }
        let huge = UploadPlan::for_size(Some(1 << 40));
        let local: Store = Arc::new(object_store::memory::InMemory::new());
        let p = UploadPlan::for_store(&local, Some(100 << 30));
        assert!(p.part_size * (p.concurrency + 1) <= 8 << 20, "{p:?}");
        assert!((1u64 << 40).div_ceil(huge.part_size as u64) <= 10_000);
    }
}
