//! The HLS and DASH manifests of a ladder, written from the renditions' fragment
//! indexes (`cmaf`): both list the same byte ranges of the same objects.
//!
//! Every URI is relative (`../ab/<hash>.mp4`): every object lives at
//! `sha256/<2 hex>/<hash>.<ext>`, so one object reaches another through the parent
//! directory whatever its own hash, and a manifest resolves against whichever edge
//! or origin served it. Manifests carry no query strings (tokens are added by the
//! server that serves them, never stored).

use std::fmt::Write;

use crate::cmaf::{Rendition, TrackKind};

/// A stored rendition: its object key and index.
#[derive(Clone, Debug)]
pub struct Stored<'a> {
    pub key: &'a str,
    pub rendition: &'a Rendition,
}

/// A reference to `key` from any object of the content-addressed layout
/// (`sha256/xx/<hash>.<ext>`): `../xx/<hash>.<ext>`.
pub fn relative(key: &str) -> String {
    let mut parts = key.rsplitn(3, '/');
    let file = parts.next().unwrap_or(key);
    match parts.next() {
        Some(dir) => format!("../{dir}/{file}"),
        None => file.to_string(),
    }
}

/// An HLS media playlist over one rendition (RFC 8216 §4.3): the init segment as
/// `EXT-X-MAP` with a byte range (§4.3.2.5), one `EXT-X-BYTERANGE` segment per
/// fragment (§4.3.2.2), durations from the fragments' samples.
pub fn media_playlist(s: &Stored) -> String {
    let r = s.rendition;
    let uri = relative(s.key);
    let target = r
        .fragments
        .iter()
        .map(|f| r.secs(f))
        .fold(0.0f64, f64::max)
        .round()
        .max(1.0) as u64;
    let mut m = String::new();
    m.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(m, "#EXT-X-TARGETDURATION:{target}");
    m.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(
        m,
        "#EXT-X-MAP:URI=\"{uri}\",BYTERANGE=\"{}@0\"",
        r.init_size
    );
    for f in &r.fragments {
        let _ = writeln!(m, "#EXTINF:{:.5},", r.secs(f));
        let _ = writeln!(m, "#EXT-X-BYTERANGE:{}@{}", f.size, f.offset);
        let _ = writeln!(m, "{uri}");
    }
    m.push_str("#EXT-X-ENDLIST\n");
    m
}

/// The HLS multivariant playlist (RFC 8216 §4.3.4): one `EXT-X-STREAM-INF` per video
/// rendition, with the audio rendition as an `EXT-X-MEDIA` group; an audio-only
/// ladder lists its audio playlist as the one variant. `playlists[i]` is the key of
/// `renditions[i]`'s media playlist.
pub fn multivariant(renditions: &[Stored], playlists: &[String]) -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let audio = renditions
        .iter()
        .zip(playlists)
        .find(|(s, _)| matches!(s.rendition.kind, TrackKind::Audio { .. }));
    let videos: Vec<_> = renditions
        .iter()
        .zip(playlists)
        .filter(|(s, _)| matches!(s.rendition.kind, TrackKind::Video { .. }))
        .collect();
    if videos.is_empty() {
        if let Some((a, p)) = audio {
            let r = a.rendition;
            let _ = writeln!(
                m,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}",
                r.peak_bandwidth(),
                r.average_bandwidth(),
                r.codecs,
                relative(p)
            );
        }
        return m;
    }
    if let Some((a, p)) = audio {
        let channels = match a.rendition.kind {
            TrackKind::Audio { channels, .. } => channels,
            TrackKind::Video { .. } => 2,
        };
        let _ = writeln!(
            m,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,\
             AUTOSELECT=YES,CHANNELS=\"{channels}\",URI=\"{}\"",
            relative(p)
        );
    }
    for (v, p) in videos {
        let r = v.rendition;
        let TrackKind::Video { width, height } = r.kind else {
            continue;
        };
        // §4.3.4.2: the peak of any playable combination, so video plus audio.
        let (mut peak, mut average, mut codecs) =
            (r.peak_bandwidth(), r.average_bandwidth(), r.codecs.clone());
        if let Some((a, _)) = audio {
            peak += a.rendition.peak_bandwidth();
            average += a.rendition.average_bandwidth();
            codecs = format!("{codecs},{}", a.rendition.codecs);
        }
        let _ = write!(
            m,
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},\
             CODECS=\"{codecs}\",RESOLUTION={width}x{height}"
        );
        // §4.4.6.2: FRAME-RATE SHOULD be there for video.
        if let Some(fps) = r.frame_rate_decimal() {
            let _ = write!(m, ",FRAME-RATE={fps}");
        }
        if audio.is_some() {
            m.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(m, "\n{}", relative(p));
    }
    m
}

