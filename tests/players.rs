//! Real players against the origin and through the edge: ffprobe reads an MP4's
//! duration (including one whose index sits at the end), ffmpeg seeks to the
//! middle and decodes, aria2c downloads in parallel segments and gets identical
//! bytes. An adaptive ladder (HLS and DASH over byte ranges) plays in ffprobe and
//! ffmpeg through a token-checking edge, cold and warm, given only the signed
//! URL of its multivariant playlist: the edge carries the token into every
//! reference of the manifests it serves. Skipped when the tools are absent,
//! except under `CI=true`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::ladder::{ingest_ladder, make_ladder, sign, store_ladder, TOKEN_KEY};
use common::{have_tools, serve_node, Running};
use keyframe_http::manifest::token_param;

fn encoder() -> &'static str {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if out.contains("libx264") {
        "libx264"
    } else {
        "mpeg4"
    }
}

fn make_clip(path: &Path, faststart: bool) {
    make_clip_of(path, faststart, "testsrc=duration=10:size=320x240:rate=25");
}

/// A 10 s clip of the lavfi `source` with a 440 Hz tone.
fn make_clip_of(path: &Path, faststart: bool, source: &str) {
    let mut c = Command::new("ffmpeg");
    c.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        source,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=10",
        "-c:v",
        encoder(),
        "-g",
        "25",
        "-c:a",
        "aac",
        "-shortest",
    ]);
    if faststart {
        c.args(["-movflags", "+faststart"]);
    }
    let st = c.arg(path).status().expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make a test clip");
}

#[test]
fn ffprobe_ffmpeg_and_aria2c_through_origin_and_edge() {
    if !have_tools(&["ffmpeg", "ffprobe", "aria2c"], "player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let media = tmp.path().join("objects/media");
    std::fs::create_dir_all(&media).expect("mkdir");
    make_clip(&media.join("fast.mp4"), true);
    make_clip(&media.join("slow.mp4"), false);
    let node = Running::start(serve_node(tmp.path(), &[]), 3);
    for server in ["origin", "edge"] {
        for clip in ["fast.mp4", "slow.mp4"] {
            let url = format!("{}/v1/objects/media/{clip}", node.url(server));
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "csv=p=0",
                    &url,
                ])
                .output()
                .expect("ffprobe");
            assert!(
                out.status.success(),
                "{server} {clip}: ffprobe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let d: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("a duration");
            assert!((9.5..10.5).contains(&d), "{server} {clip}: duration {d}");

            let out = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-ss",
                    "5",
                    "-i",
                    &url,
                    "-t",
                    "1",
                    "-f",
                    "null",
                    "-",
                ])
                .output()
                .expect("ffmpeg");
            assert!(
                out.status.success(),
                "{server} {clip}: seek failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );

            let dl = tmp.path().join(format!("dl-{server}"));
            let out = Command::new("aria2c")
                .args(["-q", "-x4", "-s4", "-k1M", "--allow-overwrite=true", "-d"])
                .arg(&dl)
                .args(["-o", clip, &url])
                .output()
                .expect("aria2c");
            assert!(
                out.status.success(),
                "{server} {clip}: aria2c failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let got = std::fs::read(dl.join(clip)).expect("downloaded");
            let want = std::fs::read(media.join(clip)).expect("original");
            assert!(got == want, "{server} {clip}: aria2c bytes differ");
        }
    }
    assert!(node.terminate().success());
}

/// Runs ffmpeg at `-v error` with `args` and returns its standard output; an error
/// (with ffmpeg's words) when it fails *or says anything at all*: ffmpeg exits 0
/// after hundreds of "Invalid NAL unit size" lines, so the status alone proves
/// nothing about what was decoded.
fn ffmpeg_clean(what: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        let head: String = stderr.lines().take(6).collect::<Vec<_>>().join("\n");
        return Err(format!("ffmpeg {what} ({}): {head}", out.status));
    }
    Ok(out.stdout)
}

/// Frames compared are 80x60 grey.
const FRAME_ARGS: [&str; 7] = [
    "-frames:v",
    "1",
    "-vf",
    "scale=80:60,format=gray",
    "-f",
    "rawvideo",
    "-",
];

