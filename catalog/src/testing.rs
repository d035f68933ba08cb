//! Fresh databases for tests: the same suite runs on SQLite always and on
//! PostgreSQL when `KEYFRAME_TEST_DATABASE_URL` is set. Under `CI=true` a missing
//! PostgreSQL URL is a failure, so a skipped suite never passes for a run one.

use crate::db::{Db, DbError};

/// A migrated, empty database that a test owns.
#[derive(Debug)]
pub struct TestDb {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    pub db: Db,
    /// The URL the database answers at.
    pub url: String,
    admin_url: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Closes the pool and drops a PostgreSQL test database.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((admin, name)) = &self.admin_url {
            if let Ok(admin) = Db::connect(admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(admin.pool())
                .await;
                admin.close().await;
            }
        }
    }
}

/// The PostgreSQL URL tests use, if any; panics under `CI=true` when it is missing.
pub fn postgres_url() -> Option<String> {
    match std::env::var("KEYFRAME_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "CI=true but KEYFRAME_TEST_DATABASE_URL is not set: the PostgreSQL suite must run in CI"
            );
            None
        }
    }
}

/// A fresh SQLite database in a temporary directory.
pub async fn sqlite() -> Result<TestDb, DbError> {
    let dir = tempfile::tempdir().map_err(|e| DbError::Unavailable(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    Ok(TestDb {
        name: "sqlite",
        db,
        url,
        admin_url: None,
        _dir: Some(dir),
    })
}

/// A fresh PostgreSQL database on the server `admin_url` points at.
pub async fn postgres(admin_url: &str) -> Result<TestDb, DbError> {
    let admin = Db::connect(admin_url).await?;
    let name = format!("kf_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .map_err(crate::db::map_err)?;
    admin.close().await;
    let mut u = url::Url::parse(admin_url).map_err(|e| DbError::Unavailable(e.to_string()))?;
    u.set_path(&format!("/{name}"));
    let url = u.to_string();
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    Ok(TestDb {
        name: "postgres",
        db,
        url,
        admin_url: Some((admin_url.to_string(), name)),
        _dir: None,
    })
}

/// Every database the suite should run on: SQLite, and PostgreSQL when configured.
pub async fn all() -> Vec<TestDb> {
    let mut v = vec![sqlite().await.expect("sqlite test database")];
    if let Some(url) = postgres_url() {
        v.push(postgres(&url).await.expect("postgres test database"));
    }
    v
}

/// A stand-in for the ingest pipeline in tests: it keeps uploads in memory, stores
/// them content-addressed, and writes the rows ingest would (a `source` asset with
/// rights for the given regions, `*` when none; an `avatar` asset for a user). No
/// media probing, no image variants.
#[derive(Debug, Clone)]
pub struct StoreUploads {
    pub db: Db,
    pub store: keyframe_core::store::Store,
}

impl StoreUploads {
    async fn put(&self, bytes: bytes::Bytes, ext: &str) -> Result<(String, String), String> {
        use object_store::ObjectStoreExt;
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let key = format!("sha256/{}/{sha}.{ext}", &sha[..2]);
        let path = keyframe_core::key::parse_key(&key).map_err(|e| e.to_string())?;
        self.store
            .put(&path, object_store::PutPayload::from(bytes))
            .await
            .map_err(|e| e.to_string())?;
        Ok((key, sha))
    }
}

#[async_trait::async_trait]
impl crate::uploads::Uploads for StoreUploads {
    async fn ingest_content(
        &self,
        upload: crate::uploads::ContentUpload,
        body: crate::uploads::ByteStream,
    ) -> Result<crate::uploads::IngestedContent, crate::uploads::UploadError> {
        use crate::uploads::UploadError;
        use futures::TryStreamExt;
        let bytes: Vec<bytes::Bytes> = body
            .try_collect()
            .await
            .map_err(|e| UploadError::Body(e.to_string()))?;
        let bytes = bytes::Bytes::from(bytes.concat());
        if bytes.is_empty() {
            return Err(UploadError::Unsupported("the upload is empty".into()));
        }
        let mime = keyframe_core::mime::type_for_key(&upload.filename).to_string();
        let ext = keyframe_core::mime::extension_for_type(&mime);
        let size = bytes.len() as u64;
        let (key, sha256) = self.put(bytes, ext).await.map_err(UploadError::Failed)?;
        let rights = if upload.rights.is_empty() {
            vec![crate::meta::Right {
                region: crate::meta::ANY_REGION.to_string(),
                available_from: None,
                available_until: None,
            }]
        } else {
            upload.rights.clone()
        };
        let kind = mime.split('/').next().unwrap_or("other");
        let title = upload.title.clone().unwrap_or_else(|| {
            upload
                .filename
                .rsplit_once('.')
                .map_or(upload.filename.as_str(), |(stem, _)| stem)
                .to_string()
        });
        let content = self
            .db
            .create_content(&crate::meta::NewContent {
                title,
                description: upload.description.clone().unwrap_or_default(),
                kind: if matches!(kind, "video" | "audio" | "image") {
                    kind.to_string()
                } else {
                    "other".to_string()
                },
                categories: upload.categories.clone(),
                assets: vec![crate::meta::Asset {
                    role: "source".into(),
                    object_key: key.clone(),
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    sha256: sha256.clone(),
                    mime: mime.clone(),
                    ..Default::default()
                }],
                rights,
            })
            .await
            .map_err(|e| UploadError::Failed(e.to_string()))?;
        Ok(crate::uploads::IngestedContent {
            content_id: content.id,
            path: format!("/v1/objects/{key}"),
            key,
            size,
            sha256,
            mime,
            ..Default::default()
        })
    }

    async fn ingest_avatar(
        &self,
        user_id: &str,
        _username: &str,
        image: bytes::Bytes,
    ) -> Result<(), crate::uploads::UploadError> {
        use crate::uploads::UploadError;
        let mime = match infer_image(&image) {
            Some(m) => m,
            None => {
                return Err(UploadError::Unsupported(
                    "not a PNG, JPEG, GIF or WebP image".into(),
                ))
            }
        };
        let size = image.len();
        let (key, sha256) = self
            .put(image, keyframe_core::mime::extension_for_type(mime))
            .await
            .map_err(UploadError::Failed)?;
        self.db
            .replace_user_assets(
                user_id,
                &[crate::meta::Asset {
                    role: "avatar".into(),
                    object_key: key,
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    sha256,
                    mime: mime.into(),
                    ..Default::default()
                }],
            )
            .await
            .map_err(|e| UploadError::Failed(e.to_string()))
    }
}

/// The image type from a file's first bytes.
fn infer_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF8") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}
