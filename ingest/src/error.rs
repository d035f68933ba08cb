//! Why one file failed to ingest. Every variant reads as one line that names the
//! cause, because the CLI prints exactly that line for the file and moves on.

use std::path::PathBuf;

use keyframe_catalog::DbError;

/// An ingest that did not happen. Nothing of it is visible: no metadata row was
/// committed, and any temporary object was removed (or, after a crash, is left
/// for `gc`).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read '{path}': {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{0}' is a directory, not a file")]
    Directory(PathBuf),
    #[error("'{0}' is not a regular file")]
    NotAFile(PathBuf),
    #[error("the input is empty")]
    Empty,
    #[error("reading the input failed: {0}")]
    Input(#[source] std::io::Error),
    /// It claims to be audio or video (by name or content) but does not decode.
    #[error("not playable media: {0}")]
    Broken(String),
    #[error("the image is corrupt or truncated: {0}")]
    CorruptImage(String),
    #[error("the image is too large to decode within the memory limit: {0}")]
    ImageTooLarge(String),
    #[error("unsupported type '{0}' for a profile image (expected JPEG, PNG, WebP or GIF)")]
    UnsupportedAvatar(String),
    #[error("no user named '{0}'")]
    UnknownUser(String),
    #[error("{0}")]
    Tool(String),
    /// The adaptive-streaming ladder could not be made from this master (ffmpeg
    /// failed on it, or a rendition is not what the packager needs).
    #[error("{0}")]
    Transcode(String),
    #[error("object key '{key}' is not valid: {why}")]
    Key { key: String, why: String },
    #[error("object storage failed: {0}")]
    Store(#[from] object_store::Error),
    #[error("stored object '{key}' has {found} bytes, expected {expected}")]
    Verify {
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("database failed: {0}")]
    Db(#[from] DbError),
    #[error("local temporary file failed: {0}")]
    TempFile(#[source] std::io::Error),
}
