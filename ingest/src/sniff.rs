//! Media types from content, never from a file name: the `infer` crate on the first
//! bytes, a few sniffers for types it does not know (MPEG-TS, WebVTT, HLS, DASH),
//! and one normalisation so that every type maps onto the extension table of
//! `keyframe_core::mime` (which names the object and lets the origin serve it).

/// How many leading bytes detection looks at.
pub const SNIFF_LEN: usize = 8192;

/// The media type of content that starts with `head` (at most [`SNIFF_LEN`] bytes
/// are looked at); `application/octet-stream` when nothing matches.
pub fn detect_mime(head: &[u8]) -> &'static str {
    let head = &head[..head.len().min(SNIFF_LEN)];
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    // Before infer, which calls any XML `text/xml`.
    if starts_with_xml(text) && contains(text, b"<MPD") {
        return "application/dash+xml";
    }
    if let Some(t) = infer::get(head) {
        return normalize(t.mime_type());
    }
    if is_mpeg_ts(head) {
        return "video/mp2t";
    }
    if text.starts_with(b"WEBVTT") {
        return "text/vtt";
    }
    if text.starts_with(b"#EXTM3U") {
        return "application/vnd.apple.mpegurl";
    }
    "application/octet-stream"
}

/// What kind of title content of this type makes: `video`, `audio`, `image` or `other`.
pub fn kind_for_mime(mime: &str) -> &'static str {
    match mime.split('/').next() {
        Some("video") => "video",
        Some("audio") => "audio",
        Some("image") => "image",
        _ => "other",
    }
}

/// Whether the type is an ISO base media file (MP4, QuickTime, M4A), whose `moov`
/// box may come before or after the media data.
pub fn is_iso_bmff(mime: &str) -> bool {
    matches!(mime, "video/mp4" | "video/quicktime" | "audio/mp4")
}

/// Maps `infer`'s names onto the canonical ones of the extension table.
fn normalize(mime: &'static str) -> &'static str {
    match mime {
        "video/x-m4v" => "video/mp4",
        "audio/m4a" | "audio/x-m4a" => "audio/mp4",
        "audio/x-flac" => "audio/flac",
        "audio/x-wav" => "audio/wav",
        other => other,
    }
}

/// MPEG transport streams: a 0x47 sync byte every 188 bytes.
fn is_mpeg_ts(head: &[u8]) -> bool {
    head.len() >= 188 * 3 && (0..3).all(|i| head[i * 188] == 0x47)
}

fn starts_with_xml(text: &[u8]) -> bool {
    let t = text.trim_ascii_start();
    t.starts_with(b"<?xml") || t.starts_with(b"<MPD")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyframe_core::mime::extension_for_type;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 24];
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(brand);
        v.extend_from_slice(&[0, 0, 2, 0]);
        v.extend_from_slice(b"isomiso2");
        v
    }

    #[test]
    fn detects_from_content_not_names() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png", "png"),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF\0", "image/jpeg", "jpg"),
            (b"GIF89a\x01\0\x01\0", "image/gif", "gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp", "webp"),
            (
                b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska",
                "video/x-matroska",
                "mkv",
            ),
            (b"ID3\x03\0\0\0\0\0\0", "audio/mpeg", "mp3"),
            (b"fLaC\0\0\0\x22", "audio/flac", "flac"),
            (
                b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n",
                "text/vtt",
                "vtt",
            ),
            (
                b"#EXTM3U\n#EXT-X-VERSION:3\n",
                "application/vnd.apple.mpegurl",
                "m3u8",
            ),
            (
                b"<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash\">",
                "application/dash+xml",
                "mpd",
            ),
            (b"just some bytes", "application/octet-stream", "bin"),
            (b"", "application/octet-stream", "bin"),
        ];
        for (bytes, mime, ext) in cases {
            assert_eq!(detect_mime(bytes), *mime, "{bytes:?}");
            assert_eq!(extension_for_type(detect_mime(bytes)), *ext);
        }
        assert_eq!(detect_mime(&ftyp(b"isom")), "video/mp4");
        assert_eq!(detect_mime(&ftyp(b"M4V ")), "video/mp4");
        assert_eq!(detect_mime(&ftyp(b"M4A ")), "audio/mp4");
        assert_eq!(detect_mime(&ftyp(b"qt  ")), "video/quicktime");
        let mut ts = vec![0u8; 188 * 4];
        for i in 0..4 {
            ts[i * 188] = 0x47;
        }
        assert_eq!(detect_mime(&ts), "video/mp2t");
        assert_eq!(extension_for_type("video/mp2t"), "ts");
    }

    #[test]
    fn every_normalised_type_has_an_extension() {
        for m in ["video/x-m4v", "audio/m4a", "audio/x-flac", "audio/x-wav"] {
            assert_ne!(extension_for_type(normalize(m)), "bin", "{m}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_for_mime("video/mp4"), "video");
        assert_eq!(kind_for_mime("audio/mpeg"), "audio");
        assert_eq!(kind_for_mime("image/png"), "image");
        assert_eq!(kind_for_mime("text/vtt"), "other");
        assert!(is_iso_bmff("audio/mp4") && !is_iso_bmff("video/webm"));
    }
}
