//! The web page in real headless Chromium, driven over WebDriver (chromedriver's
//! plain JSON-over-HTTP protocol): open the page of a `serve` node with a token
//! key; see the trending and category rows and the posters load; follow a
//! category, a title and Back, open a title's deep link, reload it, search and
//! reload; sign up and see the uploaded avatar load; play an ingested clip through
//! the edge with the signed URL the page is given, check that `currentTime`
//! advances, seek to the middle and check that it plays on, and save a screenshot
//! as a test artifact (`$CARGO_TARGET_TMPDIR/keyframe-browser.png`). A second
//! test pauses a film past its token's lifetime, resumes and seeks. The adaptive
//! streaming tests are in `browser_abr.rs`; the driver is `common/browser.rs`.
//!
//! chromedriver runs in a process group of its own, which is killed when the test
//! ends, passed or failed; this process is the subreaper of its descendants, so
//! the crashpad handlers Chromium detaches (`setsid`, double fork) are found among
//! its children and killed too. Nothing the test started outlives it.
//!
//! Skipped when chromium, chromedriver or ffmpeg are missing, except under
//! `CI=true` (`.ci/run` installs them).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{browser_for, make_clip, serve, Driver, ONE_BROWSER};
use common::keyframe;
use serde_json::Value;

/// A 25-second, ~15 MB VP8 WebM clip (one second of noise encoded, then repeated
/// without re-encoding): too large for Chromium to buffer whole while paused, so a
/// seek far ahead needs a new range request.
fn make_big_clip(dir: &Path) -> std::path::PathBuf {
    let one = dir.join("noise-1s.webm");
    let big = dir.join("noise.webm");
    for args in [
        vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=1:size=640x360:rate=25",
            "-vf",
            "noise=alls=60:allf=t",
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "4M",
            "-minrate",
            "4M",
            "-maxrate",
            "4M",
            "-g",
            "25",
            "-an",
            one.to_str().expect("utf-8 path"),
        ],
        vec![
            "-stream_loop",
            "24",
            "-i",
            one.to_str().expect("utf-8 path"),
            "-c",
            "copy",
            big.to_str().expect("utf-8 path"),
        ],
    ] {
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .status()
            .expect("ffmpeg");
        assert!(st.success(), "ffmpeg could not make the large clip");
    }
    big
}

/// Ingests `clip` as `title` in `categories`, progressive only (`--ladder none`:
/// these tests follow the signed URL of the file itself); its content id.
fn ingest(data: &Path, clip: &Path, title: &str, categories: &[&str]) -> String {
    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(data)
        .args(["ingest", "--json", "--ladder", "none", "--title", title]);
    for c in categories {
        cmd.args(["--category", c]);
    }
    let out = cmd.arg(clip).output().expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .expect("a JSON line"),
    )
    .expect("ingest JSON");
    v["content_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no content_id in {v}"))
        .to_string()
}

