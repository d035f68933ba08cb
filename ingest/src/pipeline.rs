//! The one entry point for content and for profile images: bytes in, a report out.
//! The CLI, the tests and the catalog's upload endpoints all call [`ingest`] or
//! [`ingest_avatar`].
//!
//! Order matters for the guarantees: everything that can reject the input (an
//! unreadable file, a corrupt image, an unknown user) happens before any upload;
//! every object is complete and verified before the metadata transaction; and the
//! metadata is one transaction, so a title appears whole or not at all. A failed
//! commit leaves stored but unreferenced objects, which `gc` collects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyframe_catalog::ladder::RenditionRow;
use keyframe_catalog::meta::{new_id, Asset, NewContent, Right, ANY_REGION};
use keyframe_catalog::{Db, DbError};
use keyframe_core::store::Store;
use serde::Serialize;

use crate::cmaf::{self, TrackKind};
use crate::error::IngestError;
use crate::images::{self, Encoded, ImageFailure, VARIANT_WIDTHS};
use crate::ladder::{self, LadderSpec};
use crate::manifest;
use crate::mp4;
use crate::objects::{self, OnBytes, Stored, UploadPlan};
use crate::probe::{self, MediaInfo, Tools};
use crate::sniff::{is_iso_bmff, kind_for_mime};
use crate::source::{self, Input, Opened, Source};

/// What happens to one input, and the stages a progress display may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Probing,
    /// Uploading; the total is the input's size when known.
    Uploading {
        total: Option<u64>,
    },
    Pictures,
    /// Encoding the ladder; the total is the master's duration in ms when known,
    /// and progress comes through [`Progress::transcoded`].
    Transcoding {
        total_ms: Option<u64>,
    },
    Committing,
}

/// Receives progress: stages, and bytes uploaded so far.
pub trait Progress: Send + Sync {
    fn stage(&self, stage: Stage);
    fn bytes(&self, done: u64);
    /// Media time encoded so far while transcoding, in ms.
    fn transcoded(&self, _done_ms: u64) {}
}

/// How to ingest one input.
#[derive(Clone)]
pub struct IngestOptions {
    /// The title; the file name without its extension when `None`.
    pub title: Option<String>,
    pub description: String,
    pub categories: Vec<String>,
    /// Where and when the content may be watched; none means everywhere, always.
    pub rights: Vec<Right>,
    /// Rewrite MP4 files whose `moov` box is at the end (needs ffmpeg).
    pub faststart: bool,
    /// Store a file that claims to be audio or video but does not decode as kind
    /// `other`, with a warning, instead of refusing it.
    pub allow_broken: bool,
    /// Make no new title when the same bytes are already a title's source: report
    /// that title instead.
    pub if_new: bool,
    /// The adaptive-streaming ladder to make for audio and video (default: none;
    /// `keyframe ingest` and the catalog's upload ask for [`LadderSpec::default`]).
    pub ladder: LadderSpec,
    /// The external tools to use (default: what is on `PATH`).
    pub tools: Tools,
    /// Where temporary files go (spooled streams, rewrites, posters); the system's
    /// temporary directory when `None`.
    pub temp_dir: Option<PathBuf>,
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("title", &self.title)
            .field("description", &self.description)
            .field("categories", &self.categories)
            .field("rights", &self.rights)
            .field("faststart", &self.faststart)
            .field("allow_broken", &self.allow_broken)
            .field("if_new", &self.if_new)
            .field("ladder", &self.ladder)
            .field("tools", &self.tools)
            .field("temp_dir", &self.temp_dir)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for IngestOptions {
    /// No metadata beyond the defaults, and the tools found on `PATH`.
    fn default() -> Self {
        IngestOptions {
            title: None,
            description: String::new(),
            categories: Vec::new(),
            rights: Vec::new(),
            faststart: false,
            allow_broken: false,
            if_new: false,
            ladder: LadderSpec::none(),
            tools: Tools::detect(),
            temp_dir: None,
            progress: None,
        }
    }
}

impl IngestOptions {
    fn stage(&self, s: Stage) {
        if let Some(p) = &self.progress {
            p.stage(s);
        }
    }

