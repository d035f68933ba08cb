//! The ingest pipeline behind the catalog's upload endpoints
//! (`POST /api/admin/ingest`, `PUT /api/users/me/avatar`): the same library
//! functions as `keyframe ingest`, fed from the request body as it streams in.
//!
//! An upload is spooled to a temporary file, and a ladder is encoded into
//! temporary files: under the node's data directory (`<data>/tmp/uploads`, one
//! disk and one quota with the objects, never a small `/tmp`), emptied when the
//! server starts of whatever a crash left there.

use std::path::PathBuf;

use bytes::Bytes;
use keyframe_catalog::uploads::{
    ByteStream, ContentUpload, IngestedAsset, IngestedContent, UploadError, Uploads,
};
use keyframe_catalog::Db;
use keyframe_core::store::Store;

use crate::error::IngestError;
use crate::ladder::LadderSpec;
use crate::pipeline::{ingest, ingest_avatar, IngestOptions, IngestReport};
use crate::source::Source;

/// [`Uploads`] with the real ingest pipeline over `store` and `db`.
#[derive(Clone)]
pub struct PipelineUploads {
    pub store: Store,
    pub db: Db,
    /// Where uploads are spooled and ladders encoded (default: the system's).
    pub temp_dir: Option<PathBuf>,
}

/// The temporary directory of the catalog's uploads under a node's data directory.
pub fn uploads_temp_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("tmp").join("uploads")
}

impl PipelineUploads {
    pub fn new(store: Store, db: Db) -> PipelineUploads {
        PipelineUploads {
            store,
            db,
            temp_dir: None,
        }
    }

    /// Temporary files under `dir`, which is created, and emptied of what an
    /// earlier process left there (only this server's uploads use it). When it
    /// cannot be made, the system's temporary directory is used, with a warning.
    pub fn with_temp_dir(mut self, dir: PathBuf) -> PipelineUploads {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let path = e.path();
                let gone = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if let Err(err) = gone {
                    tracing::warn!(path = %path.display(), error = %err,
                        "could not remove a stale upload temp file");
                }
            }
        }
        match std::fs::create_dir_all(&dir) {
            Ok(()) => self.temp_dir = Some(dir),
            Err(err) => tracing::warn!(dir = %dir.display(), error = %err,
                "cannot make the uploads' temp dir; using the system's"),
        }
        self
    }

    fn options(&self) -> IngestOptions {
        IngestOptions {
            temp_dir: self.temp_dir.clone(),
            ..IngestOptions::default()
        }
    }
}

/// What an ingest became, in the shape `ingest --json` prints (locally, or from
/// the catalog's answer with `--server`).
pub fn ingested(r: &IngestReport) -> IngestedContent {
    let a = &r.asset;
    IngestedContent {
        content_id: r.content_id.clone().unwrap_or_default(),
        key: a.object_key.clone(),
        size: u64::try_from(a.size).unwrap_or(0),
        sha256: a.sha256.clone(),
        mime: a.mime.clone(),
        path: format!("/v1/objects/{}", a.object_key),
        title: r.title.clone(),
        kind: r.kind.clone(),
        already_stored: r.already_stored,
        same_bytes_as: r.same_bytes_as.clone(),
        skipped: r.skipped,
        duration_ms: a.duration_ms,
        width: a.width,
        height: a.height,
        bitrate: a.bitrate,
        container: a.container.clone(),
        video_codec: a.video_codec.clone(),
        audio_codec: a.audio_codec.clone(),
        faststart: a.faststart,
        assets: r.derived.iter().map(ingested_asset).collect(),
        ladder: r.ladder.iter().map(ingested_asset).collect(),
        warnings: r.warnings.clone(),
    }
}

fn ingested_asset(d: &keyframe_catalog::meta::Asset) -> IngestedAsset {
    IngestedAsset {
        role: d.role.clone(),
        key: d.object_key.clone(),
        size: u64::try_from(d.size).unwrap_or(0),
        mime: d.mime.clone(),
        width: d.width,
        height: d.height,
        path: format!("/v1/objects/{}", d.object_key),
    }
}

/// The client's mistakes are 4xx; storage and database failures are 500.
fn upload_error(e: IngestError) -> UploadError {
    match e {
        IngestError::Input(io) => UploadError::Body(io.to_string()),
        e @ (IngestError::Empty
        | IngestError::Broken(_)
        | IngestError::Transcode(_)
        | IngestError::CorruptImage(_)
        | IngestError::UnsupportedAvatar(_)
        | IngestError::ImageTooLarge(_)
        | IngestError::UnknownUser(_)) => UploadError::Unsupported(e.to_string()),
        e => UploadError::Failed(e.to_string()),
    }
}

#[async_trait::async_trait]
impl Uploads for PipelineUploads {
    async fn ingest_content(
        &self,
        upload: ContentUpload,
        body: ByteStream,
    ) -> Result<IngestedContent, UploadError> {
        let mut source = Source::stream(body).with_name(upload.filename.clone());
        if let Some(n) = upload.size_hint {
            source = source.with_size_hint(n);
        }
        let opts = IngestOptions {
            title: upload.title.clone(),
            description: upload.description.clone().unwrap_or_default(),
            categories: upload.categories.clone(),
            rights: upload.rights.clone(),
            ladder: LadderSpec {
                rungs: upload.ladder.clone(),
                ..LadderSpec::default()
            },
            ..self.options()
        };
        let report = ingest(&self.store, &self.db, source, &opts)
            .await
            .map_err(upload_error)?;
        Ok(ingested(&report))
    }

    async fn ingest_avatar(
        &self,
        _user_id: &str,
        username: &str,
        image: Bytes,
    ) -> Result<(), UploadError> {
        let source = Source::stream(futures::stream::once(async move { Ok(image) }));
        ingest_avatar(&self.store, &self.db, username, source, &self.options())
            .await
            .map_err(upload_error)?;
        Ok(())
    }
}
