//! `players --abr` against a test server holding a small HLS ladder (two video
//! renditions and an audio rendition, byte-range segments of single files), which
//! answers 403 to any request without the token: uncapped players climb to the
//! top rendition, capped ones stay low and read no faster than their cap.

use crate::common;

use std::collections::HashMap;
use std::fmt::Write as _;

use bytes::Bytes;
use clap::Parser;
use common::{start, Options};
use keyframe_bench::{measure, BenchArgs, Outcome, RunReport};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

const SEGMENTS: usize = 10;
const INIT: usize = 700;

/// A single-file rendition of `SEGMENTS` 1-second segments at `bps`, and its
/// media playlist (EXT-X-BYTERANGE, some without an offset, as RFC 8216 allows).
fn rendition(name: &str, bps: usize, files: &mut HashMap<String, Bytes>) {
    let segment = bps / 8;
    let media = vec![0x5au8; INIT + SEGMENTS * segment];
    let mut m = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-MAP:URI=\"../m/{name}.mp4\",BYTERANGE=\"{INIT}@0\"\n"
    );
    for i in 0..SEGMENTS {
        let _ = write!(m, "#EXTINF:1.0,\n#EXT-X-BYTERANGE:{segment}");
        if i % 2 == 0 {
            let _ = write!(m, "@{}", INIT + i * segment);
        }
        let _ = write!(m, "\n../m/{name}.mp4\n");
    }
    m.push_str("#EXT-X-ENDLIST\n");
    files.insert(format!("/v1/objects/m/{name}.mp4"), Bytes::from(media));
    files.insert(format!("/v1/objects/p/{name}.m3u8"), Bytes::from(m));
}

/// The ladder, as an edge that propagates tokens serves it: the multivariant
/// playlist's references carry the token, the media playlists' do not (the
/// player carries it on from the playlist URL).
fn ladder() -> HashMap<String, Bytes> {
    let mut files = HashMap::new();
    rendition("low", 200_000, &mut files);
    rendition("high", 2_000_000, &mut files);
    rendition("audio", 64_000, &mut files);
    let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"audio\",DEFAULT=YES,URI=\"../p/audio.m3u8?__token__=t0k\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=2200000,AVERAGE-BANDWIDTH=2064000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"a\"\n\
        ../p/high.m3u8?__token__=t0k\n\
        #EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=264000,CODECS=\"avc1.64000d,mp4a.40.2\",RESOLUTION=320x180,AUDIO=\"a\"\n\
        ../p/low.m3u8?__token__=t0k\n";
    files.insert("/v1/objects/p/master.m3u8".into(), Bytes::from(master));
    files
}

async fn run(line: &str) -> RunReport {
    let words = std::iter::once("keyframe-bench").chain(line.split_whitespace());
    let args = Cli::try_parse_from(words).expect("arguments parse").bench;
    match measure(args).await.expect("run") {
        Outcome::Run(r) => *r,
        Outcome::Compare(_) => panic!("a single run expected"),
    }
}

#[tokio::test]
async fn abr_players_climb_uncapped_and_stay_low_under_a_cap() {
    let server = start(
        Vec::new(),
        Options {
            require_query: Some("__token__=t0k"),
            files: ladder(),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/v1/objects/p/master.m3u8?__token__=t0k", server.base());
    let r = run(&format!(
        "players --abr {url} --players 4 --abr-caps none,600kbps --start-buffer 1s \
         --buffer 8s --duration 3s --threads 1 --json"
    ))
    .await;
    let s = &r.summary;
    // Every request carried the token and was answered in full.
    assert_eq!(s.errors, 0, "{:?}", s.error_kinds);
    assert!(keyframe_bench::report::passed(&r, 0.0));
    let a = r.abr.as_ref().expect("abr report");
    assert_eq!(a.renditions.len(), 2);
    assert_eq!(a.renditions[0].resolution.as_deref(), Some("320x180"));
    assert_eq!(a.renditions[1].segments, SEGMENTS);
    assert!(a.separate_audio);
    let st = &a.last;
    assert_eq!((st.players, st.started), (4, 4), "{st:?}");
    assert!(st.startup_ms_p50 > 0.0 && st.startup_ms_p50 <= st.startup_ms_max);
    assert!(st.startup_ms_p95 <= st.startup_ms_max);
    for (i, p) in st.per_player.iter().enumerate() {
        if i % 2 == 0 {
            // Uncapped: the first segment at the default estimate (low), then
            // the top rendition on a loopback link; one switch up, and the
            // buffer (8 s) fills in well under the 3 s run.
            assert_eq!(p.cap_bps, None);
            assert_eq!(p.switches, 1, "{p:?}");
            assert!(p.media_s[1] >= 6.0, "{p:?}");
            assert!(p.avg_bitrate_bps > 1.5e6, "{p:?}");
            assert_eq!(p.rebuffers, 0, "{p:?}");
        } else {
            // 600 kbps: the high rendition (2.2 Mbps) never fits; the player reads
            // no faster than its cap (plus the bucket's burst).
            assert_eq!(p.cap_bps, Some(600_000));
            assert_eq!(p.media_s[1], 0.0, "{p:?}");
            assert_eq!(p.avg_bitrate_bps, 264_000.0, "{p:?}");
            assert!(
                p.received_bps < 600_000.0 + keyframe_bench::abr::CAP_BURST as f64 * 8.0 / 3.0,
                "{p:?}"
            );
            assert!(p.received_bps > 300_000.0, "{p:?}");
        }
    }
    // The text report names the ladder and each cap class.
    let text = keyframe_bench::report::text(&r);
    assert!(
        text.contains("320x180 0.26 Mbps, 1280x720 2.06 Mbps + audio"),
        "{text}"
    );
    assert!(text.contains("cap 0.60Mbps 2 players"), "{text}");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["abr"]["per_player"].as_array().map(Vec::len), Some(4));
    assert!(json["abr"]["rebuffer_ratio"].is_number());
    assert!(json["abr"]["switches_per_player"].is_number());
}

#[tokio::test]
async fn a_ladder_that_cannot_be_played_fails_the_run_with_the_reason() {
    let server = start(
        Vec::new(),
        Options {
            require_query: Some("__token__=t0k"),
            files: ladder(),
            ..Options::default()
        },
    )
    .await;
    let bench = |line: String| async move {
        let words = std::iter::once("keyframe-bench".to_owned())
            .chain(line.split_whitespace().map(str::to_owned));
        let args = Cli::try_parse_from(words).expect("arguments parse").bench;
        measure(args).await.err().map(|e| format!("{e:#}"))
    };
    // No token: the server's 403 and its body.
    let e = bench(format!(
        "players --abr {}/v1/objects/p/master.m3u8 --duration 1s",
        server.base()
    ))
    .await
    .expect("refused");
    assert!(e.contains("status 403") && e.contains("no token"), "{e}");
    // A media playlist where a multivariant one belongs.
    let e = bench(format!(
        "players --abr {}/v1/objects/p/low.m3u8?__token__=t0k --duration 1s",
        server.base()
    ))
    .await
    .expect("refused");
    assert!(e.contains("not a multivariant playlist"), "{e}");
    // --abr takes the URL itself.
    let e = bench(format!(
        "players --abr {}/v1/objects/p/master.m3u8 --url {}/x --duration 1s",
        server.base(),
        server.base()
    ))
    .await
    .expect("refused");
    assert!(e.contains("no --url"), "{e}");
}