#[tokio::test]
async fn sign_up_play_through_the_edge_and_seek_in_chromium() {
    let Some(browser) = browser_for("browser test") else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let clip = tmp.path().join("pattern.webm");
    make_clip(&clip);
    let id = ingest(&data, &clip, "Test Pattern", &["Patterns"]);

    // With a token key: the page plays the signed URL the catalog gives it, through
    // the edge, which checks the token (the origin behind it asks none).
    let node = serve(&data, &[]);
    let edge = node.url("edge").to_string();
    let catalog = node.url("catalog").to_string();
    let d = Driver::start(browser).await;
    d.goto(&catalog).await;
    d.wait("the title's card", "document.querySelector('#grid .card')")
        .await;

    // Home shows rows besides the grid: trending, and one per category.
    d.wait(
        "the trending and category rows",
        "document.querySelector('#rows [data-row=\"trending\"] .card') && \
         document.querySelector('#rows [data-row=\"category:Patterns\"] .card')",
    )
    .await;
    // Posters load through the edge with their tokens (serve --token-key).
    d.wait(
        "the posters to load",
        "(() => { const imgs = [...document.querySelectorAll('img.poster')]; \
           return imgs.length >= 3 && imgs.every((i) => i.complete && i.naturalWidth > 0 \
             && i.currentSrc.includes('__token__=')); })()",
    )
    .await;

    // A title has its own URL; Back returns to the view it was opened from.
    d.click("#rows [data-row=\"category:Patterns\"] .see-all")
        .await;
    d.wait(
        "the category view",
        "location.pathname === '/category/Patterns' && \
         document.getElementById('browse-title').textContent === 'Patterns' && \
         document.querySelector('#grid .card') && \
         getComputedStyle(document.getElementById('rows')).display === 'none'",
    )
    .await;
    d.click("#grid .card").await;
    d.wait(
        "the title at its own URL",
        &format!(
            "document.getElementById('title-dialog').open && location.pathname === '/title/{id}' \
             && document.getElementById('detail-title').textContent === 'Test Pattern'"
        ),
    )
    .await;
    d.back().await;
    d.wait(
        "Back to the category",
        "!document.getElementById('title-dialog').open && location.pathname === '/category/Patterns' \
         && document.querySelector('#grid .card')",
    )
    .await;
    d.back().await;
    d.wait(
        "Back home",
        "location.pathname === '/' && !document.getElementById('rows').classList.contains('off')",
    )
    .await;

    // A deep link opens the title directly, and reload keeps it open.
    d.goto(&format!("{catalog}/title/{id}")).await;
    d.wait(
        "the deep-linked title",
        "document.getElementById('title-dialog').open && \
         document.getElementById('detail-title').textContent === 'Test Pattern'",
    )
    .await;
    d.refresh().await;
    d.wait(
        "the title after a reload",
        "document.getElementById('title-dialog').open && \
         document.getElementById('detail-title').textContent === 'Test Pattern'",
    )
    .await;
    // Closing it leaves its URL for the view underneath (home, for a deep link).
    d.click("#detail-close").await;
    d.wait(
        "home after closing",
        "!document.getElementById('title-dialog').open && location.pathname === '/' \
         && document.querySelector('#grid .card')",
    )
    .await;

    // Search has a URL too, kept by a reload; Back leaves it.
    d.type_into("#search", "pattern").await;
    d.wait(
        "the search results",
        "location.pathname === '/search' && new URLSearchParams(location.search).get('q') === 'pattern' \
         && document.querySelector('#grid .card')",
    )
    .await;
    d.refresh().await;
    d.wait(
        "the search after a reload",
        "location.pathname === '/search' && document.getElementById('search').value === 'pattern' \
         && document.getElementById('browse-title').textContent.includes('pattern') \
         && document.querySelector('#grid .card')",
    )
    .await;
    d.back().await;
    d.wait("home again", "location.pathname === '/'").await;
    assert!(d.url().await.ends_with('/'), "{}", d.url().await);

    // Sign up through the page's own form.
    d.click("#signup-open").await;
    d.type_into("#signup-dialog input[name=username]", "viewer")
        .await;
    d.type_into("#signup-dialog input[name=email]", "viewer@example.com")
        .await;
    d.js(
        "document.querySelector('#signup-dialog input[name=date_of_birth]').value = '1990-04-01';",
    )
    .await;
    d.type_into(
        "#signup-dialog input[name=password]",
        "correct horse battery",
    )
    .await;
    d.click("#signup-dialog button[type=submit]").await;
    d.wait("being signed in", "!document.getElementById('me').hidden")
        .await;

    // A profile picture (drawn on a canvas, uploaded as the page does) loads
    // from the edge with its token.
    d.js(
        "const c = document.createElement('canvas'); c.width = 96; c.height = 96; \
         const g = c.getContext('2d'); g.fillStyle = '#3a7'; g.fillRect(0, 0, 96, 96); \
         c.toBlob(async (b) => { \
           keyframe.state.me = await keyframe.api('/api/users/me/avatar', \
             { method: 'PUT', body: b, headers: { 'Content-Type': 'image/png' } }); \
           window.__avatarDone = true; }, 'image/png');",
    )
    .await;
    d.wait("the avatar upload", "window.__avatarDone === true")
        .await;
    d.refresh().await;
    d.wait(
        "the avatar to load",
        "(() => { const i = document.getElementById('avatar'); \
           return !i.hidden && i.complete && i.naturalWidth > 0 && i.currentSrc.includes('__token__='); })()",
    )
    .await;

    // Open the title and play it.
    d.wait("the title's card", "document.querySelector('#grid .card')")
        .await;
    d.click("#grid .card").await;
    d.wait(
        "the title dialog",
        "document.getElementById('title-dialog').open",
    )
    .await;
    d.click("#play").await;
    d.wait(
        "playback through the edge",
        "document.getElementById('video').currentTime > 1",
    )
    .await;
    let src = d
        .js("return document.getElementById('video').currentSrc")
        .await;
    let src = src.as_str().expect("src");
    assert!(
        src.starts_with(&edge) && src.contains("__token__="),
        "the video plays from {src}, not a signed URL of the edge {edge}"
    );

    // Seek to the middle: it plays on from there.
    let duration = d
        .js("return document.getElementById('video').duration")
        .await
        .as_f64()
        .expect("duration");
    assert!((11.0..13.5).contains(&duration), "duration {duration}");
    d.js("const v = document.getElementById('video'); v.currentTime = v.duration / 2;")
        .await;
    d.wait(
        "playback after the seek",
        "(() => { const v = document.getElementById('video'); \
           return !v.seeking && v.currentTime > v.duration / 2 + 1 && !v.paused; })()",
    )
    .await;
    let error = d
        .js("const e = document.getElementById('video').error; return e && e.message")
        .await;
    assert_eq!(error, Value::Null, "the video element reported an error");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keyframe-browser.png");
    d.screenshot(&shot).await;
    eprintln!("screenshot: {}", shot.display());

    // The edge served ranges of the clip (the player seeks with byte ranges).
    let metrics = reqwest::get(format!("{edge}/_keyframe/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keyframe_http_requests_total{status=\"206\"}")),
        "no 206 answers at the edge:\n{metrics}"
    );
}

