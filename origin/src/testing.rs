//! Stores for tests: one suite runs on memory and local disk always, and on a real
//! S3-compatible server when `KEYFRAME_TEST_S3` names one (a store URL such as
//! `s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1`, credentials in the
//! usual AWS variables). Under `CI=true` a missing S3 URL is a failure.

use std::sync::Arc;

use object_store::prefix::PrefixStore;

use keyframe_core::store::Store;

use crate::store::open;

/// A store a test owns, with whatever keeps it alive.
#[derive(Debug)]
pub struct TestStore {
    /// `memory`, `local` or `s3`.
    pub name: &'static str,
    pub store: Store,
    /// The URL that opens the same store (under `local`, the directory).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The S3 URL tests use, if any; panics under `CI=true` when it is missing.
pub fn s3_url() -> Option<String> {
    match std::env::var("KEYFRAME_TEST_S3") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "CI=true but KEYFRAME_TEST_S3 is not set: the S3 suite must run in CI"
            );
            None
        }
    }
}

/// A fresh local-disk store in a temporary directory.
pub fn local() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().display());
    TestStore {
        name: "local",
        store: open(&url).expect("local store"),
        url,
        _dir: Some(dir),
    }
}

/// A fresh, private prefix of the S3 test bucket.
pub fn s3(url: &str) -> TestStore {
    let inner = open(url).expect("s3 store");
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    TestStore {
        name: "s3",
        store: Arc::new(PrefixStore::new(inner, prefix)),
        url: url.to_string(),
        _dir: None,
    }
}

/// Every store the suite should run on.
pub fn all() -> Vec<TestStore> {
    let mut v = vec![
        TestStore {
            name: "memory",
            store: open("memory://").expect("memory store"),
            url: "memory://".into(),
            _dir: None,
        },
        local(),
    ];
    if let Some(url) = s3_url() {
        v.push(s3(&url));
    }
    v
}