    fn on_bytes(&self) -> Option<OnBytes> {
        self.progress.clone().map(|p| {
            let f: OnBytes = Arc::new(move |n| p.bytes(n));
            f
        })
    }
}

/// What one ingest stored and committed.
#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    /// The new title, for content.
    pub content_id: Option<String>,
    /// The user whose profile image this is, for an avatar.
    pub user_id: Option<String>,
    /// The input's file name (or stream name), when it has one.
    pub name: Option<String>,
    /// The title, for content.
    pub title: Option<String>,
    /// `video`, `audio`, `image`, `other`; `avatar` for a profile image.
    pub kind: String,
    /// The input's own object, as committed (role `source` or `avatar`).
    pub asset: Asset,
    /// Whether these bytes were already stored and referenced, so the upload only
    /// added metadata.
    pub already_stored: bool,
    /// Titles whose source already was these bytes (before this one).
    pub same_bytes_as: Vec<String>,
    /// With `if_new`, these bytes were a title already: nothing was committed and
    /// `content_id` is that title.
    pub skipped: bool,
    /// Posters and image variants, as committed.
    pub derived: Vec<Asset>,
    /// The adaptive-streaming ladder, as committed: renditions (role `rendition`),
    /// HLS media playlists (`hls-media`), the HLS multivariant playlist (`hls`) and
    /// the DASH MPD (`dash`); empty without a ladder.
    pub ladder: Vec<Asset>,
    /// What could not be done but did not stop the ingest (a missing tool, say).
    pub warnings: Vec<String>,
}