/// An ISO 8601 duration (`PT12.345S`).
fn iso_duration(secs: f64) -> String {
    format!("PT{secs:.3}S")
}

/// A static DASH MPD (ISO/IEC 23009-1) over the same files: per rendition a
/// `BaseURL` and a `SegmentList` whose `Initialization@range` and
/// `SegmentURL@mediaRange`s are the HLS byte ranges, timed by a `SegmentTimeline`
/// from the fragments' `tfdt` and durations.
pub fn mpd(renditions: &[Stored], segment_secs: u32) -> String {
    let duration = renditions
        .iter()
        .map(|s| s.rendition.duration_secs())
        .fold(0.0f64, f64::max);
    let mut m = String::new();
    m.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        m,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-main:2011\" type=\"static\" \
         mediaPresentationDuration=\"{}\" minBufferTime=\"{}\">",
        iso_duration(duration),
        iso_duration(f64::from(segment_secs * 2))
    );
    m.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    let sets: [(&str, &str, bool); 2] =
        [("video", "video/mp4", true), ("audio", "audio/mp4", false)];
    for (i, (content_type, mime, video)) in sets.iter().enumerate() {
        let members: Vec<&Stored> = renditions
            .iter()
            .filter(|s| matches!(s.rendition.kind, TrackKind::Video { .. }) == *video)
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(
            m,
            "    <AdaptationSet id=\"{i}\" contentType=\"{content_type}\" mimeType=\"{mime}\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        for (n, s) in members.iter().enumerate() {
            let r = s.rendition;
            let _ = write!(
                m,
                "      <Representation id=\"{content_type}{n}\" bandwidth=\"{}\" codecs=\"{}\"",
                r.peak_bandwidth(),
                r.codecs
            );
            match r.kind {
                TrackKind::Video { width, height } => {
                    let _ = write!(m, " width=\"{width}\" height=\"{height}\"");
                    if let Some(fps) = r.frame_rate_fraction() {
                        let _ = write!(m, " frameRate=\"{fps}\"");
                    }
                }
                TrackKind::Audio { sample_rate, .. } => {
                    let _ = write!(m, " audioSamplingRate=\"{sample_rate}\"");
                }
            }
            m.push_str(">\n");
            if let TrackKind::Audio { channels, .. } = r.kind {
                let _ = writeln!(
                    m,
                    "        <AudioChannelConfiguration \
                     schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
                     value=\"{channels}\"/>"
                );
            }
            let _ = writeln!(m, "        <BaseURL>{}</BaseURL>", relative(s.key));
            let _ = writeln!(m, "        <SegmentList timescale=\"{}\">", r.timescale);
            let _ = writeln!(
                m,
                "          <Initialization range=\"0-{}\"/>",
                r.init_size.saturating_sub(1)
            );
            m.push_str("          <SegmentTimeline>\n");
            for f in &r.fragments {
                let _ = writeln!(m, "            <S t=\"{}\" d=\"{}\"/>", f.start, f.duration);
            }
            m.push_str("          </SegmentTimeline>\n");
            for f in &r.fragments {
                let _ = writeln!(
                    m,
                    "          <SegmentURL mediaRange=\"{}-{}\"/>",
                    f.offset,
                    f.offset + f.size - 1
                );
            }
            m.push_str("        </SegmentList>\n      </Representation>\n");
        }
        m.push_str("    </AdaptationSet>\n");
    }
    m.push_str("  </Period>\n</MPD>\n");
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::Fragment;

    fn rendition(kind: TrackKind, codecs: &str, sizes: &[u64]) -> Rendition {
        let mut offset = 800;
        let fragments = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let f = Fragment {
                    offset,
                    size,
                    start: i as u64 * 2000,
                    duration: 2000,
                    starts_with_sync: true,
                    samples: 50,
                };
                offset += size;
                f
            })
            .collect();
        Rendition {
            len: offset,
            init_size: 800,
            kind,
            codecs: codecs.into(),
            timescale: 1000,
            fragments,
        }
    }

    #[test]
    fn relative_references() {
        assert_eq!(relative("sha256/ab/abcd.mp4"), "../ab/abcd.mp4");
        assert_eq!(relative("x.mp4"), "x.mp4");
    }

    #[test]
    fn playlists_list_every_range_and_measured_rates() {
        let v = rendition(
            TrackKind::Video {
                width: 320,
                height: 180,
            },
            "avc1.64000d",
            &[1000, 3000],
        );
        let a = rendition(
            TrackKind::Audio {
                channels: 2,
                sample_rate: 48000,
            },
            "mp4a.40.2",
            &[500, 500],
        );
        let stored = [
            Stored {
                key: "sha256/aa/v.mp4",
                rendition: &v,
            },
            Stored {
                key: "sha256/bb/a.m4a",
                rendition: &a,
            },
        ];
        let media = media_playlist(&stored[0]);
        assert!(media.contains("#EXT-X-MAP:URI=\"../aa/v.mp4\",BYTERANGE=\"800@0\""));
        assert!(media.contains("#EXTINF:2.00000,\n#EXT-X-BYTERANGE:1000@800\n../aa/v.mp4\n"));
        assert!(media.contains("#EXT-X-BYTERANGE:3000@1800\n"));
        assert!(media.ends_with("#EXT-X-ENDLIST\n"));
        let master = multivariant(
            &stored,
            &["sha256/cc/v.m3u8".into(), "sha256/dd/a.m3u8".into()],
        );
        // Peak: 3000 bytes in 2 s of video plus 500 in 2 s of audio.
        assert!(
            master.contains(
                "BANDWIDTH=14000,AVERAGE-BANDWIDTH=10000,CODECS=\"avc1.64000d,mp4a.40.2\",\
             RESOLUTION=320x180,FRAME-RATE=25.000,AUDIO=\"audio\"\n../cc/v.m3u8"
            ),
            "{master}"
        );
        assert!(master.contains("URI=\"../dd/a.m3u8\""));
        let audio_only = multivariant(&stored[1..], &["sha256/dd/a.m3u8".into()]);
        assert!(audio_only.contains("CODECS=\"mp4a.40.2\"\n../dd/a.m3u8"));
        assert!(!audio_only.contains("EXT-X-MEDIA"));
        let mpd = mpd(&stored, 2);
        assert!(mpd.contains("<Initialization range=\"0-799\"/>"));
        assert!(mpd.contains("<SegmentURL mediaRange=\"1800-4799\"/>"));
        assert!(mpd.contains("<BaseURL>../bb/a.m4a</BaseURL>"));
        assert!(mpd.contains("mediaPresentationDuration=\"PT4.000S\""));
        assert!(
            mpd.contains("width=\"320\" height=\"180\" frameRate=\"25\">"),
            "{mpd}"
        );
        assert!(!audio_only.contains("FRAME-RATE"));
    }
}
