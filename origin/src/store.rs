//! Opening object storage from a URL.
//!
//! Everything in Keyframe reaches bytes through `Arc<dyn ObjectStore>`
//! (`keyframe_core::store::Store`); this module is the one place that turns a
//! `--store` URL into one, and so the one crate that links the cloud backends:
//!
//! * `file://DIR` — a directory on local disk (relative or absolute), created when missing;
//! * `s3://BUCKET?endpoint=URL&region=R&path_style=true` — any S3-compatible store, with
//!   credentials from the standard AWS environment variables;
//! * `memory://` — an in-process store, for tests.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

use keyframe_core::store::Store;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL '{0}' has an unknown scheme (expected file://, s3:// or memory://)")]
    Scheme(String),
    #[error("store URL '{url}' is malformed: {why}")]
    Malformed { url: String, why: String },
    #[error("store directory '{dir}' is not usable: {source}")]
    Directory {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store '{url}' could not be opened: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// Opens the store that `url` names.
pub fn open(url: &str) -> Result<Store, StoreError> {
    if let Some(dir) = url.strip_prefix("file://") {
        return open_dir(url, dir);
    }
    if url == "memory://" || url == "memory:" {
        return Ok(Arc::new(InMemory::new()));
    }
    if url.starts_with("s3://") {
        return open_s3(url);
    }
    Err(StoreError::Scheme(url.to_string()))
}

fn open_dir(url: &str, dir: &str) -> Result<Store, StoreError> {
    if dir.is_empty() {
        return Err(StoreError::Malformed {
            url: url.into(),
            why: "no directory after file://".into(),
        });
    }
    let io_err = |source| StoreError::Directory {
        dir: dir.to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    // Prove we can write here now, rather than on the first upload.
    let probe = std::path::Path::new(dir).join(format!(".keyframe-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(io_err)?;
    let _ = std::fs::remove_file(&probe);
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|source| StoreError::Open {
        url: url.into(),
        source,
    })?;
    Ok(Arc::new(store.with_automatic_cleanup(true)))
}

fn open_s3(raw: &str) -> Result<Store, StoreError> {
    let malformed = |why: String| StoreError::Malformed {
        url: raw.into(),
        why,
    };
    let url = url::Url::parse(raw).map_err(|e| malformed(e.to_string()))?;
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| malformed("no bucket name".into()))?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let mut path_style = None;
    for (k, v) in url.query_pairs() {
        match &*k {
            "endpoint" => {
                builder = builder
                    .with_allow_http(v.starts_with("http://"))
                    .with_endpoint(v.to_string());
                path_style.get_or_insert(true);
            }
            "region" => builder = builder.with_region(v.to_string()),
            "path_style" => {
                path_style = Some(v.parse::<bool>().map_err(|_| {
                    malformed(format!("path_style must be true or false, not '{v}'"))
                })?)
            }
            "allow_http" => {
                builder = builder.with_allow_http(v.parse::<bool>().map_err(|_| {
                    malformed(format!("allow_http must be true or false, not '{v}'"))
                })?)
            }
            other => return Err(malformed(format!("unknown parameter '{other}'"))),
        }
    }
    if let Some(ps) = path_style {
        builder = builder.with_virtual_hosted_style_request(!ps);
    }
    let store = builder.build().map_err(|source| StoreError::Open {
        url: raw.into(),
        source,
    })?;
    Ok(Arc::new(store))
}

/// The directory of a `file://` store URL, for servers that read its files
/// directly.
pub fn local_root(url: &str) -> Option<std::path::PathBuf> {
    url.strip_prefix("file://")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_schemes_and_bad_urls() {
        assert!(matches!(open("ftp://x"), Err(StoreError::Scheme(_))));
        assert!(matches!(open("file://"), Err(StoreError::Malformed { .. })));
        assert!(matches!(open("s3://"), Err(StoreError::Malformed { .. })));
        assert!(matches!(
            open("s3://b?colour=red"),
            Err(StoreError::Malformed { .. })
        ));
    }

    #[test]
    fn file_store_creates_its_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b/objects");
        open(&format!("file://{}", dir.display())).expect("open");
        assert!(dir.is_dir());
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, b"x").expect("write");
        let err = open(&format!("file://{}/objects", file.display())).err();
        assert!(matches!(err, Some(StoreError::Directory { .. })), "{err:?}");
    }
}
