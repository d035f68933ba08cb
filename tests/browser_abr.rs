//! Adaptive streaming in real headless Chromium (the driver is
//! `common/browser.rs`): the page plays an ingested ladder through hls.js
//! (vendored) with a quality menu (Auto and each rung), the progressive file when
//! hls.js is blocked, and a fresh `/play` URL when the edge refuses the token
//! hls.js holds (a 403 `token_expired`), at the same position. hls.js (HLS) and
//! Shaka Player (DASH, and HLS) play an ingested ladder through a token-checking
//! edge from a page on another origin (CORS), given only the URLs the catalog's
//! play answer holds, seek, and switch down a rung when the network is throttled
//! (DevTools' `Network.emulateNetworkConditions`) and back up when it is not, as
//! the players' own events say (hls.js `LEVEL_SWITCHED`, Shaka `adaptation` and
//! `getStats()`). Shaka comes from npm at the version
//! `catalog/web/package-lock.json` pins (`npm ci` in `.ci/run`), and the
//! vendored hls.js must be the file that lockfile installs.
//!
//! Skipped when chromium, chromedriver or ffmpeg (or, for the ladder, the npm
//! packages) are missing, except under `CI=true` (`.ci/run` installs them).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{browser_for, make_clip, serve, Driver, ONE_BROWSER};
use common::missing;
use serde_json::{json, Value};

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
    let Some(browser) = browser_for("ABR browser test") else {
        return;
    };
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
    let Some(browser) = browser_for("browser test") else {
        return;
    };
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

    // The edge refuses the token hls.js holds (403 token_expired, as after a long
    // pause with a clock far off): the page fetches a fresh /play URL and plays
    // on adaptively from where it was, without an error.
    let held = d
        .js("return window.keyframePlayer.hls.url")
        .await
        .as_str()
        .expect("hls.js url")
        .to_string();
    let expired = expired_url(&held);
    let r = reqwest::get(&expired).await.expect("edge");
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.expect("error JSON");
    assert_eq!(body["code"], "token_expired", "{body}");
    let at = d
        .js(&format!(
            "const v = document.getElementById('video'); window.keyframePlayer.hls.loadSource({expired:?}); \
             v.play().catch(() => {{}}); return v.currentTime;"
        ))
        .await
        .as_f64()
        .expect("position");
    d.wait(
        "adaptive playback on a fresh URL",
        &format!(
            "(() => {{ const p = window.keyframePlayer, v = document.getElementById('video'); \
               return p.mode === 'hls.js' && p.hls && p.hls.url !== {expired:?} && p.hls.url !== {held:?} && \
                 p.hls.url.includes('__token__=') && !v.paused && v.currentTime > {at} + 1 && \
                 !(keyframe.state.playback || {{}}).renewing; }})()"
        ),
    )
    .await;
    assert_eq!(
        d.js("return document.getElementById('status').textContent")
            .await,
        "",
        "the page reported a problem"
    );

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

/// `url` with its token re-signed to have expired a minute ago (same `acl` and
/// `data`): what the edge refuses with `token_expired`.
fn expired_url(url: &str) -> String {
    use keyframe_core::token::{sign, TokenClaims, TokenKey};
    let (base, token) = url.split_once("?__token__=").expect("a token");
    let token = token.replace("%2F", "/");
    let field = |name: &str| {
        token
            .split('~')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = TokenKey::from_config(common::ladder::TOKEN_KEY).expect("key");
    let claims = TokenClaims {
        start: None,
        exp: now - 60,
        acl: field("acl").expect("acl"),
        data: field("data"),
    };
    format!("{base}?__token__={}", sign(&key, &claims).expect("sign"))
}
