//! What the pipeline reads: a local file, or a stream of bytes from anywhere (an
//! HTTP upload, a pipe). Either way the first bytes decide the media type.
//!
//! Probing media needs a seekable file (ffprobe, the poster frame, the `moov`
//! walk, image decoding), so a stream whose first bytes say image, audio or video
//! is spooled to a local temporary file first; any other stream goes straight to
//! object storage. Files are read by a blocking thread one megabyte ahead of the
//! upload, so reading overlaps hashing and writing.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::error::IngestError;
use crate::sniff::{detect_mime, kind_for_mime, SNIFF_LEN};

/// Size of each read from a file.
const READ_SIZE: usize = 1 << 20;
/// Reads a file's reader thread may run ahead of the upload.
const READ_AHEAD: usize = 4;

/// Bytes to ingest.
pub enum Source {
    /// A local file, probed in place.
    File(PathBuf),
    /// A stream of bytes; `name` stands in for a file name (a default title).
    Stream {
        stream: BoxStream<'static, io::Result<Bytes>>,
        name: Option<String>,
        size_hint: Option<u64>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => f.debug_tuple("File").field(p).finish(),
            Source::Stream {
                name, size_hint, ..
            } => f
                .debug_struct("Stream")
                .field("name", name)
                .field("size_hint", size_hint)
                .finish_non_exhaustive(),
        }
    }
}

impl Source {
    /// A local file.
    pub fn file(path: impl Into<PathBuf>) -> Source {
        Source::File(path.into())
    }

    /// A stream of byte chunks.
    pub fn stream(s: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Source {
        Source::Stream {
            stream: s.boxed(),
            name: None,
            size_hint: None,
        }
    }

    /// Anything that reads asynchronously, such as a request body adapter or a pipe.
    pub fn reader(r: impl AsyncRead + Send + 'static) -> Source {
        Source::stream(tokio_util::io::ReaderStream::with_capacity(r, READ_SIZE))
    }

    /// Names a stream (the default title and the report's file name).
    pub fn with_name(mut self, new: impl Into<String>) -> Source {
        if let Source::Stream { name, .. } = &mut self {
            *name = Some(new.into());
        }
        self
    }

    /// The stream's expected length, which sizes the upload's parts.
    pub fn with_size_hint(mut self, len: u64) -> Source {
        if let Source::Stream { size_hint, .. } = &mut self {
            *size_hint = Some(len);
        }
        self
    }
}

impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Source {
        Source::File(p)
    }
}

impl From<&Path> for Source {
    fn from(p: &Path) -> Source {
        Source::File(p.to_path_buf())
    }
}

/// A source once its media type is known.
pub struct Opened {
    pub mime: &'static str,
    /// A file name, or the stream's name.
    pub name: Option<String>,
    pub input: Input,
    /// Keeps a spooled copy alive as long as it is needed.
    pub temp: Option<tempfile::TempDir>,
}

/// Where the bytes of an opened source are.
pub enum Input {
    /// A local file of `len` bytes.
    File { path: PathBuf, len: u64 },
    /// A stream, its first bytes put back in front.
    Stream {
        stream: BoxStream<'static, io::Result<Bytes>>,
        size_hint: Option<u64>,
    },
}

impl Input {
    /// The local file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Input::File { path, .. } => Some(path),
            Input::Stream { .. } => None,
        }
    }

    /// The size, exact for a file.
    pub fn size_hint(&self) -> Option<u64> {
        match self {
            Input::File { len, .. } => Some(*len),
            Input::Stream { size_hint, .. } => *size_hint,
        }
    }

    /// The bytes, as a stream.
    pub fn into_stream(self) -> BoxStream<'static, io::Result<Bytes>> {
        match self {
            Input::File { path, .. } => read_file(path),
            Input::Stream { stream, .. } => stream,
        }
    }
}

/// Checks a source, reads its first bytes to detect its media type, and spools a
/// media stream to a temporary file under `temp_dir`.
pub async fn open(source: Source, temp_dir: Option<&Path>) -> Result<Opened, IngestError> {
    match source {
        Source::File(path) => open_file(path).await,
        Source::Stream {
            stream,
            name,
            size_hint,
        } => open_stream(stream, name, size_hint, temp_dir).await,
    }
}

