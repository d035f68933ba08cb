//! HLS playlists as the ABR players read them (RFC 8216): the multivariant
//! playlist's variants (`EXT-X-STREAM-INF` `BANDWIDTH`, `AVERAGE-BANDWIDTH`,
//! `RESOLUTION`, `AUDIO`, §4.3.4.2) and audio renditions (`EXT-X-MEDIA`, §4.3.4.1),
//! and a media playlist's init section (`EXT-X-MAP` with `BYTERANGE`, §4.3.2.5) and
//! segments (`EXTINF` and `EXT-X-BYTERANGE`, §4.3.2.1–2).
//!
//! URIs resolve against the playlist's URL (RFC 3986 §5.2); a reference keeps the
//! query it carries, so a `__token__` an edge wrote into it goes along, and a
//! same-server reference without one inherits the playlist URL's `__token__`.
//! Pure text in, values out: no I/O, so it is tested on strings.

use url::Url;

/// The query parameter of Keyframe's signed URLs (`keyframe_core::token`; the
/// bench speaks HTTP only, so it names it rather than linking it).
pub const TOKEN_NAME: &str = "__token__";

/// A playlist that cannot be played, with the line (1-based) that says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PlaylistError {
    pub line: usize,
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> PlaylistError {
    PlaylistError {
        line,
        message: message.into(),
    }
}

/// One `EXT-X-STREAM-INF` variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Peak bits per second (§4.3.4.2: of the variant with its audio).
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// Width and height.
    pub resolution: Option<(u32, u32)>,
    /// The `GROUP-ID` of the audio renditions it plays with.
    pub audio: Option<String>,
    pub uri: Url,
}

/// One `EXT-X-MEDIA:TYPE=AUDIO` rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub group: String,
    pub default: bool,
    /// None when the audio is muxed into the variants' segments.
    pub uri: Option<Url>,
}

/// A multivariant playlist: variants by ascending `BANDWIDTH`.
#[derive(Debug, Clone, PartialEq)]
pub struct Multivariant {
    pub variants: Vec<Variant>,
    pub audio: Vec<Audio>,
}

impl Multivariant {
    /// The audio playlist a variant plays with: its group's default rendition
    /// (or first) that has a URI of its own.
    pub fn audio_of(&self, v: &Variant) -> Option<&Url> {
        let group = v.audio.as_deref()?;
        let in_group = || self.audio.iter().filter(|a| a.group == group);
        in_group()
            .find(|a| a.default && a.uri.is_some())
            .or_else(|| in_group().find(|a| a.uri.is_some()))
            .and_then(|a| a.uri.as_ref())
    }
}

/// What one request fetches: a URI, whole or an inclusive byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub uri: Url,
    pub range: Option<(u64, u64)>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub part: Part,
    /// Seconds (`EXTINF`).
    pub duration: f64,
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// The init section (`EXT-X-MAP`), fetched before the first segment.
    pub init: Option<Part>,
    pub segments: Vec<Segment>,
}

impl MediaPlaylist {
    /// The longest segment, seconds.
    pub fn max_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).fold(0.0, f64::max)
    }
}

/// The attribute list of a tag (§4.2): `NAME=value` pairs separated by commas,
/// values bare or double-quoted (quotes removed; a quoted value may hold commas).
pub fn attributes(s: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("attribute `{rest}` has no `=`"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err("an attribute without a name".into());
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("the value of {name} has no closing quote"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.push((name, value.trim()));
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if after.is_empty() => "",
            None => return Err(format!("unexpected `{after}` after {name}")),
        };
    }
    Ok(out)
}

fn attr<'a>(attrs: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Resolves `reference` against `base`; a reference to `base`'s server without a
/// `__token__` gets `base`'s (never one to another server).
pub fn resolve(base: &Url, reference: &str) -> Result<Url, String> {
    let mut url = base
        .join(reference.trim())
        .map_err(|e| format!("URI `{reference}`: {e}"))?;
    let token = |u: &Url| {
        u.query_pairs()
            .find(|(k, _)| k == TOKEN_NAME)
            .map(|(_, v)| v.into_owned())
    };
    if url.origin() == base.origin() && token(&url).is_none() {
        if let Some(t) = token(base) {
            url.query_pairs_mut().append_pair(TOKEN_NAME, &t);
        }
    }
    Ok(url)
}

