//! Where snapshot files live: a `--store` URL (`file://DIR` or `s3://BUCKET?…`) as
//! the base URL DataFusion and Ballista read tables from, and the object store
//! behind it (the `object_store` line DataFusion is built on).
//!
//! S3 goes through Ballista's own registry (`ballista_core::object_store`): the
//! endpoint, region and `allow_http` of the store URL travel in the session's
//! `s3.*` options to the scheduler and the executors, which build their S3 clients
//! from them; credentials come from each process's standard AWS environment.

use std::sync::Arc;

use ballista_core::object_store::{session_config_with_s3_support, CustomObjectStoreRegistry};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::prelude::SessionConfig;
use object_store_df::path::Path;
use object_store_df::ObjectStore;
use url::Url;

use crate::EngineError;

/// A store URL resolved for the engines.
#[derive(Clone, Debug)]
pub struct Location {
    /// `file:///abs/dir/` or `s3://bucket/`.
    base: Url,
    /// `s3.*` session options (endpoint, region, allow_http).
    s3: Vec<(String, String)>,
}

impl Location {
    /// Resolves `store` (relative `file://` directories against the working directory).
    pub fn parse(store: &str) -> Result<Location, EngineError> {
        let bad = |why: String| EngineError::Store(format!("store URL '{store}': {why}"));
        if let Some(dir) = store.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(bad("no directory after file://".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            let abs = std::path::absolute(dir).map_err(|e| bad(e.to_string()))?;
            let base = Url::from_directory_path(&abs)
                .map_err(|()| bad("not an absolute directory".into()))?;
            return Ok(Location {
                base,
                s3: Vec::new(),
            });
        }
        if store.starts_with("s3://") {
            let url = Url::parse(store).map_err(|e| bad(e.to_string()))?;
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("no bucket name".into()))?;
            let mut s3 = Vec::new();
            for (k, v) in url.query_pairs() {
                match &*k {
                    "endpoint" => {
                        if v.starts_with("http://") {
                            s3.push(("allow_http".into(), "true".into()));
                        }
                        s3.push(("endpoint".into(), v.to_string()));
                    }
                    "region" | "allow_http" => s3.push((k.to_string(), v.to_string())),
                    // Path-style requests are object_store's default with an endpoint.
                    "path_style" => {}
                    other => return Err(bad(format!("unknown parameter '{other}'"))),
                }
            }
            // A path after the bucket is a prefix the snapshots live under.
            let prefix = url.path().trim_matches('/');
            let base = if prefix.is_empty() {
                format!("s3://{bucket}/")
            } else {
                format!("s3://{bucket}/{prefix}/")
            };
            let base = Url::parse(&base).map_err(|e| bad(e.to_string()))?;
            return Ok(Location { base, s3 });
        }
        Err(bad(
            "the DataFusion and Ballista engines need a file:// or s3:// store".into(),
        ))
    }

    /// The URL of `key` (a `/`-separated object key), as tables name their files.
    pub fn url(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }

    /// The object path of `key` in [`Location::store`].
    pub fn path(&self, key: &str) -> Path {
        let url_path = format!("{}{key}", self.base.path());
        Path::from_url_path(&url_path).unwrap_or_else(|_| Path::from(url_path.as_str()))
    }

    /// The session configuration every engine runs with: Ballista's, with the S3
    /// options of this store.
    pub fn session_config(&self) -> Result<SessionConfig, EngineError> {
        let mut config = session_config_with_s3_support();
        for (k, v) in &self.s3 {
            config
                .options_mut()
                .set(&format!("s3.{k}"), v)
                .map_err(|e| EngineError::Store(format!("s3.{k}: {e}")))?;
        }
        Ok(config)
    }

    /// The object store under [`Location::url`]s (the one the engines use), whose
    /// paths are [`Location::path`]s.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, EngineError> {
        let config = self.session_config()?;
        let registry = registry(&config);
        registry
            .get_store(&self.base)
            .map_err(|e| EngineError::Store(e.to_string()))
    }
}

/// The object-store registry of a session: local files and S3 configured by the
/// session's `s3.*` options (those of the client, carried to every executor).
pub fn registry(config: &SessionConfig) -> Arc<dyn ObjectStoreRegistry> {
    let s3 = config
        .options()
        .extensions
        .get::<ballista_core::object_store::S3Options>()
        .cloned()
        .unwrap_or_default();
    Arc::new(CustomObjectStoreRegistry::new(s3))
}
