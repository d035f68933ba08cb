//! The web page in real headless Chromium, driven over WebDriver (chromedriver's
//! plain JSON-over-HTTP protocol): open the page of a `serve` node with a token
//! key; see the trending and category rows and the posters load; follow a
//! category, a title and Back, open a title's deep link, reload it, search and
//! reload; sign up and see the uploaded avatar load; play an ingested clip through
//! the edge with the signed URL the page is given, check that `currentTime`
//! advances, seek to the middle and check that it plays on, and save a screenshot
//! as a test artifact (`$CARGO_TARGET_TMPDIR/keyframe-browser.png`). A second
//! test pauses a film past its token's lifetime, resumes and seeks.
//!
//! chromedriver runs in a process group of its own, which is killed when the test
//! ends, passed or failed; this process is the subreaper of its descendants, so
//! the crashpad handlers Chromium detaches (`setsid`, double fork) are found among
//! its children and killed too. Nothing the test started outlives it.
//!
//! Adaptive streaming: the page plays an ingested ladder through hls.js (vendored)
//! with a quality menu (Auto and each rung), and the progressive file when hls.js
//! is blocked. hls.js (HLS) and Shaka Player (DASH, and HLS) play an ingested
//! ladder through a token-checking edge from a page on another origin (CORS),
//! given only the URLs the catalog's play answer holds, seek, and switch down a rung when the network is
//! throttled (DevTools' `Network.emulateNetworkConditions`) and back up when it
//! is not, as the players' own events say (hls.js `LEVEL_SWITCHED`, Shaka
//! `adaptation` and `getStats()`). Shaka comes from npm at the version
//! `catalog/web/package-lock.json` pins (`npm ci` in `.ci/run`), and the
//! vendored hls.js must be the file that lockfile installs.
//!
//! Skipped when chromium, chromedriver or ffmpeg (or, for the ladder, the npm
//! packages) are missing, except under `CI=true` (`.ci/run` installs them).

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    become_subreaper, have_tools, keyframe, kill_children_named, kill_group, missing, runs, Running,
};
use serde_json::{json, Value};

/// One browser at a time: a test's cleanup kills every Chromium process among this
/// process's children, which would include another test's.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| runs(b))
}

/// A 12-second VP8 WebM clip with a moving test pattern (every browser plays it).
fn make_clip(path: &Path) {
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=12:size=320x240:rate=25",
            "-c:v",
            "libvpx",
            "-b:v",
            "400k",
            "-g",
            "25",
            "-an",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make a test clip");
}

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

/// `keyframe serve` on port 0 with a token key, and `env` besides.
fn serve(data: &Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = keyframe();
    cmd.arg("--data-dir").arg(data).args([
        "serve",
        "--catalog-listen",
        "127.0.0.1:0",
        "--edge-listen",
        "127.0.0.1:0",
        "--origin-listen",
        "127.0.0.1:0",
        "--token-key",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running::start(cmd, 3)
}

/// chromedriver, which starts the browser: in a process group of its own, killed on
/// drop with whatever of Chromium's left the group (its crashpad handlers). Owned
/// from the moment it is spawned, so a failure anywhere after still reaps it.
struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        kill_group(&self.0);
        let _ = self.0.wait();
        kill_children_named(&["chrom"]);
    }
}

