//! The handle on object storage every crate passes around, and its health check.
//!
//! Opening a store from a `--store` URL (and so linking the S3 backend) is
//! `keyframe_origin::store`'s job; the crates that are handed a store (the catalog,
//! ingest) need only this.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// A shared handle on object storage.
pub type Store = Arc<dyn ObjectStore>;

/// Checks that the store answers: a HEAD of a key that need not exist.
pub async fn check(store: &dyn ObjectStore) -> Result<(), object_store::Error> {
    match store.head(&Path::from("_keyframe/healthz")).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