/// Ingests one input as a new title: stores it and its derived pictures at their
/// content addresses, then commits the title, its assets, categories and rights
/// in one transaction.
pub async fn ingest(
    store: &Store,
    db: &Db,
    source: impl Into<Source>,
    opts: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    opts.stage(Stage::Probing);
    let mut warnings = Vec::new();
    let mut opened = source::open(source.into(), opts.temp_dir.as_deref()).await?;
    let mime = opened.mime;
    let mut kind = kind_for_mime(mime);

    // A file already ingested is found by its hash before anything else is done
    // (without --faststart, which would change the bytes).
    if opts.if_new && !opts.faststart {
        if let Some(path) = opened.input.path() {
            let (sha256, _) = objects::hash_file(path, None).await?;
            let same = db
                .titles_with_source(&objects::content_key(&sha256, mime))
                .await?;
            if !same.is_empty() {
                return existing_title(db, same, opened.name).await;
            }
        }
    }

    // A file whose name says audio or video must be audio or video.
    let mut broken = opened
        .name
        .as_deref()
        .and_then(|name| claimed_media(name, kind));

    let mut faststart = None;
    if is_iso_bmff(mime) {
        if let Some(path) = opened.input.path() {
            let mut layout = mp4_layout(path).await;
            if opts.faststart && layout.moov_first == Some(false) && !layout.truncated {
                rewrite_faststart(&mut opened, opts).await?;
                if let Some(p) = opened.input.path() {
                    layout = mp4_layout(p).await;
                }
            }
            faststart = layout.moov_first;
            if layout.truncated {
                broken.get_or_insert_with(|| "the MP4 file is cut short".into());
            } else if layout.moov_first.is_none() {
                broken.get_or_insert_with(|| "the MP4 file has no index (moov box)".into());
            }
        }
    }

    let mut info = MediaInfo::default();
    if broken.is_none() && (kind == "video" || kind == "audio") {
        match (&opts.tools.ffprobe, opened.input.path()) {
            (Some(ffprobe), Some(path)) => {
                let ext = keyframe_core::mime::extension_for_type(mime);
                match probe::ffprobe(ffprobe, path, ext).await {
                    Ok(i) if i.video_codec.is_none() && i.audio_codec.is_none() => {
                        broken = Some("ffprobe finds no audio or video stream in it".into());
                    }
                    Ok(i) => info = i,
                    Err(e) => broken = Some(format!("it does not decode: {e}")),
                }
            }
            (None, _) => warnings.push(
                "ffprobe is not on PATH: stored without duration, codecs or dimensions, \
                 and not checked for damage"
                    .into(),
            ),
            (Some(_), None) => {}
        }
    }
    if let Some(why) = broken {
        if !opts.allow_broken {
            return Err(IngestError::Broken(why));
        }
        warnings.push(format!("stored as kind other: {why}"));
        kind = "other";
        faststart = None;
    }
    if faststart == Some(false) {
        warnings.push(
            "moov at the end: players must fetch the end of the file before they can start \
             (try --faststart)"
                .into(),
        );
    }

    // Pictures are made before anything is uploaded: a corrupt image fails here.
    let mut pictures = Pictures::default();
    if kind == "image" {
        opts.stage(Stage::Pictures);
        match opened.input.path() {
            Some(path) if images::decodable(mime) => match image_pictures(path).await {
                Ok(p) => pictures = p,
                Err(ImageFailure::Corrupt(e)) => return Err(IngestError::CorruptImage(e)),
                Err(ImageFailure::TooLarge(e)) => {
                    warnings.push(format!("no image variants: {e}"));
                }
                Err(ImageFailure::Unsupported(e)) => {
                    warnings.push(format!("no image variants: {e}"));
                }
            },
            _ => warnings.push(format!("no image variants: {mime} cannot be decoded here")),
        }
    } else if kind == "video" && (info.has_video() || opts.tools.ffprobe.is_none()) {
        opts.stage(Stage::Pictures);
        match (&opts.tools.ffmpeg, opened.input.path()) {
            (Some(ffmpeg), Some(path)) => match video_poster(ffmpeg, path, &info, opts).await {
                Ok(p) => pictures = p,
                Err(e) => warnings.push(format!("no poster frame: {e}")),
            },
            (None, _) => warnings.push("ffmpeg is not on PATH: no poster frame".into()),
            (Some(_), None) => {}
        }
    }

    // The ladder is encoded and indexed before anything is uploaded: a rung that
    // fails fails the title with nothing stored.
    let mut encoded = None;
    if opts.ladder.enabled() && (kind == "video" || kind == "audio") {
        match (&opts.tools.ffmpeg, &opts.tools.ffprobe, opened.input.path()) {
            (None, _, _) => warnings.push(
                "ffmpeg is not on PATH: no adaptive ladder, progressive playback only".into(),
            ),
            (Some(_), None, _) => warnings.push(
                "ffprobe is not on PATH: no adaptive ladder, progressive playback only".into(),
            ),
            (Some(ffmpeg), Some(_), Some(path)) => {
                encoded = encode_ladder(ffmpeg, path, &info, opts).await?;
            }
            (Some(_), Some(_), None) => {}
        }
    }

    let stored = upload(store, db, opened.input, mime, opts).await?;
    drop(opened.temp);

    let same_bytes_as = if stored.already_stored {
        db.titles_with_source(&stored.key).await?
    } else {
        Vec::new()
    };
    if opts.if_new && !same_bytes_as.is_empty() {
        return existing_title(db, same_bytes_as, opened.name).await;
    }
    if !same_bytes_as.is_empty() {
        warnings.push(format!(
            "the same bytes as title(s) {}: this made another title \
             (`keyframe ingest --if-new` skips files already ingested)",
            same_bytes_as.join(", ")
        ));
    }

    let mut derived = Vec::new();
    for (role, pic) in pictures.items {
        let s = objects::put_small(store, db, pic.bytes, pic.mime).await?;
        derived.push(picture_asset(&role, &s, pic.mime, pic.width, pic.height));
    }

    let (ladder_assets, renditions) = match &encoded {
        Some(e) => store_ladder(store, db, e, opts).await?,
        None => (Vec::new(), Vec::new()),
    };
    drop(encoded);

    let mut asset = source_asset("source", &stored, mime, &info, faststart);
    asset.width = asset.width.or(pictures.width.map(i64::from));
    asset.height = asset.height.or(pictures.height.map(i64::from));
    asset.inline_thumbnail = pictures.inline;

    opts.stage(Stage::Committing);
    let title = opts
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| default_title(opened.name.as_deref()));
    if !opts.rights.is_empty() && opts.rights.iter().all(|r| r.region != ANY_REGION) {
        let mut regions: Vec<&str> = opts.rights.iter().map(|r| r.region.as_str()).collect();
        regions.dedup();
        warnings.push(format!(
            "playable only in region(s) {}: viewers elsewhere, and viewers the catalog \
             places in no region, do not see it (`keyframe serve` places every viewer in \
             its --region, `local` by default)",
            regions.join(", ")
        ));
    }
    let rights = if opts.rights.is_empty() {
        vec![Right {
            region: ANY_REGION.to_string(),
            available_from: None,
            available_until: None,
        }]
    } else {
        opts.rights.clone()
    };
    let mut assets = vec![asset.clone()];
    assets.extend(derived.iter().cloned());
    assets.extend(ladder_assets.iter().cloned());
    let content = db
        .create_content(&NewContent {
            title: title.clone(),
            description: opts.description.clone(),
            kind: kind.to_string(),
            categories: opts.categories.clone(),
            assets,
            rights,
            renditions,
        })
        .await?;
    Ok(IngestReport {
        content_id: Some(content.id),
        user_id: None,
        name: opened.name,
        title: Some(title),
        kind: kind.to_string(),
        asset,
        already_stored: stored.already_stored,
        same_bytes_as,
        skipped: false,
        derived,
        ladder: ladder_assets,
        warnings,
    })
}