struct Driver {
    _chromedriver: Chromedriver,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start(browser: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        become_subreaper();
        let chromedriver = Chromedriver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let binary = which(browser);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--mute-audio",
                         "--autoplay-policy=no-user-gesture-required",
                         "--window-size=1280,900"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Driver {
            _chromedriver: chromedriver,
            base,
            session,
            http,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rb = self.http.request(method, url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let v: Value = rb
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await;
        v.as_str().expect("url").to_string()
    }

    async fn back(&self) {
        self.cmd(reqwest::Method::POST, "/back", Some(json!({})))
            .await;
    }

    async fn refresh(&self) {
        self.cmd(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Polls `script` (an expression) until it is true.
    async fn wait(&self, what: &str, script: &str) {
        self.wait_for(what, script, Duration::from_secs(30)).await;
    }

    /// Polls `script` (an expression) until it is true, for at most `within`.
    async fn wait_for(&self, what: &str, script: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.js(&format!("return !!({script});")).await == true {
                return;
            }
            if Instant::now() > deadline {
                let status = self
                    .js("return document.getElementById('status').textContent")
                    .await;
                let page = self
                    .js("const v = document.getElementById('video'); \
                         return { url: location.href, time: v.currentTime, paused: v.paused, \
                                  ready: v.readyState, network: v.networkState, \
                                  err: v.error && v.error.message, src: v.currentSrc };")
                    .await;
                panic!("timed out waiting for {what} (page status: {status}; page: {page})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    /// Throttles the page's downloads to `bytes_per_sec`, or lifts it (None).
    async fn throttle(&self, bytes_per_sec: Option<u64>) {
        let rate = bytes_per_sec.map_or(-1.0, |b| b as f64);
        self.cdp("Network.enable", json!({})).await;
        self.cdp(
            "Network.emulateNetworkConditions",
            json!({"offline": false, "latency": if bytes_per_sec.is_some() { 20 } else { 0 },
                   "downloadThroughput": rate, "uploadThroughput": -1.0}),
        )
        .await;
    }

    async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

fn which(bin: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn sign_up_play_through_the_edge_and_seek_in_chromium() {
    let Some(browser) = chromium() else {
        missing("chromium is not installed", "browser test");
        return;
    };
    if !have_tools(&["chromedriver", "ffmpeg"], "browser test") {
        return;
    }
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
    let Some(browser) = chromium() else {
        missing("chromium is not installed", "browser test");
        return;
    };
    if !have_tools(&["chromedriver", "ffmpeg"], "browser test") {
        return;
    }
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

/// Where `npm ci` put catalog/web's packages: `$KEYFRAME_TEST_NODE_MODULES`
/// (`.ci/run` sets it), or `catalog/web/node_modules`.
fn node_modules() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("KEYFRAME_TEST_NODE_MODULES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/web/node_modules"));
    dir.join("shaka-player/dist/shaka-player.compiled.js")
        .is_file()
        .then_some(dir)
}

/// Serves the files of `dir` over plain HTTP/1.1 on a loopback port of its own (so
/// the page's origin is not the edge's) from a thread; its base URL.
fn static_server(dir: std::path::PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                // The rest of the head, up to its blank line.
                loop {
                    let mut l = String::new();
                    match reader.read_line(&mut l) {
                        Ok(n) if n > 2 => continue,
                        _ => break,
                    }
                }
                let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
                let (status, body) = match std::fs::read(dir.join(name)) {
                    Ok(b) if !name.contains("..") && !name.is_empty() => ("200 OK", b),
                    _ => ("404 Not Found", b"not found".to_vec()),
                };
                let kind = if name.ends_with(".js") {
                    "text/javascript"
                } else {
                    "text/html"
                };
                let mut out = &conn;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = out.write_all(&body);
            });
        }
    });
    base
}

/// The player page: both libraries, and functions that start each one on a URL
/// and record its rendition switches (`events`) and errors.
const PLAYERS_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>players</title>
<video id="video" muted playsinline width="320" height="180"></video><p id="status"></p>
<script src="hls.min.js"></script><script src="shaka-player.compiled.js"></script>
<script>
window.events = []; window.errors = [];
const v = document.getElementById("video");
const note = (e) => { window.events.push(Object.assign({ at: performance.now(), t: v.currentTime }, e));
  document.getElementById("status").textContent = JSON.stringify(window.events.slice(-3)); };
// Short buffers, so that the players keep fetching (and choosing) as they play.
// The height of the rung playing now, as the player itself reports it.
window.height = () => window.player instanceof Hls
  ? (window.player.levels[window.player.currentLevel] || {}).height
  : window.player.getStats().height;
window.startHlsJs = (url) => {
  const hls = new Hls({ startLevel: 1, maxBufferLength: 6, maxMaxBufferLength: 8, backBufferLength: 4,
                        abrEwmaFastVoD: 0.5, abrEwmaSlowVoD: 1, abrEwmaDefaultEstimate: 3e6 });
  window.player = hls;
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => note({ kind: "switch", height: hls.levels[d.level].height }));
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.errors.push(`${d.type}:${d.details}:${d.response ? d.response.code : ""}`); });
  hls.loadSource(url); hls.attachMedia(v); v.play().catch((e) => window.errors.push(`play:${e}`));
};
window.startShaka = async (url) => {
  shaka.polyfill.installAll();
  const p = new shaka.Player(); window.player = p;
  await p.attach(v);
  p.configure({ streaming: { bufferingGoal: 6, rebufferingGoal: 1, bufferBehind: 4 },
                abr: { enabled: true, switchInterval: 1, defaultBandwidthEstimate: 3e6, restrictToElementSize: false } });
  p.addEventListener("adaptation", () => note({ kind: "switch", height: p.getStats().height }));
  p.addEventListener("error", (e) => window.errors.push(`shaka:${e.detail.code}`));
  try { await p.load(url); } catch (e) { window.errors.push(`load:${e.code}`); return; }
  note({ kind: "loaded", height: p.getStats().height });
  v.play().catch((e) => window.errors.push(`play:${e}`));
};
</script>"#;

