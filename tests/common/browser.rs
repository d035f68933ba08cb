//! Headless Chromium over WebDriver for the browser tests (`browser.rs`,
//! `browser_abr.rs`): chromedriver in a process group of its own, killed with
//! what Chromium detaches when the driver is dropped; a `keyframe serve` node with
//! a token key; a small test clip; one browser at a time.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    become_subreaper, have_tools, keyframe, kill_children_named, kill_group, missing, runs, Running,
};

/// One browser at a time: a test's cleanup kills every Chromium process among this
/// process's children, which would include another test's.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chromium, when `suite` can run here (Chromium, chromedriver and ffmpeg are
/// installed); otherwise `None`, after [`missing`] said so (a failure under CI).
pub fn browser_for(suite: &str) -> Option<&'static str> {
    let Some(browser) = chromium() else {
        missing("chromium is not installed", suite);
        return None;
    };
    have_tools(&["chromedriver", "ffmpeg"], suite).then_some(browser)
}

pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| runs(b))
}

/// A 12-second VP8 WebM clip with a moving test pattern (every browser plays it).
pub fn make_clip(path: &Path) {
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

/// `keyframe serve` on port 0 with a token key, and `env` besides.
pub fn serve(data: &Path, env: &[(&str, &str)]) -> Running {
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
        super::ladder::TOKEN_KEY,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running::start(cmd, 3)
}

/// chromedriver, which starts the browser: in a process group of its own, killed on
/// drop with whatever of Chromium's left the group (its crashpad handlers). Owned
/// from the moment it is spawned, so a failure anywhere after still reaps it.
pub struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        kill_group(&self.0);
        let _ = self.0.wait();
        kill_children_named(&["chrom"]);
    }
}

pub struct Driver {
    _chromedriver: Chromedriver,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Driver {
    pub async fn start(browser: &str) -> Driver {
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

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await;
        v.as_str().expect("url").to_string()
    }

    pub async fn back(&self) {
        self.cmd(reqwest::Method::POST, "/back", Some(json!({})))
            .await;
    }

    pub async fn refresh(&self) {
        self.cmd(reqwest::Method::POST, "/refresh", Some(json!({})))
            .await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    pub async fn find(&self, css: &str) -> String {
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

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Polls `script` (an expression) until it is true.
    pub async fn wait(&self, what: &str, script: &str) {
        self.wait_for(what, script, Duration::from_secs(30)).await;
    }

    /// Polls `script` (an expression) until it is true, for at most `within`.
    pub async fn wait_for(&self, what: &str, script: &str, within: Duration) {
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
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    /// Throttles the page's downloads to `bytes_per_sec`, or lifts it (None).
    pub async fn throttle(&self, bytes_per_sec: Option<u64>) {
        let rate = bytes_per_sec.map_or(-1.0, |b| b as f64);
        self.cdp("Network.enable", json!({})).await;
        self.cdp(
            "Network.emulateNetworkConditions",
            json!({"offline": false, "latency": if bytes_per_sec.is_some() { 20 } else { 0 },
                   "downloadThroughput": rate, "uploadThroughput": -1.0}),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

pub fn which(bin: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