/// The report for an input whose bytes already are the source of `titles` (with
/// `if_new`): the first of them, as committed; nothing new is stored.
async fn existing_title(
    db: &Db,
    titles: Vec<String>,
    name: Option<String>,
) -> Result<IngestReport, IngestError> {
    let id = titles.first().cloned().unwrap_or_default();
    let first = db.content(&id).await?;
    let asset = first
        .assets
        .iter()
        .find(|a| a.role == "source")
        .cloned()
        .unwrap_or_default();
    let derived = first
        .assets
        .iter()
        .filter(|a| a.role != "source")
        .cloned()
        .collect();
    Ok(IngestReport {
        content_id: Some(first.id),
        user_id: None,
        name,
        title: Some(first.title),
        kind: first.kind,
        asset,
        already_stored: true,
        same_bytes_as: titles,
        skipped: true,
        derived,
        ladder: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Ingests a profile image for `username`: the original (role `avatar`, with the
/// inline thumbnail) and its variants replace the user's previous ones in one
/// transaction. Anything but a decodable JPEG, PNG, WebP or GIF is refused before
/// anything is stored.
pub async fn ingest_avatar(
    store: &Store,
    db: &Db,
    username: &str,
    source: impl Into<Source>,
    opts: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    opts.stage(Stage::Probing);
    let user = match db.user_by_username(username).await {
        Ok(u) => u,
        Err(DbError::NotFound) => return Err(IngestError::UnknownUser(username.to_string())),
        Err(e) => return Err(e.into()),
    };
    let opened = source::open(source.into(), opts.temp_dir.as_deref()).await?;
    let mime = opened.mime;
    if !images::decodable(mime) {
        return Err(IngestError::UnsupportedAvatar(mime.to_string()));
    }
    let Some(path) = opened.input.path() else {
        return Err(IngestError::UnsupportedAvatar(mime.to_string()));
    };
    opts.stage(Stage::Pictures);
    let pictures = image_pictures(path).await.map_err(|e| match e {
        ImageFailure::Corrupt(e) => IngestError::CorruptImage(e),
        ImageFailure::TooLarge(e) => IngestError::ImageTooLarge(e),
        ImageFailure::Unsupported(_) => IngestError::UnsupportedAvatar(mime.to_string()),
    })?;
    let stored = upload(store, db, opened.input, mime, opts).await?;
    drop(opened.temp);
    let mut derived = Vec::new();
    for (role, pic) in pictures.items {
        let s = objects::put_small(store, db, pic.bytes, pic.mime).await?;
        derived.push(picture_asset(&role, &s, pic.mime, pic.width, pic.height));
    }
    let mut asset = source_asset("avatar", &stored, mime, &MediaInfo::default(), None);
    asset.width = pictures.width.map(i64::from);
    asset.height = pictures.height.map(i64::from);
    asset.inline_thumbnail = pictures.inline;
    opts.stage(Stage::Committing);
    let mut assets = vec![asset.clone()];
    assets.extend(derived.iter().cloned());
    db.replace_user_assets(&user.id, &assets).await?;
    Ok(IngestReport {
        content_id: None,
        user_id: Some(user.id),
        name: opened.name,
        title: None,
        kind: "avatar".into(),
        asset,
        already_stored: stored.already_stored,
        same_bytes_as: Vec::new(),
        skipped: false,
        derived,
        ladder: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Pictures made from an input, ready to store.
#[derive(Default)]
struct Pictures {
    /// (role, picture)
    items: Vec<(String, Encoded)>,
    /// The input's own size in pixels, for images.
    width: Option<u32>,
    height: Option<u32>,
    inline: Option<String>,
}

async fn image_pictures(path: &Path) -> Result<Pictures, ImageFailure> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let img = images::decode_file(&path)?;
        let variants = images::variants(&img, &VARIANT_WIDTHS)?;
        Ok(Pictures {
            items: variants
                .into_iter()
                .map(|(w, e)| (format!("variant-{w}"), e))
                .collect(),
            width: Some(img.width()),
            height: Some(img.height()),
            inline: images::inline_thumbnail(&img),
        })
    })
    .await
    .map_err(|e| ImageFailure::Corrupt(format!("image worker failed: {e}")))?
}

async fn video_poster(
    ffmpeg: &Path,
    path: &Path,
    info: &MediaInfo,
    opts: &IngestOptions,
) -> Result<Pictures, String> {
    let dir = source::temp_dir_in(opts.temp_dir.as_deref()).map_err(|e| e.to_string())?;
    let jpeg = probe::poster(ffmpeg, path, info.duration_ms, dir.path()).await?;
    tokio::task::spawn_blocking(move || {
        let img =
            images::decode_bytes(&jpeg).map_err(|e| format!("unreadable poster frame: {e}"))?;
        Ok(Pictures {
            items: vec![(
                "poster".to_string(),
                Encoded {
                    width: img.width(),
                    height: img.height(),
                    bytes: jpeg,
                    mime: "image/jpeg",
                },
            )],
            width: None,
            height: None,
            inline: images::inline_thumbnail(&img),
        })
    })
    .await
    .map_err(|e| format!("poster worker failed: {e}"))?
}

/// A ladder encoded into a temporary directory (removed on drop) and indexed.
struct Ladder {
    _dir: tempfile::TempDir,
    segment_secs: u32,
    /// (file, its index, its media type), video rungs largest first, audio last.
    files: Vec<(PathBuf, cmaf::Rendition, &'static str)>,
}

/// Encodes the ladder of the master at `path` (video rungs that fit its picture,
/// and its audio) and reads each rendition's fragment index. `None` when the
/// master has neither video nor audio to make renditions of.
async fn encode_ladder(
    ffmpeg: &Path,
    path: &Path,
    info: &MediaInfo,
    opts: &IngestOptions,
) -> Result<Option<Ladder>, IngestError> {
    let rungs = match (info.has_video(), info.width, info.height) {
        (true, Some(w), Some(h)) => opts
            .ladder
            .rungs_for(u32::try_from(w).unwrap_or(0), u32::try_from(h).unwrap_or(0)),
        _ => Vec::new(),
    };
    let audio = info.audio_codec.is_some();
    if rungs.is_empty() && !audio {
        return Ok(None);
    }
    let dir = source::temp_dir_in(opts.temp_dir.as_deref())?;
    let segment_secs = opts.ladder.segment_secs;
    let (args, outputs) = ladder::ffmpeg_args(path, &rungs, audio, segment_secs, dir.path());
    opts.stage(Stage::Transcoding {
        total_ms: info.duration_ms.and_then(|d| u64::try_from(d).ok()),
    });
    let progress = opts.progress.clone();
    ladder::run(ffmpeg, &args, &move |ms| {
        if let Some(p) = &progress {
            p.transcoded(ms);
        }
    })
    .await?;
    let mut files = Vec::new();
    for out in outputs {
        let p = out.path.clone();
        let index = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&p)?;
            let len = f.metadata()?.len();
            cmaf::read(&mut f, len)
        })
        .await
        .map_err(|e| IngestError::Transcode(format!("indexing a rendition failed: {e}")))?
        .map_err(|e| {
            IngestError::Transcode(format!(
                "rendition {} is not a usable fragmented MP4: {e}",
                out.path.display()
            ))
        })?;
        let video = matches!(index.kind, TrackKind::Video { .. });
        if let Some(n) = index.fragments.iter().position(|f| !f.starts_with_sync) {
            if video {
                return Err(IngestError::Transcode(format!(
                    "segment {n} of the {}p rendition does not start with a keyframe",
                    out.rung.unwrap_or(0)
                )));
            }
        }
        let mime = if video { "video/mp4" } else { "audio/mp4" };
        files.push((out.path, index, mime));
    }
    Ok(Some(Ladder {
        _dir: dir,
        segment_secs,
        files,
    }))
}

/// Uploads the renditions, then writes and stores their manifests: the asset rows
/// and rendition rows to commit with the title.
async fn store_ladder(
    store: &Store,
    db: &Db,
    l: &Ladder,
    opts: &IngestOptions,
) -> Result<(Vec<Asset>, Vec<RenditionRow>), IngestError> {
    let mut assets = Vec::new();
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for (path, index, mime) in &l.files {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(IngestError::TempFile)?
            .len();
        let s = upload(
            store,
            db,
            Input::File {
                path: path.clone(),
                len,
            },
            mime,
            opts,
        )
        .await?;
        let mut a = Asset {
            id: new_id(),
            role: "rendition".into(),
            object_key: s.key.clone(),
            size: to_i64(s.size),
            sha256: s.sha256.clone(),
            mime: (*mime).to_string(),
            duration_ms: Some((index.duration_secs() * 1000.0).round() as i64),
            bitrate: Some(to_i64(index.average_bandwidth())),
            container: Some("cmaf".into()),
            ..Asset::default()
        };
        let kind = match index.kind {
            TrackKind::Video { width, height } => {
                a.width = Some(i64::from(width));
                a.height = Some(i64::from(height));
                a.video_codec = Some(index.codecs.clone());
                "video"
            }
            TrackKind::Audio { .. } => {
                a.audio_codec = Some(index.codecs.clone());
                "audio"
            }
        };
        rows.push(RenditionRow {
            asset_id: a.id.clone(),
            kind: kind.into(),
            codecs: index.codecs.clone(),
            bandwidth: to_i64(index.peak_bandwidth()),
            average_bandwidth: to_i64(index.average_bandwidth()),
            segments: to_i64(index.fragments.len() as u64),
        });
        assets.push(a);
        keys.push(s.key);
    }
    let stored: Vec<manifest::Stored> = l
        .files
        .iter()
        .zip(&keys)
        .map(|((_, index, _), key)| manifest::Stored {
            key,
            rendition: index,
        })
        .collect();
    let mut playlists = Vec::new();
    for s in &stored {
        let text = manifest::media_playlist(s);
        let p = put_manifest(store, db, text, HLS_TYPE, "hls-media").await?;
        playlists.push(p.object_key.clone());
        assets.push(p);
    }
    let master = manifest::multivariant(&stored, &playlists);
    assets.push(put_manifest(store, db, master, HLS_TYPE, "hls").await?);
    let mpd = manifest::mpd(&stored, l.segment_secs);
    assets.push(put_manifest(store, db, mpd, DASH_TYPE, "dash").await?);
    Ok((assets, rows))
}

const HLS_TYPE: &str = "application/vnd.apple.mpegurl";
const DASH_TYPE: &str = "application/dash+xml";

async fn put_manifest(
    store: &Store,
    db: &Db,
    text: String,
    mime: &'static str,
    role: &str,
) -> Result<Asset, IngestError> {
    let s = objects::put_small(store, db, text.into_bytes(), mime).await?;
    Ok(Asset {
        id: new_id(),
        role: role.into(),
        object_key: s.key,
        size: to_i64(s.size),
        sha256: s.sha256,
        mime: mime.into(),
        ..Asset::default()
    })
}

/// The top-level layout of an ISO media file; unknown (no index, not truncated)
/// when it cannot be read.
async fn mp4_layout(path: &Path) -> mp4::Layout {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path).ok()?;
        let len = f.metadata().ok()?.len();
        mp4::layout(&mut f, len).ok()
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Why content named `name` is not what its name claims: the extension says audio
/// or video (`.mp4`, `.mp3`, …) and the content was detected as neither (`kind`).
fn claimed_media(name: &str, kind: &str) -> Option<String> {
    let claimed = kind_for_mime(keyframe_core::mime::type_for_key(name));
    if !matches!(claimed, "video" | "audio") || kind == "video" || kind == "audio" {
        return None;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    Some(format!(
        "its name says {claimed} (.{ext}) but its content is no audio or video format \
         Keyframe recognises"
    ))
}

async fn rewrite_faststart(opened: &mut Opened, opts: &IngestOptions) -> Result<(), IngestError> {
    let Some(ffmpeg) = &opts.tools.ffmpeg else {
        return Err(IngestError::Tool(
            "--faststart needs ffmpeg, which is not on PATH".into(),
        ));
    };
    let Some(input) = opened.input.path() else {
        return Ok(());
    };
    let dir = source::temp_dir_in(opts.temp_dir.as_deref())?;
    let out = dir.path().join("faststart");
    probe::faststart(ffmpeg, input, opened.mime, &out).await?;
    let len = tokio::fs::metadata(&out)
        .await
        .map_err(IngestError::TempFile)?
        .len();
    opened.input = Input::File { path: out, len };
    // The rewrite replaces any spooled copy.
    opened.temp = Some(dir);
    Ok(())
}

async fn upload(
    store: &Store,
    db: &Db,
    input: Input,
    mime: &str,
    opts: &IngestOptions,
) -> Result<Stored, IngestError> {
    let total = input.size_hint();
    opts.stage(Stage::Uploading { total });
    let plan = UploadPlan::for_store(store, total);
    let on_bytes = opts.on_bytes();
    if !objects::moves_are_cheap(store) {
        if let Some(path) = input.path() {
            let hashed = objects::hash_file(path, on_bytes.as_ref()).await?;
            return objects::upload_direct(store, db, path, hashed, mime, on_bytes.as_ref()).await;
        }
    }
    let tmp = objects::upload_temp(store, input.into_stream(), plan, on_bytes.as_ref()).await?;
    objects::finalize(store, db, tmp, mime).await
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn source_asset(
    role: &str,
    s: &Stored,
    mime: &str,
    info: &MediaInfo,
    faststart: Option<bool>,
) -> Asset {
    Asset {
        id: new_id(),
        role: role.to_string(),
        object_key: s.key.clone(),
        size: to_i64(s.size),
        sha256: s.sha256.clone(),
        mime: mime.to_string(),
        width: info.width,
        height: info.height,
        duration_ms: info.duration_ms,
        bitrate: info.bitrate,
        container: info.container.clone(),
        video_codec: info.video_codec.clone(),
        audio_codec: info.audio_codec.clone(),
        faststart,
        inline_thumbnail: None,
    }
}

fn picture_asset(role: &str, s: &Stored, mime: &str, width: u32, height: u32) -> Asset {
    Asset {
        id: new_id(),
        role: role.to_string(),
        object_key: s.key.clone(),
        size: to_i64(s.size),
        sha256: s.sha256.clone(),
        mime: mime.to_string(),
        width: Some(i64::from(width)),
        height: Some(i64::from(height)),
        ..Asset::default()
    }
}

/// A file name without its extension; `untitled` without a name.
fn default_title(name: Option<&str>) -> String {
    match name {
        Some(n) => {
            let stem = Path::new(n)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem.trim().is_empty() {
                n.to_string()
            } else {
                stem
            }
        }
        None => "untitled".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_titles() {
        assert_eq!(default_title(Some("Big Buck Bunny.mp4")), "Big Buck Bunny");
        assert_eq!(default_title(Some("noext")), "noext");
        assert_eq!(default_title(Some(".hidden")), ".hidden");
        assert_eq!(default_title(None), "untitled");
    }

    #[test]
    fn names_that_claim_media() {
        assert!(claimed_media("clip.mp4", "other").is_some());
        assert!(claimed_media("song.MP3", "other").is_some());
        assert!(claimed_media("clip.mp4", "video").is_none());
        assert!(claimed_media("clip.mp4", "audio").is_none());
        assert!(claimed_media("notes.txt", "other").is_none());
        assert!(claimed_media("noext", "other").is_none());
        assert!(claimed_media("photo.jpg", "other").is_none());
    }
}