/// Plays `url` with `start` (a function of the page), seeks, and if `throttle`,
/// checks the switch down under a throttled network and back up without it.
async fn play_adaptively(d: &Driver, page: &str, start: &str, url: &str, throttle: bool) {
    let (top, low) = (360, 180);
    d.goto(page).await;
    d.wait("the player libraries", "window.Hls && window.shaka")
        .await;
    d.js(&format!("{start}({url:?}); return true;")).await;
    let long = Duration::from_secs(60);
    d.wait_for(
        "playback at the top rung",
        &format!(
            "document.getElementById('video').currentTime > 1 && \
         window.events.some((e) => e.height === {top})"
        ),
        long,
    )
    .await;
    d.js("document.getElementById('video').currentTime = 8; return true;")
        .await;
    d.wait_for(
        "playback on after the seek",
        "document.getElementById('video').currentTime > 9",
        long,
    )
    .await;
    if throttle {
        let mark = d.js("return performance.now()").await;
        // 640 kbit/s: the 180p rung and audio (~480 kbit/s) fit, the 360p one does not.
        d.throttle(Some(80_000)).await;
        d.wait_for(
            "a switch down a rung on a throttled network",
            &format!("window.events.some((e) => e.kind === 'switch' && e.height === {low} && e.at > {mark})"),
            long,
        )
        .await;
        // And it plays on at that rung while the network stays slow.
        let t = d
            .js("return document.getElementById('video').currentTime")
            .await
            .as_f64()
            .expect("currentTime");
        d.wait_for(
            "playback on at the lower rung",
            &format!("document.getElementById('video').currentTime > {t} + 3"),
            long,
        )
        .await;
        assert_eq!(
            d.js("return window.height()").await,
            json!(low),
            "{start} {url}: rung under throttling"
        );
        let mark = d.js("return performance.now()").await;
        d.throttle(None).await;
        d.wait_for(
            "a switch back up once the network is free",
            &format!("window.events.some((e) => e.kind === 'switch' && e.height === {top} && e.at > {mark})"),
            long,
        )
        .await;
    }
    let errors = d.js("return window.errors").await;
    assert_eq!(errors, json!([]), "{start} {url}: player errors");
    let events = d.js("return window.events").await;
    eprintln!("{start}: rendition events {events}");
}

#[tokio::test]
async fn hls_js_and_shaka_play_a_ladder_through_a_token_edge_and_adapt() {
    let Some(browser) = chromium() else {
        missing("chromium is not installed", "ABR browser test");
        return;
    };
    if !have_tools(&["chromedriver", "ffmpeg"], "ABR browser test") {
        return;
    }
    let Some(modules) = node_modules() else {
        missing(
            "the npm packages are not installed (npm ci in catalog/web, or KEYFRAME_TEST_NODE_MODULES)",
            "ABR browser test",
        );
        return;
    };
    // The vendored hls.js is the file the lockfile's package holds (npm checked
    // the package against the lockfile's integrity hash).
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/web/vendor/hls.min.js");
    let vendored = std::fs::read(vendored).expect("vendored hls.js");
    let installed = std::fs::read(modules.join("hls.js/dist/hls.min.js")).expect("npm's hls.js");
    assert!(
        vendored == installed,
        "catalog/web/vendor/hls.min.js is not the pinned hls.js"
    );

    let _one = ONE_BROWSER.lock().await;
    let tmp = tempfile::tempdir().expect("tmp");
    // An 80-second 360p master with noise (so the rungs reach their bit rates),
    // ingested with a 360p and a 180p rung.
    let master = tmp.path().join("master.mp4");
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
        .arg("testsrc2=duration=80:size=640x360:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=80"])
        .args([
            "-vf",
            "noise=alls=25:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-b:v",
            "2M",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            "-shortest",
        ])
        .arg(&master)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the master");
    let data = tmp.path().join("data");
    let id = common::ladder::ingest_ladder(&data, &master, "360,180");
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).expect("site");
    std::fs::write(site.join("index.html"), PLAYERS_PAGE).expect("page");
    std::fs::write(site.join("hls.min.js"), &installed).expect("hls.js");
    std::fs::copy(
        modules.join("shaka-player/dist/shaka-player.compiled.js"),
        site.join("shaka-player.compiled.js"),
    )
    .expect("shaka");
    let page = format!("{}/index.html", static_server(site));

    // The players get the URLs the catalog returns, and nothing else.
    let node = serve(&data, &[("KEYFRAME_PUBLIC_CONTENT", "true")]);
    let play: Value = reqwest::get(format!("{}/api/content/{id}/play", node.url("catalog")))
        .await
        .expect("play")
        .json()
        .await
        .expect("play JSON");
    let hls = play["hls"]
        .as_str()
        .unwrap_or_else(|| panic!("no hls in {play}"))
        .to_string();
    let dash = play["dash"]
        .as_str()
        .unwrap_or_else(|| panic!("no dash in {play}"))
        .to_string();

    let d = Driver::start(browser).await;
    play_adaptively(&d, &page, "startHlsJs", &hls, true).await;
    play_adaptively(&d, &page, "startShaka", &dash, true).await;
    play_adaptively(&d, &page, "startShaka", &hls, false).await;
}