async fn open_file(path: PathBuf) -> Result<Opened, IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.clone(),
        source,
    };
    let meta = tokio::fs::metadata(&path).await.map_err(read_err)?;
    if meta.is_dir() {
        return Err(IngestError::Directory(path));
    }
    if !meta.is_file() {
        return Err(IngestError::NotAFile(path));
    }
    if meta.len() == 0 {
        return Err(IngestError::Empty);
    }
    let p = path.clone();
    let head = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        std::fs::File::open(&p)?
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)?;
        Ok(head)
    })
    .await
    .map_err(|e| read_err(io::Error::other(e)))?
    .map_err(read_err)?;
    if head.is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(Opened {
        mime: detect_mime(&head),
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        input: Input::File {
            len: meta.len(),
            path,
        },
        temp: None,
    })
}

async fn open_stream(
    mut stream: BoxStream<'static, io::Result<Bytes>>,
    name: Option<String>,
    size_hint: Option<u64>,
    temp_dir: Option<&Path>,
) -> Result<Opened, IngestError> {
    let mut head = BytesMut::new();
    while head.len() < SNIFF_LEN {
        match stream.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(IngestError::Input)?),
            None => break,
        }
    }
    if head.is_empty() {
        return Err(IngestError::Empty);
    }
    let head = head.freeze();
    let mime = detect_mime(&head);
    let rest = stream::once(async move { Ok(head) }).chain(stream).boxed();
    if kind_for_mime(mime) == "other" {
        return Ok(Opened {
            mime,
            name,
            input: Input::Stream {
                stream: rest,
                size_hint,
            },
            temp: None,
        });
    }
    let dir = temp_dir_in(temp_dir)?;
    let path = dir.path().join("input");
    let len = spool(rest, &path).await?;
    Ok(Opened {
        mime,
        name,
        input: Input::File { path, len },
        temp: Some(dir),
    })
}

/// A private temporary directory under `dir` (or the system's).
pub fn temp_dir_in(dir: Option<&Path>) -> Result<tempfile::TempDir, IngestError> {
    let mut b = tempfile::Builder::new();
    b.prefix("keyframe-ingest-");
    match dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(IngestError::TempFile)
}

async fn spool(
    mut stream: BoxStream<'static, io::Result<Bytes>>,
    path: &Path,
) -> Result<u64, IngestError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(IngestError::TempFile)?;
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(IngestError::Input)?;
        file.write_all(&chunk)
            .await
            .map_err(IngestError::TempFile)?;
        len += chunk.len() as u64;
    }
    file.flush().await.map_err(IngestError::TempFile)?;
    Ok(len)
}

/// A file as a stream of chunks, read by a blocking thread a few chunks ahead.
fn read_file(path: PathBuf) -> BoxStream<'static, io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = BytesMut::zeroed(READ_SIZE);
            let mut filled = 0;
            // Fill whole chunks so that parts are made of few, large pieces.
            while filled < READ_SIZE {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            // A closed channel means the upload stopped: stop reading too.
            if tx.blocking_send(Ok(buf.freeze())).is_err() || filled < READ_SIZE {
                return;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_checked_and_sniffed() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            open(Source::file(dir.path().join("missing")), None).await,
            Err(IngestError::Read { .. })
        ));
        assert!(matches!(
            open(Source::file(dir.path()), None).await,
            Err(IngestError::Directory(_))
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(
            open(Source::file(&empty), None).await,
            Err(IngestError::Empty)
        ));
        let data = dir.path().join("data.mp4");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&data, &bytes).expect("write");
        let o = open(Source::file(&data), None).await.expect("open");
        // Named .mp4, but nothing in it says so.
        assert_eq!(o.mime, "application/octet-stream");
        assert_eq!(o.name.as_deref(), Some("data.mp4"));
        let read: Vec<u8> = o
            .input
            .into_stream()
            .map(|c| c.expect("chunk").to_vec())
            .concat()
            .await;
        assert_eq!(read, bytes);
    }

    #[tokio::test]
    async fn streams_keep_their_first_bytes_and_media_is_spooled() {
        let chunks = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let o = open(Source::stream(stream::iter(chunks)).with_name("x"), None)
            .await
            .expect("open");
        assert!(o.input.path().is_none());
        let all: Vec<u8> = o
            .input
            .into_stream()
            .map(|c| c.expect("c").to_vec())
            .concat()
            .await;
        assert_eq!(all, b"hello world");

        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest".to_vec();
        let o = open(Source::reader(std::io::Cursor::new(png.clone())), None)
            .await
            .expect("open");
        assert_eq!(o.mime, "image/png");
        let path = o.input.path().expect("spooled").to_path_buf();
        assert_eq!(std::fs::read(&path).expect("read"), png);
        drop(o);
        assert!(!path.exists(), "the spooled copy goes with the source");

        let empty = open(Source::stream(stream::empty()), None).await;
        assert!(matches!(empty, Err(IngestError::Empty)));
    }
}
