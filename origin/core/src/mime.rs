//! The one table between media types and file extensions.
//!
//! Ingest detects a type from the bytes and names the object `<sha256>.<ext>`; the
//! origin, which knows nothing of the database, maps the extension back to the type.

/// Pairs of (extension, media type); the first extension of a type is its canonical one.
const TABLE: &[(&str, &str)] = &[
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("m4s", "video/iso.segment"),
    ("mov", "video/quicktime"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("ts", "video/mp2t"),
    ("avi", "video/x-msvideo"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("mpd", "application/dash+xml"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("flac", "audio/flac"),
    ("wav", "audio/wav"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("webp", "image/webp"),
    ("gif", "image/gif"),
    ("avif", "image/avif"),
    ("vtt", "text/vtt"),
    ("srt", "application/x-subrip"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("bin", "application/octet-stream"),
];

/// The media type for a key, from its extension; `application/octet-stream` when unknown.
pub fn type_for_key(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('.')
        .and_then(|(_, ext)| {
            TABLE
                .iter()
                .find(|(e, _)| e.eq_ignore_ascii_case(ext))
                .map(|(_, t)| *t)
        })
        .unwrap_or("application/octet-stream")
}

/// The canonical extension for a media type (parameters ignored); `bin` when unknown.
pub fn extension_for_type(mime: &str) -> &'static str {
    let essence = mime.split(';').next().unwrap_or(mime).trim();
    TABLE
        .iter()
        .find(|(_, t)| {
            t.split(';')
                .next()
                .unwrap_or(t)
                .eq_ignore_ascii_case(essence)
        })
        .map(|(e, _)| *e)
        .unwrap_or("bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (ext, ty) in [
            ("mp4", "video/mp4"),
            ("jpg", "image/jpeg"),
            ("png", "image/png"),
            ("webm", "video/webm"),
        ] {
            assert_eq!(type_for_key(&format!("a/b/c.{ext}")), ty);
            assert_eq!(extension_for_type(ty), ext);
        }
        assert_eq!(type_for_key("noext"), "application/octet-stream");
        assert_eq!(type_for_key("x.MP4"), "video/mp4");
        assert_eq!(extension_for_type("application/x-unknown"), "bin");
        assert_eq!(extension_for_type("text/plain; charset=utf-8"), "txt");
    }
}