/// `n[@o]` (§4.3.2.2); without `@o` the range follows `previous` (the end + 1 of
/// the last sub-range of the same URI).
fn byterange(s: &str, previous: Option<u64>) -> Result<(u64, u64), String> {
    let (len, offset) = match s.trim().split_once('@') {
        Some((n, o)) => (n, Some(o)),
        None => (s.trim(), None),
    };
    let len: u64 = len
        .trim()
        .parse()
        .map_err(|_| format!("byte range `{s}`: bad length"))?;
    let start = match offset {
        Some(o) => o
            .trim()
            .parse()
            .map_err(|_| format!("byte range `{s}`: bad offset"))?,
        None => {
            previous.ok_or_else(|| format!("byte range `{s}` without an offset follows none"))?
        }
    };
    if len == 0 {
        return Err(format!("byte range `{s}` is empty"));
    }
    let end = start
        .checked_add(len - 1)
        .ok_or_else(|| format!("byte range `{s}` overflows"))?;
    Ok((start, end))
}

fn lines(text: &str) -> Result<impl Iterator<Item = (usize, &str)>, PlaylistError> {
    let mut it = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    match it.next() {
        Some((_, "#EXTM3U")) => Ok(it),
        Some((n, _)) => Err(error(n, "not an HLS playlist (no #EXTM3U first)")),
        None => Err(error(1, "empty playlist")),
    }
}

/// Parses a multivariant playlist served at `base`.
pub fn parse_multivariant(text: &str, base: &Url) -> Result<Multivariant, PlaylistError> {
    let mut variants = Vec::new();
    let mut audio = Vec::new();
    // The attributes of an EXT-X-STREAM-INF waiting for its URI line.
    let mut pending: Option<(usize, Variant)> = None;
    for (n, line) in lines(text)? {
        if let Some(rest) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let a = attributes(rest).map_err(|m| error(n, m))?;
            let number = |name: &str| -> Result<Option<u64>, PlaylistError> {
                attr(&a, name)
                    .map(|v| v.parse().map_err(|_| error(n, format!("{name}={v}"))))
                    .transpose()
            };
            let bandwidth = number("BANDWIDTH")?
                .ok_or_else(|| error(n, "EXT-X-STREAM-INF without BANDWIDTH"))?;
            let resolution = attr(&a, "RESOLUTION")
                .map(|r| {
                    r.split_once('x')
                        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                        .ok_or_else(|| error(n, format!("RESOLUTION={r}")))
                })
                .transpose()?;
            pending = Some((
                n,
                Variant {
                    bandwidth,
                    average_bandwidth: number("AVERAGE-BANDWIDTH")?,
                    resolution,
                    audio: attr(&a, "AUDIO").map(str::to_owned),
                    uri: base.clone(),
                },
            ));
        } else if let Some(rest) = line.strip_prefix("#EXT-X-MEDIA:") {
            let a = attributes(rest).map_err(|m| error(n, m))?;
            if attr(&a, "TYPE") != Some("AUDIO") {
                continue;
            }
            let group =
                attr(&a, "GROUP-ID").ok_or_else(|| error(n, "EXT-X-MEDIA without GROUP-ID"))?;
            audio.push(Audio {
                group: group.to_owned(),
                default: attr(&a, "DEFAULT") == Some("YES"),
                uri: attr(&a, "URI")
                    .map(|u| resolve(base, u).map_err(|m| error(n, m)))
                    .transpose()?,
            });
        } else if line.starts_with("#EXTINF") {
            return Err(error(n, "a media playlist, not a multivariant playlist"));
        } else if !line.starts_with('#') {
            let (_, mut v) = pending
                .take()
                .ok_or_else(|| error(n, format!("URI `{line}` without EXT-X-STREAM-INF")))?;
            v.uri = resolve(base, line).map_err(|m| error(n, m))?;
            variants.push(v);
        }
    }
    if let Some((n, _)) = pending {
        return Err(error(n, "EXT-X-STREAM-INF without a URI line"));
    }
    if variants.is_empty() {
        return Err(error(1, "no EXT-X-STREAM-INF variant"));
    }
    variants.sort_by_key(|v| v.bandwidth);
    Ok(Multivariant { variants, audio })
}