/// A film paused for longer than its token lives resumes without an error: the
/// token lasts the title's duration plus `play_token_ttl_secs` (2 s here), the
/// viewer pauses past that, and resuming and seeking far ahead (a new range
/// request, the edge checks the token again) plays on, because the page swaps in a
/// fresh URL at the same position.
#[tokio::test]
async fn a_film_paused_past_its_token_resumes_in_chromium() {
    let Some(browser) = browser_for("browser test") else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let clip = make_big_clip(tmp.path());
    ingest(&data, &clip, "Noise", &[]);
    let node = serve(
        &data,
        &[
            ("KEYFRAME_PLAY_TOKEN_TTL_SECS", "2"),
            ("KEYFRAME_PUBLIC_CONTENT", "true"),
        ],
    );
    let d = Driver::start(browser).await;
    d.goto(node.url("catalog")).await;
    d.wait("the title's card", "document.querySelector('#grid .card')")
        .await;
    d.click("#grid .card").await;
    d.wait(
        "the title dialog",
        "document.getElementById('title-dialog').open",
    )
    .await;
    d.click("#play").await;
    d.wait(
        "playback",
        "document.getElementById('video').currentTime > 1",
    )
    .await;
    d.js("document.getElementById('video').pause();").await;
    let old_src = d
        .js("return document.getElementById('video').currentSrc")
        .await
        .as_str()
        .expect("src")
        .to_string();
    let claims = old_src
        .split("exp=")
        .nth(1)
        .and_then(|r| r.split('~').next())
        .and_then(|e| e.parse::<u64>().ok())
        .expect("the token's exp");

    // Paused past the token's expiry (25 s of film + 2 s).
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        if now > claims + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The edge does refuse the old URL now, and the player has not buffered the
    // place the viewer will seek to, so it needs a new range request.
    let refused = reqwest::Client::new()
        .get(&old_src)
        .header("range", "bytes=0-0")
        .send()
        .await
        .expect("edge");
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    let buffered = d
        .js("const b = document.getElementById('video').buffered; \
             return b.length ? b.end(b.length - 1) : 0;")
        .await
        .as_f64()
        .expect("buffered");
    assert!(
        buffered < 19.0,
        "Chromium buffered up to {buffered} s: the test would not need a new range"
    );

    // Resume, then seek far ahead: it plays on, without an error.
    d.js("document.getElementById('video').play();").await;
    d.wait(
        "playback after the pause",
        "(() => { const v = document.getElementById('video'); \
           return !v.paused && v.currentTime > 1.5 && !(keyframe.state.playback || {}).renewing; })()",
    )
    .await;
    d.js("document.getElementById('video').currentTime = 20;")
        .await;
    d.wait(
        "playback after seeking far ahead",
        "(() => { const v = document.getElementById('video'); \
           return !v.seeking && v.currentTime > 21 && !v.paused && !v.error; })()",
    )
    .await;
    let status = d
        .js("return document.getElementById('status').textContent")
        .await;
    assert_eq!(status, "", "the page reported a problem");
    let src = d
        .js("return document.getElementById('video').currentSrc")
        .await;
    assert_ne!(src.as_str(), Some(old_src.as_str()), "plays on a fresh URL");
}