/// One 80x60 grey frame of `url` at `at` seconds, decoded with no error: seeking
/// the input (`-ss` before `-i`, the demuxer seeks) or the output (after `-i`:
/// decode from the start and drop frames before `at`).
fn frame_at(url: &str, at: &str, seek_input: bool) -> Result<Vec<u8>, String> {
    let mut args = Vec::new();
    if seek_input {
        args.extend(["-ss", at, "-i", url]);
    } else {
        args.extend(["-i", url, "-ss", at]);
    }
    args.extend(FRAME_ARGS);
    let what = format!(
        "{} {at}",
        if seek_input {
            "-ss before -i"
        } else {
            "-ss after -i"
        }
    );
    let frame = ffmpeg_clean(&what, &args)?;
    if frame.len() != 80 * 60 {
        return Err(format!(
            "ffmpeg {what}: {} bytes, not one frame",
            frame.len()
        ));
    }
    Ok(frame)
}

/// Peak signal-to-noise ratio of two grey frames, dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.len().max(1) as f64;
    if mse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// ffprobe's duration of `url`; and ffmpeg plays it whole and seeks to 6 s (a
/// frame decoded there), both without one error line.
fn probe_and_seek(url: &str) -> Result<f64, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("ffprobe");
    if !out.status.success() {
        return Err(format!("ffprobe: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let d: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("ffprobe said {:?}", String::from_utf8_lossy(&out.stdout)))?;
    ffmpeg_clean("playing", &["-i", url, "-f", "null", "-"])?;
    // ffmpeg 5.1's HLS demuxer cannot seek fMP4 (ARCHITECTURE.md): the seek is
    // made on the output side, which every HLS player's seek amounts to.
    frame_at(url, "6", false)?;
    Ok(d)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ladder_plays_through_a_token_edge_and_its_manifests_carry_the_token() {
    if !have_tools(&["ffmpeg", "ffprobe"], "player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let ladder = tmp.path().join("ladder");
    make_ladder(&ladder, 12);
    let data = tmp.path().join("data");
    let a = store_ladder(&data, &ladder, "a");
    let b = store_ladder(&data, &ladder, "b");
    let node = Running::start(serve_node(&data, &["--token-key", TOKEN_KEY]), 3);
    let edge = node.url("edge").to_string();
    let origin = node.url("origin").to_string();
    let param = token_param(&sign(&a, std::time::Duration::from_secs(3600)));
    let master = format!("{edge}{a}master.m3u8?{param}");

    // ffprobe and ffmpeg know only the signed playlist URL: cold, then warm.
    for pass in ["cold", "warm"] {
        let d = tokio::task::block_in_place(|| probe_and_seek(&master))
            .unwrap_or_else(|e| panic!("{pass} edge: {e}"));
        assert!((11.0..13.5).contains(&d), "{pass} edge: duration {d}");
    }

    let http = reqwest::Client::new();
    let get = |url: String| http.get(url).header("Origin", "https://page.example");
    // The multivariant playlist: every reference carries the token; the answer
    // has its own length and entity tag, and offers no ranges.
    let r = get(master.clone()).send().await.expect("master");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(header(&r, "access-control-expose-headers").contains("Content-Range"));
    assert_eq!(header(&r, "accept-ranges"), "none");
    let etag = header(&r, "etag").to_string();
    let length: usize = header(&r, "content-length").parse().expect("length");
    let text = r.text().await.expect("body");
    assert_eq!(text.len(), length, "Content-Length is the rewritten body's");
    let stored = http
        .get(format!("{origin}{a}master.m3u8"))
        .send()
        .await
        .expect("origin");
    let stored_etag = header(&stored, "etag").to_string();
    let stored = stored.text().await.expect("stored body");
    assert!(
        !stored.contains("__token__"),
        "objects are stored as ingested"
    );
    assert_ne!(etag, stored_etag, "a rewritten body has its own entity tag");
    assert_eq!(
        text.replace(&format!("?{param}"), ""),
        stored,
        "the token is the only change"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.ends_with(&format!("?{param}")), "{line}");
    }
    assert!(
        text.contains(&format!("URI=\"media_2.m3u8?{param}\"")),
        "{text}"
    );

    // Served again from the cache (the stored, unrewritten manifest), with this
    // request's own token: the token is no part of the cache key.
    let other = token_param(&sign(&a, std::time::Duration::from_secs(7200)));
    assert_ne!(other, param);
    let r = get(format!("{edge}{a}master.m3u8?{other}"))
        .send()
        .await
        .expect("again");
    assert!(
        header(&r, "cache-status").contains("hit"),
        "{:?}",
        r.headers()
    );
    let again = r.text().await.expect("body");
    assert_eq!(again.replace(&format!("?{other}"), ""), stored);

    // HEAD states no length it cannot know (the rewritten body's, or none).
    let r = http.head(master.clone()).send().await.expect("head");
    assert_eq!(r.status(), 200);
    let head_length = header(&r, "content-length");
    assert!(
        head_length.is_empty() || head_length == length.to_string(),
        "HEAD Content-Length {head_length}, GET body {length}"
    );
    assert_eq!(header(&r, "etag"), etag);

    // A Range on a manifest is ignored: the whole rewritten playlist, 200.
    let r = get(master.clone())
        .header("Range", "bytes=0-9")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), text);

    // Every reference of a media playlist opens with nothing but what it says.
    let media = get(format!("{edge}{a}media_0.m3u8?{param}"))
        .send()
        .await
        .expect("media playlist")
        .text()
        .await
        .expect("body");
    let init = media
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .expect("an EXT-X-MAP");
    let r = get(format!("{edge}{a}{init}"))
        .header("Range", "bytes=0-99")
        .send()
        .await
        .expect("init");
    assert_eq!(r.status(), 206, "{init}");
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    // The MPD: BaseURLs carry it too.
    let mpd = get(format!("{edge}{a}stream.mpd?{param}"))
        .send()
        .await
        .expect("mpd")
        .text()
        .await
        .expect("body");
    let base = mpd
        .split("<BaseURL>")
        .nth(1)
        .and_then(|s| s.split("</BaseURL>").next())
        .expect("a BaseURL");
    assert_eq!(base, format!("stream-stream0.mp4?{param}"));
    let r = get(format!("{edge}{a}{base}"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("rendition");
    assert_eq!(r.status(), 206);
    // A switch to another rendition and back: what was cached stays cached.
    let r = get(format!("{edge}{a}stream-stream1.mp4?{param}"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("other rendition");
    assert_eq!(r.status(), 206);
    let r = get(format!("{edge}{a}{base}"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("rendition again");
    assert!(
        header(&r, "cache-status").contains("hit"),
        "{:?}",
        r.headers()
    );

    // Title A's token does not open title B; the refusal is readable cross-origin.
    for url in [
        format!("{edge}{b}master.m3u8?{param}"),
        format!("{edge}{b}stream-stream0.mp4?{param}"),
        format!("{edge}{a}master.m3u8"),
    ] {
        let r = get(url.clone()).send().await.expect("refused");
        assert_eq!(r.status(), 403, "{url}");
        assert_eq!(header(&r, "access-control-allow-origin"), "*", "{url}");
    }

    // A preflight for a range request is answered by the edge.
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{edge}{a}stream-stream0.mp4?{param}"),
        )
        .header("Origin", "https://page.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "range")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 204);
    assert!(header(&r, "access-control-allow-headers").contains("Range"));
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingested_ladder_plays_in_ffprobe_and_ffmpeg_from_the_catalogs_url_cold_and_warm() {
    if !have_tools(&["ffmpeg", "ffprobe"], "player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, true);
    let data = tmp.path().join("data");
    let id = ingest_ladder(&data, &clip, "240,120");
    let mut cmd = serve_node(&data, &["--token-key", TOKEN_KEY]);
    cmd.env("KEYFRAME_PUBLIC_CONTENT", "true");
    let node = Running::start(cmd, 3);
    let play: serde_json::Value =
        reqwest::get(format!("{}/api/content/{id}/play", node.url("catalog")))
            .await
            .expect("play")
            .json()
            .await
            .expect("play JSON");
    let hls = play["hls"]
        .as_str()
        .unwrap_or_else(|| panic!("no hls URL in {play}"));
    assert!(play["dash"].is_string(), "no dash URL in {play}");
    assert!(
        hls.starts_with(node.url("edge")) && hls.contains("__token__="),
        "{hls}"
    );
    // The catalog's one URL is all ffprobe and ffmpeg get: cold edge, then warm.
    for pass in ["cold", "warm"] {
        let d = tokio::task::block_in_place(|| probe_and_seek(hls))
            .unwrap_or_else(|e| panic!("{pass} edge: {e}"));
        assert!((9.0..11.0).contains(&d), "{pass} edge: duration {d}");
        // The frame at 6 s is the master's frame at 6 s (HLS, decoded up to there).
        let master = clip.to_str().expect("utf-8 path");
        let want = frame_at(master, "6", true).expect("master frame");
        let other = frame_at(master, "2", true).expect("master frame");
        let got = tokio::task::block_in_place(|| frame_at(hls, "6", false))
            .unwrap_or_else(|e| panic!("{pass} edge: {e}"));
        let (right, wrong) = (psnr(&got, &want), psnr(&got, &other));
        assert!(
            right > 25.0 && right > wrong + 5.0,
            "{pass} edge: PSNR {right:.1} dB to the master at 6 s, {wrong:.1} to 2 s"
        );
    }
    // ffprobe reads the DASH MPD from the catalog's URL too. Its DASH demuxer
    // resolves the MPD's relative `BaseURL`s against the MPD's URL cut at its last
    // `/`, query included: with a `/` in the token's query every rendition request
    // went to a wrong path and was refused (403).
    let dash = play["dash"].as_str().expect("dash URL");
    let out = tokio::task::block_in_place(|| {
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_type,height"])
            .args(["-of", "csv=p=0", dash])
            .output()
            .expect("ffprobe")
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("video,240") && text.contains("audio"),
        "ffprobe of the catalog's DASH URL: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the token's query, the playlist is refused.
    let bare = hls.split('?').next().expect("path");
    assert_eq!(reqwest::get(bare).await.expect("bare").status(), 403);
    assert!(node.terminate().success());
}

/// A title's playback token is short (one hash-prefix pattern per object, not
/// every object's path), so a media playlist with the token written into each of
/// its references stays small; and it still opens no other title: title A's token
/// is refused for title B's manifests and renditions by the edge and by an origin
/// that checks tokens itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_titles_token_is_short_and_opens_no_other_title_on_edge_or_origin() {
    if !have_tools(&["ffmpeg", "ffprobe"], "player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (clip_a, clip_b) = (tmp.path().join("a.mp4"), tmp.path().join("b.mp4"));
    make_clip(&clip_a, true);
    make_clip_of(&clip_b, true, "testsrc2=duration=10:size=320x240:rate=25");
    let data = tmp.path().join("data");
    let a = ingest_ladder(&data, &clip_a, "240,120");
    let b = ingest_ladder(&data, &clip_b, "240,120");
    let mut cmd = serve_node(&data, &["--token-key", TOKEN_KEY]);
    cmd.env("KEYFRAME_PUBLIC_CONTENT", "true");
    let node = Running::start(cmd, 3);
    let mut origin_cmd = common::keyframe();
    origin_cmd.arg("--data-dir").arg(&data).args([
        "origin",
        "--listen",
        "127.0.0.1:0",
        "--token-key",
        TOKEN_KEY,
    ]);
    let origin = Running::start(origin_cmd, 1);
    let edge = node.url("edge").to_string();
    let play = |id: String| {
        let url = format!("{}/api/content/{id}/play", node.url("catalog"));
        let edge = edge.clone();
        async move {
            let v: serde_json::Value = reqwest::get(url)
                .await
                .expect("play")
                .json()
                .await
                .expect("play JSON");
            let hls = v["hls"].as_str().expect("hls URL").to_string();
            let (path, param) = hls
                .strip_prefix(&edge)
                .and_then(|p| p.split_once('?'))
                .expect("an edge URL with a token");
            (path.to_string(), param.to_string())
        }
    };
    let (a_master, a_param) = play(a).await;
    let (b_master, b_param) = play(b).await;
    assert!(
        a_param.len() < 400,
        "the token is short: {} bytes, {a_param}",
        a_param.len()
    );

    let http = reqwest::Client::new();
    let text = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(&url).send().await.expect("get");
            assert_eq!(r.status(), 200, "{url}");
            r.text().await.expect("body")
        }
    };
    // Title B's objects, as B's own playlists name them: its media playlists and
    // (from the first) its rendition.
    let b_dir = b_master.rsplit_once('/').expect("dir").0.to_string();
    let b_text = text(format!("{edge}{b_master}?{b_param}")).await;
    let b_media: Vec<String> = b_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('?').next().unwrap_or(l).to_string())
        .collect();
    assert!(!b_media.is_empty(), "{b_text}");
    let media = text(format!("{edge}{b_dir}/{}?{b_param}", b_media[0])).await;
    let b_rendition = media
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .and_then(|l| l.split('?').next())
        .expect("a segment reference")
        .to_string();

    // A media playlist through the edge: the token in each reference, and little
    // else (the old token listed every object's path, about 90 bytes each).
    let stored = text(format!("{}{b_dir}/{}", node.url("origin"), b_media[0])).await;
    let refs = media.matches("__token__=").count();
    assert!(refs > 2, "{media}");
    assert!(
        media.len() <= stored.len() + refs * (b_param.len() + 1),
        "{} bytes rewritten from {} with {refs} references",
        media.len(),
        stored.len()
    );

    for (server, base) in [("edge", edge.as_str()), ("origin", origin.url("origin"))] {
        // A's token opens A...
        let r = http
            .get(format!("{base}{a_master}?{a_param}"))
            .send()
            .await
            .expect("own title");
        assert_eq!(r.status(), 200, "{server}: A's token on A");
        // ...and none of B's manifests or renditions; B's own token does.
        let mut b_paths = vec![b_master.clone()];
        b_paths.extend(b_media.iter().map(|m| format!("{b_dir}/{m}")));
        b_paths.push(format!("{b_dir}/{b_rendition}"));
        for path in &b_paths {
            let r = http
                .get(format!("{base}{path}?{a_param}"))
                .header("Range", "bytes=0-99")
                .send()
                .await
                .expect("other title");
            assert_eq!(r.status(), 403, "{server}: A's token on {path}");
            let r = http
                .get(format!("{base}{path}?{b_param}"))
                .header("Range", "bytes=0-99")
                .send()
                .await
                .expect("own token");
            assert!(
                r.status().is_success(),
                "{server}: B's token on {path}: {}",
                r.status()
            );
        }
    }
    assert!(origin.terminate().success());
    assert!(node.terminate().success());
}

/// A title ingested with a ladder plays in ffprobe and ffmpeg from its HLS
/// multivariant playlist (and its DASH MPD) through the origin and the edge: all
/// streams found, a seek to 2 s decodes a frame.
#[test]
fn ladder_plays_in_ffprobe_and_ffmpeg_through_origin_and_edge() {
    if !have_tools(&["ffmpeg", "ffprobe"], "ladder player tests") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let clip = tmp.path().join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=duration=9:size=320x180:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=9"])
        .args([
            "-c:v",
            encoder(),
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let out = common::keyframe()
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["ingest", "--json", "--ladder", "180,90"])
        .arg(&clip)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let path = |role: &str| -> String {
        report["ladder"]
            .as_array()
            .expect("ladder")
            .iter()
            .find(|a| a["role"] == role)
            .and_then(|a| a["path"].as_str())
            .unwrap_or_else(|| panic!("a {role} in {report}"))
            .to_string()
    };
    let (hls, dash) = (path("hls"), path("dash"));
    let node = Running::start(serve_node(tmp.path(), &[]), 3);
    for server in ["origin", "edge"] {
        for manifest in [&hls, &dash] {
            let url = format!("{}{manifest}", node.url(server));
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=codec_type,width,height",
                    "-of",
                    "csv=p=0",
                    &url,
                ])
                .output()
                .expect("ffprobe");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{server} {manifest}: ffprobe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for stream in ["video,320,180", "video,160,90", "audio"] {
                assert!(
                    text.lines().any(|l| l.starts_with(stream)),
                    "{server} {manifest}: no {stream} stream in {text}"
                );
            }
        }
        // ffmpeg 5.1's DASH demuxer hangs on single-file SegmentLists (its own
        // `-f dash -single_file 1` output too), so decoding is checked on HLS; the
        // browsers' players (hls.js, Shaka) play both.
        let url = format!("{}{hls}", node.url(server));
        let decode = |extra: &[&str], after: &[&str]| {
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error"])
                .args(extra)
                .arg("-i")
                .arg(&url)
                .args(after)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg");
            assert!(
                out.status.success(),
                "{server}: ffmpeg {extra:?} {after:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // Every segment of every stream decodes.
        decode(&[], &["-map", "0"]);
        // A seek to 2 s decodes a frame. (Video only: ffmpeg 5.1's HLS demuxer
        // misreads an fMP4 audio segment it seeks into, its own
        // `-hls_segment_type fmp4` output alike.)
        decode(&["-ss", "2"], &["-map", "0:v:0", "-frames:v", "1"]);
    }
    assert!(node.terminate().success());
}