/// Parses a media playlist served at `base`.
pub fn parse_media(text: &str, base: &Url) -> Result<MediaPlaylist, PlaylistError> {
    let mut init = None;
    let mut segments = Vec::new();
    let mut duration: Option<f64> = None;
    // The end + 1 of the last sub-range, per URI (§4.3.2.2).
    let mut next_offset: Option<(Url, u64)> = None;
    let mut pending_range: Option<String> = None;
    for (n, line) in lines(text)? {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let secs = rest.split(',').next().unwrap_or("").trim();
            let secs: f64 = secs
                .parse()
                .ok()
                .filter(|d: &f64| d.is_finite() && *d > 0.0)
                .ok_or_else(|| error(n, format!("EXTINF duration `{secs}`")))?;
            duration = Some(secs);
        } else if let Some(rest) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            pending_range = Some(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
            let a = attributes(rest).map_err(|m| error(n, m))?;
            let uri = attr(&a, "URI").ok_or_else(|| error(n, "EXT-X-MAP without URI"))?;
            let uri = resolve(base, uri).map_err(|m| error(n, m))?;
            // §4.3.2.5: a map's BYTERANGE without an offset starts at 0.
            let range = attr(&a, "BYTERANGE")
                .map(|r| byterange(r, Some(0)).map_err(|m| error(n, m)))
                .transpose()?;
            init = Some(Part { uri, range });
        } else if line == "#EXT-X-STREAM-INF" || line.starts_with("#EXT-X-STREAM-INF:") {
            return Err(error(n, "a multivariant playlist, not a media playlist"));
        } else if !line.starts_with('#') {
            let uri = resolve(base, line).map_err(|m| error(n, m))?;
            let d = duration
                .take()
                .ok_or_else(|| error(n, format!("segment `{line}` without EXTINF")))?;
            let range = match pending_range.take() {
                Some(r) => {
                    let previous = next_offset
                        .as_ref()
                        .filter(|(u, _)| *u == uri)
                        .map(|(_, o)| *o);
                    let (s, e) = byterange(&r, previous).map_err(|m| error(n, m))?;
                    next_offset = Some((uri.clone(), e + 1));
                    Some((s, e))
                }
                None => None,
            };
            segments.push(Segment {
                part: Part { uri, range },
                duration: d,
            });
        }
    }
    if segments.is_empty() {
        return Err(error(1, "no segments"));
    }
    Ok(MediaPlaylist { init, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn attribute_lists_keep_quoted_commas() {
        let a = attributes(r#"BANDWIDTH=14000,CODECS="avc1.64000d,mp4a.40.2",RESOLUTION=320x180"#)
            .expect("attributes");
        assert_eq!(
            a,
            vec![
                ("BANDWIDTH", "14000"),
                ("CODECS", "avc1.64000d,mp4a.40.2"),
                ("RESOLUTION", "320x180")
            ]
        );
        assert!(attributes(r#"CODECS="avc1"#).is_err());
        assert!(attributes("BANDWIDTH").is_err());
        assert!(attributes(r#"URI="a"x"#).is_err());
    }

    // The form ingest/src/manifest.rs writes, with the tokens an edge writes in.
    const MULTIVARIANT: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"../aa/a.m3u8?__token__=t1\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=900000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"audio\"\n\
        ../bb/v360.m3u8?__token__=t1\n\
        #EXT-X-STREAM-INF:BANDWIDTH=400000,AVERAGE-BANDWIDTH=330000,CODECS=\"avc1.64000d,mp4a.40.2\",RESOLUTION=320x180,AUDIO=\"audio\"\n\
        ../cc/v180.m3u8?__token__=t1\n";

    #[test]
    fn multivariant_variants_sorted_and_resolved() {
        let base = url("http://127.0.0.1:9/v1/objects/sha256/90/m.m3u8?__token__=t1");
        let m = parse_multivariant(MULTIVARIANT, &base).expect("parse");
        assert_eq!(m.variants.len(), 2);
        let low = &m.variants[0];
        assert_eq!(low.bandwidth, 400_000);
        assert_eq!(low.average_bandwidth, Some(330_000));
        assert_eq!(low.resolution, Some((320, 180)));
        assert_eq!(
            low.uri.as_str(),
            "http://127.0.0.1:9/v1/objects/sha256/cc/v180.m3u8?__token__=t1"
        );
        assert_eq!(m.variants[1].resolution, Some((640, 360)));
        assert_eq!(
            m.audio_of(low).map(Url::as_str),
            Some("http://127.0.0.1:9/v1/objects/sha256/aa/a.m3u8?__token__=t1")
        );
    }

    #[test]
    fn tokens_are_inherited_only_on_the_same_server() {
        let base = url("http://h:1/a/b/m.m3u8?__token__=x%2By");
        assert_eq!(
            resolve(&base, "../c/v.mp4").expect("resolve").as_str(),
            "http://h:1/a/c/v.mp4?__token__=x%2By"
        );
        assert_eq!(
            resolve(&base, "v.mp4?__token__=z")
                .expect("resolve")
                .as_str(),
            "http://h:1/a/b/v.mp4?__token__=z"
        );
        assert_eq!(
            resolve(&base, "http://other:2/v.mp4")
                .expect("resolve")
                .as_str(),
            "http://other:2/v.mp4"
        );
        let plain = url("http://h:1/a/m.m3u8");
        assert_eq!(
            resolve(&plain, "v.mp4").expect("resolve").as_str(),
            "http://h:1/a/v.mp4"
        );
    }

    #[test]
    fn bad_multivariant_playlists_name_the_line() {
        let base = url("http://h/m.m3u8");
        let e = parse_multivariant("#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\nv.m3u8\n", &base)
            .expect_err("no bandwidth");
        assert_eq!(e.line, 2);
        assert!(parse_multivariant("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", &base).is_err());
        assert!(parse_multivariant("#EXTM3U\nv.m3u8\n", &base).is_err());
        assert!(parse_multivariant("<html>", &base).is_err());
        assert!(parse_multivariant("#EXTM3U\n#EXTINF:4,\nseg.ts\n", &base).is_err());
        assert!(parse_multivariant(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=big\nv.m3u8\n",
            &base
        )
        .is_err());
    }

    #[test]
    fn media_playlist_byte_ranges() {
        let base = url("http://h:1/v1/objects/sha256/bb/v.m3u8?__token__=t");
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n\
            #EXT-X-MAP:URI=\"../aa/v.mp4?__token__=t\",BYTERANGE=\"800@0\"\n\
            #EXTINF:4.00000,\n#EXT-X-BYTERANGE:1000@800\n../aa/v.mp4?__token__=t\n\
            #EXTINF:3.50000,\n#EXT-X-BYTERANGE:3000\n../aa/v.mp4?__token__=t\n\
            #EXTINF:2,\nwhole.mp4\n#EXT-X-ENDLIST\n";
        let m = parse_media(text, &base).expect("parse");
        let init = m.init.as_ref().expect("init");
        assert_eq!(
            init.uri.as_str(),
            "http://h:1/v1/objects/sha256/aa/v.mp4?__token__=t"
        );
        assert_eq!(init.range, Some((0, 799)));
        assert_eq!(m.segments.len(), 3);
        assert_eq!(m.segments[0].part.range, Some((800, 1799)));
        assert_eq!(m.segments[0].duration, 4.0);
        // No offset: right after the previous sub-range of the same URI.
        assert_eq!(m.segments[1].part.range, Some((1800, 4799)));
        assert_eq!(m.segments[2].part.range, None);
        assert_eq!(
            m.segments[2].part.uri.as_str(),
            "http://h:1/v1/objects/sha256/bb/whole.mp4?__token__=t"
        );
        assert_eq!(m.max_duration(), 4.0);
    }

    #[test]
    fn bad_media_playlists_are_refused() {
        let base = url("http://h/v.m3u8");
        for (text, line) in [
            ("#EXTM3U\nseg.mp4\n", 2),
            ("#EXTM3U\n#EXTINF:abc,\nseg.mp4\n", 2),
            ("#EXTM3U\n#EXTINF:0,\nseg.mp4\n", 2),
            ("#EXTM3U\n#EXTINF:4,\n#EXT-X-BYTERANGE:100\nseg.mp4\n", 4),
            ("#EXTM3U\n#EXTINF:4,\n#EXT-X-BYTERANGE:0@5\nseg.mp4\n", 4),
            ("#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", 2),
            ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", 2),
            ("#EXTM3U\n#EXT-X-ENDLIST\n", 1),
        ] {
            let e = parse_media(text, &base).expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
        }
    }
}
