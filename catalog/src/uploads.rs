//! The seam between the catalog's upload endpoints and the ingest pipeline.
//!
//! The ingest crate depends on the catalog, so the catalog cannot call it: the root
//! binary implements [`Uploads`] with the ingest pipeline and hands it to
//! [`crate::server::router`]. Tests use `testing::StoreUploads` (the `testing` feature).

use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// A request body as it arrives: pieces of bytes, or the error that cut it short.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What an admin said about an uploaded file (`POST /api/admin/ingest` query).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentUpload {
    /// The file's name as uploaded (its extension hints at the media type).
    pub filename: String,
    /// The title; ingest derives one from the file name when absent.
    pub title: Option<String>,
    pub description: Option<String>,
    pub categories: Vec<String>,
    /// Where and when it may be watched, already checked; empty = ingest's
    /// default (everywhere, always).
    pub rights: Vec<crate::meta::Right>,
    /// The request's `Content-Type`, if it named one.
    pub content_type: Option<String>,
    /// The request's `Content-Length`, if it gave one.
    pub size_hint: Option<u64>,
}

/// A file the ingest pipeline stored and committed: the shape of `ingest --json`,
/// which prints the same fields whether it ingested locally or through this API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestedContent {
    pub content_id: String,
    /// The object key.
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub mime: String,
    /// The URL path that serves the object: `/v1/objects/<key>`.
    pub path: String,
    #[serde(default)]
    pub title: Option<String>,
    /// `video`, `audio`, `image` or `other`.
    #[serde(default)]
    pub kind: String,
    /// These bytes were already stored and referenced: only metadata was added.
    #[serde(default)]
    pub already_stored: bool,
    /// Titles that already had these bytes before this one (a re-ingest).
    #[serde(default)]
    pub same_bytes_as: Vec<String>,
    /// `ingest --if-new` made no title: `content_id` is the one with these bytes.
    #[serde(default)]
    pub skipped: bool,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub width: Option<i64>,
    #[serde(default)]
    pub height: Option<i64>,
    #[serde(default)]
    pub bitrate: Option<i64>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub video_codec: Option<String>,
    #[serde(default)]
    pub audio_codec: Option<String>,
    /// For MP4: whether the index (moov) comes first.
    #[serde(default)]
    pub faststart: Option<bool>,
    /// Posters and image variants made from it.
    #[serde(default)]
    pub assets: Vec<IngestedAsset>,
    /// What could not be done, or should be known, but did not stop the ingest.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A picture made from an ingested file (a poster, an image variant).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestedAsset {
    pub role: String,
    pub key: String,
    pub size: u64,
    pub mime: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub path: String,
}

/// Why an upload was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The bytes are not something ingest accepts (e.g. not an image): 422.
    #[error("{0}")]
    Unsupported(String),
    /// Larger than ingest accepts: 413.
    #[error("the upload is too large")]
    TooLarge,
    /// The client's body ended with an error (disconnect): 400.
    #[error("the upload was cut short: {0}")]
    Body(String),
    /// No ingest pipeline in this process: 503.
    #[error("uploads are not available on this server")]
    Unavailable,
    /// Storage or database failure: 500 (details are logged, not sent).
    #[error("ingest failed: {0}")]
    Failed(String),
}

/// The ingest pipeline as the catalog sees it.
#[async_trait::async_trait]
pub trait Uploads: Send + Sync {
    /// Streams a media file into storage and commits its title, like `keyframe
    /// ingest`: afterwards the title exists completely, or not at all.
    async fn ingest_content(
        &self,
        upload: ContentUpload,
        body: ByteStream,
    ) -> Result<IngestedContent, UploadError>;

    /// Stores a profile image for a user through the image path (validation,
    /// variants) and makes it the user's avatar, replacing the previous one, like
    /// `keyframe ingest --avatar USERNAME FILE`.
    async fn ingest_avatar(
        &self,
        user_id: &str,
        username: &str,
        image: Bytes,
    ) -> Result<(), UploadError>;
}

/// An [`Uploads`] for processes without an ingest pipeline: every upload is 503.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoUploads;

#[async_trait::async_trait]
impl Uploads for NoUploads {
    async fn ingest_content(
        &self,
        _upload: ContentUpload,
        _body: ByteStream,
    ) -> Result<IngestedContent, UploadError> {
        Err(UploadError::Unavailable)
    }

    async fn ingest_avatar(
        &self,
        _user_id: &str,
        _username: &str,
        _image: Bytes,
    ) -> Result<(), UploadError> {
        Err(UploadError::Unavailable)
    }
}