#[tokio::test]
async fn the_page_plays_an_ingested_ladder_with_a_quality_menu_and_falls_back_without_hls_js() {
    let Some(browser) = chromium() else {
        missing("chromium is not installed", "browser test");
        return;
    };
    if !have_tools(&["chromedriver", "ffmpeg"], "browser test") {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let clip = tmp.path().join("pattern.webm");
    make_clip(&clip);
    let id = common::ladder::ingest_ladder(&data, &clip, "240,120");
    let node = serve(&data, &[("KEYFRAME_PUBLIC_CONTENT", "true")]);
    let catalog = node.url("catalog").to_string();
    let edge = node.url("edge").to_string();
    let d = Driver::start(browser).await;

    // hls.js (vendored) plays the ladder through the edge; the menu offers Auto and
    // each rung, and picking one plays that rung.
    d.goto(&format!("{catalog}/title/{id}")).await;
    d.wait(
        "the title dialog",
        "document.getElementById('title-dialog').open",
    )
    .await;
    d.click("#play").await;
    d.wait(
        "adaptive playback",
        "window.keyframePlayer.mode === 'hls.js' && document.getElementById('video').currentTime > 1",
    )
    .await;
    let menu = d
        .js("return [...document.querySelectorAll('#quality option')].map((o) => o.textContent)")
        .await;
    let menu: Vec<String> = serde_json::from_value(menu).expect("menu");
    assert_eq!(menu.len(), 3, "{menu:?}");
    assert!(menu[0].starts_with("Auto"), "{menu:?}");
    assert!(
        menu[1].starts_with("240p") && menu[2].starts_with("120p"),
        "{menu:?}"
    );
    assert_eq!(
        d.js("return document.getElementById('quality-wrap').hidden")
            .await,
        false
    );
    let urls = d
        .js("return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/v1/objects/'))")
        .await;
    let urls: Vec<String> = serde_json::from_value(urls).expect("urls");
    assert!(
        urls.len() > 3
            && urls
                .iter()
                .all(|u| u.starts_with(&edge) && u.contains("__token__=")),
        "every manifest and segment request goes to the edge with the token: {urls:?}"
    );
    d.js(
        "const q = document.getElementById('quality'); q.value = q.options[2].value; \
          q.dispatchEvent(new Event('change')); return true;",
    )
    .await;
    d.wait(
        "the 120p rung playing",
        "(() => { const h = window.keyframePlayer.hls; return h && !h.autoLevelEnabled && \
           h.levels[h.currentLevel] && h.levels[h.currentLevel].height === 120; })()",
    )
    .await;
    d.js(
        "const q = document.getElementById('quality'); q.value = '-1'; \
          q.dispatchEvent(new Event('change')); return true;",
    )
    .await;
    d.wait("Auto again", "window.keyframePlayer.hls.autoLevelEnabled")
        .await;

    // Without the library (blocked), the progressive file plays.
    d.cdp("Network.enable", json!({})).await;
    d.cdp(
        "Network.setBlockedURLs",
        json!({"urls": ["*/vendor/hls.min.js"]}),
    )
    .await;
    d.cdp("Network.setCacheDisabled", json!({"cacheDisabled": true}))
        .await;
    d.refresh().await;
    d.wait(
        "the title dialog",
        "document.getElementById('title-dialog').open",
    )
    .await;
    assert_eq!(d.js("return typeof window.Hls").await, "undefined");
    d.click("#play").await;
    d.wait(
        "progressive playback",
        "window.keyframePlayer.mode === 'progressive' && document.getElementById('video').currentTime > 1",
    )
    .await;
    assert_eq!(
        d.js("return document.getElementById('quality-wrap').hidden")
            .await,
        true
    );
}
