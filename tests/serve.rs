//! The servers run the way operators run them: behind a log pipe that breaks or
//! stalls, stopped with SIGTERM in the middle of a download, held open by clients
//! that never speak, and as the single node with playback tokens.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{have_tools, keyframe, metric_sum, metrics_text, serve_node, Running};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Writes `bytes` as object `key` of the data directory's default store.
fn put_object(data: &Path, key: &str, bytes: &[u8]) {
    let path = data.join("objects").join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write object");
}

/// `len` bytes that do not repeat in any short period (a cut or a shifted range
/// shows in the hash).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A GET of `url` that must answer `want`.
async fn get_status(http: &reqwest::Client, url: &str, want: u16) {
    let r = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status().as_u16(), want, "GET {url}");
    r.bytes().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
}

/// Item 1: the reader of stderr goes away (a log collector restarts, `tee` dies).
/// Every server goes on answering, the lines it could not write are counted, and
/// SIGTERM stops it cleanly: `serve`, and `origin` alone (which exited 101, a
/// panic, on SIGTERM).
#[tokio::test]
async fn a_stderr_whose_reader_went_away_stops_no_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    put_object(tmp.path(), "demo/hello.txt", b"hello, keyframe");
    let http = client();

    let mut cmd = serve_node(tmp.path(), &[]);
    cmd.env("KEYFRAME_LOG", "info");
    let node = start_then_close_stderr(cmd, 3);
    for _ in 0..20 {
        for server in ["origin", "edge"] {
            let url = format!("{}/v1/objects/demo/hello.txt", node.url(server));
            get_status(&http, &url, 200).await;
        }
        get_status(
            &http,
            &format!("{}/_keyframe/healthz", node.url("catalog")),
            200,
        )
        .await;
    }
    for server in ["origin", "edge", "catalog"] {
        let text = metrics_text(&http, node.url(server)).await;
        let dropped = metric_sum(&text, "keyframe_log_lines_dropped_total").unwrap_or(0.0);
        assert!(
            dropped >= 1.0,
            "{server}: no dropped log lines counted:\n{text}"
        );
    }
    let status = node.terminate();
    assert!(status.success(), "serve: exit status {status:?}");

    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(tmp.path())
        .args(["origin", "--listen", "127.0.0.1:0"])
        .env("KEYFRAME_LOG", "info");
    let node = start_then_close_stderr(cmd, 1);
    for _ in 0..20 {
        let url = format!("{}/v1/objects/demo/hello.txt", node.url("origin"));
        get_status(&http, &url, 200).await;
    }
    let status = node.terminate();
    assert!(status.success(), "origin: exit status {status:?}");
}

/// Starts `cmd` with stderr a pipe, reads its first log line, then closes the
/// pipe's only reader: every later write to stderr fails with `EPIPE`.
fn start_then_close_stderr(cmd: std::process::Command, expect: usize) -> Running {
    let (node, stderr) = Running::start_with_stderr(cmd, expect);
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a first log line");
    assert!(!line.is_empty(), "no log line at info");
    drop(reader);
    node
}

/// Item 1, the slow sink: stderr's reader stays but reads nothing, so the pipe
/// fills. Writing a log line must never block a server.
#[tokio::test]
async fn a_stalled_stderr_blocks_no_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    put_object(tmp.path(), "demo/hello.txt", b"hello, keyframe");
    let mut cmd = serve_node(tmp.path(), &[]);
    cmd.env("KEYFRAME_LOG", "info");
    // Held open and never read: the pipe's 64 KiB fill after a few hundred lines.
    let (node, stalled) = Running::start_with_stderr(cmd, 3);
    let http = client();
    for _ in 0..750 {
        for server in ["origin", "edge"] {
            let url = format!("{}/v1/objects/demo/hello.txt", node.url(server));
            get_status(&http, &url, 200).await;
        }
    }
    let started = Instant::now();
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stopping took {:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// Item 2: SIGTERM during a download through `serve`'s edge. The download goes on
/// to its last byte (the origin stays up for the edge within the grace), then the
/// process exits 0.
#[tokio::test]
async fn a_download_through_serves_edge_survives_sigterm() {
    const SIZE: usize = 48 << 20;
    let tmp = tempfile::tempdir().expect("tmp");
    let bytes = noise(SIZE);
    let want = Sha256::digest(&bytes);
    put_object(tmp.path(), "big/blob.bin", &bytes);
    drop(bytes);
    let mut node = Running::start(serve_node(tmp.path(), &[]), 3);
    let url = format!("{}/v1/objects/big/blob.bin", node.url("edge"));
    let mut resp = reqwest::get(&url).await.expect("GET through the edge");
    assert_eq!(resp.status(), 200);
    let mut hash = Sha256::new();
    let mut got = 0usize;
    while got < 2 << 20 {
        let chunk = resp.chunk().await.expect("body").expect("more body");
        got += chunk.len();
        hash.update(&chunk);
    }
    node.sigterm();
    let stopped_at = Instant::now();
    // Reading nothing for a while: the server is shutting down meanwhile.
    tokio::time::sleep(Duration::from_millis(700)).await;
    while let Some(chunk) = resp
        .chunk()
        .await
        .unwrap_or_else(|e| panic!("the download was cut after {got} bytes: {e}"))
    {
        got += chunk.len();
        hash.update(&chunk);
    }
    assert_eq!(got, SIZE, "the download ended short");
    assert!(hash.finalize() == want, "the bytes differ");
    let status = node.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "stopping took {:?}",
        stopped_at.elapsed()
    );
}

/// A TCP connection from `from` to `to` that sends nothing.
async fn silent(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::new(from, 0))
        .expect("bind source address");
    s.connect(to).await.expect("connect")
}

/// How long until the server closes `conn` (EOF or reset), up to `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 16];
    match tokio::time::timeout(within, conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
        Ok(Ok(n)) => panic!("the server sent {n} bytes to a silent connection"),
        Err(_) => None,
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("address")
}

/// Item 3: a connection that never sends a byte is closed after the header
/// timeout, counted from the accept; one client address holds at most
/// `max_connections_per_address` connections, and a connection past it is closed
/// at once while other addresses are served. On the edge, the origin and the
/// catalog of `serve` (the catalog runs on the same accept loop).
#[tokio::test]
async fn silent_connections_time_out_and_one_address_cannot_take_every_slot() {
    let tmp = tempfile::tempdir().expect("tmp");
    put_object(tmp.path(), "demo/hello.txt", b"hello, keyframe");
    let mut cmd = serve_node(tmp.path(), &[]);
    cmd.env("KEYFRAME_HEADER_TIMEOUT_SECS", "1")
        // Room for the edge's own connections to the origin besides the silent ones.
        .env("KEYFRAME_MAX_CONNECTIONS", "20")
        .env("KEYFRAME_MAX_CONNECTIONS_PER_ADDRESS", "3");
    let node = Running::start(cmd, 3);
    // Silent clients come from 127.0.0.3, the one that is served from 127.0.0.2
    // (the edge's own connections to the origin come from 127.0.0.1).
    let hog: IpAddr = "127.0.0.3".parse().expect("ip");
    let other: IpAddr = "127.0.0.2".parse().expect("ip");
    let served = reqwest::Client::builder()
        .local_address(other)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for server in ["edge", "origin", "catalog"] {
        let to = addr_of(node.url(server));
        let mut quiet = silent(hog, to).await;
        let after = closed_within(&mut quiet, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{server}: a silent connection was kept past 5 s"));
        assert!(
            after >= Duration::from_millis(800),
            "{server}: closed after {after:?}, before the header timeout"
        );

        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(silent(hog, to).await);
        }
        let mut fourth = silent(hog, to).await;
        let after = closed_within(&mut fourth, Duration::from_millis(600)).await;
        assert!(
            after.is_some(),
            "{server}: a connection past the per-address cap was kept"
        );
        // Another address is served while that one is at its cap.
        let path = match server {
            "catalog" => "/_keyframe/healthz",
            _ => "/v1/objects/demo/hello.txt",
        };
        let url = format!("{}{path}", node.url(server));
        let r = served.get(&url).send().await.expect("another address");
        assert_eq!(r.status(), 200, "{server}");
        // And the held ones time out too, giving their slots back.
        for mut c in held {
            assert!(
                closed_within(&mut c, Duration::from_secs(5))
                    .await
                    .is_some(),
                "{server}: a held silent connection was kept"
            );
        }
        let mut again = silent(hog, to).await;
        assert!(
            closed_within(&mut again, Duration::from_millis(300))
                .await
                .is_none(),
            "{server}: the slots were not given back"
        );
    }
    assert!(node.terminate().success());
}

/// Item 4: the single node with a token key plays. The catalog's play endpoint and
/// listing issue signed edge URLs (the source and the poster), fetching them
/// through the edge answers 200/206, and without a token the edge refuses (403).
/// The origin under `serve` listens on loopback and asks for no token: the edge,
/// which strips tokens before it goes upstream, is the node's one public door.
#[tokio::test]
async fn serve_with_a_token_key_plays_signed_urls_through_its_edge() {
    if !have_tools(&["ffmpeg", "ffprobe"], "token playback test") {
        return;
    }
    const KEY: &str = "00112233445566778899aabbccddeeff";
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let clip = tmp.path().join("clip.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=160x120:rate=10",
        ])
        .args(["-c:v", "mpeg4", "-movflags", "+faststart"])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make a clip");
    let out = keyframe()
        .arg("--data-dir")
        .arg(&data)
        .args(["ingest", "--json", "--title", "Signed"])
        .arg(&clip)
        .output()
        .expect("ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let node = Running::start(serve_node(&data, &["--token-key", KEY]), 3);
    let catalog = node.url("catalog").to_string();
    let edge = node.url("edge").to_string();
    let http = client();

    // The page's flow: sign up, sign in, list, play.
    let r = http
        .post(format!("{catalog}/api/users"))
        .json(
            &json!({"username": "viewer", "password": "correct horse battery",
                      "email": "viewer@example.com", "date_of_birth": "1990-04-01"}),
        )
        .send()
        .await
        .expect("sign up");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let session: Value = http
        .post(format!("{catalog}/api/sessions"))
        .json(&json!({"username": "viewer", "password": "correct horse battery"}))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("session");
    let bearer = format!("Bearer {}", session["token"].as_str().expect("token"));
    let list: Value = http
        .get(format!("{catalog}/api/content"))
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    let item = &list["items"][0];
    let poster = item["poster"]["url"].as_str().expect("a poster URL");
    assert!(
        poster.starts_with(&edge) && poster.contains("__token__="),
        "poster {poster}"
    );
    get_status(&http, poster, 200).await;

    let id = item["id"].as_str().expect("id");
    let play: Value = http
        .get(format!("{catalog}/api/content/{id}/play"))
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("play")
        .json()
        .await
        .expect("play json");
    let url = play["url"].as_str().expect("a playback URL");
    assert!(
        url.starts_with(&edge) && url.contains("__token__="),
        "{url}"
    );
    let r = http
        .get(url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .expect("ranged GET");
    assert_eq!(r.status(), 206, "{}", r.text().await.unwrap_or_default());
    assert_eq!(r.bytes().await.expect("body").len(), 100);
    get_status(&http, url, 200).await;

    // Without the token, or with another object's, the edge refuses.
    let bare = url.split_once('?').expect("query").0;
    let r = http.get(bare).send().await.expect("bare GET");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json error");
    assert_eq!(body["code"], "token_missing");
    let poster_token = poster.split_once('?').expect("query").1;
    get_status(&http, &format!("{bare}?{poster_token}"), 403).await;
    assert!(node.terminate().success());
}

/// Under `serve` with a token key, an origin on a public address would serve
/// every object without one: refused as a configuration error naming the option.
#[test]
fn serve_with_a_token_key_keeps_its_origin_on_loopback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(tmp.path())
        .args([
            "serve",
            "--token-key",
            "00112233445566778899aabbccddeeff",
            "--origin-listen",
            "0.0.0.0:0",
            "--edge-listen",
            "127.0.0.1:0",
            "--catalog-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    // Should it start serving instead, it is killed rather than waited for.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("origin-listen"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "bound before failing: {:?}",
        out.stdout
    );
}

/// Item 5: the origin's access line counts the bytes that went out. A download
/// cut after a few MiB logs those, `complete=false`, not the object's length; a
/// whole one logs its length and `complete=true`.
// Two threads: the test blocks on the log while the client's connection task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_logs_the_bytes_it_sent() {
    // Far more than loopback's socket buffers hold, so a cut shows in the count.
    const SIZE: usize = 64 << 20;
    let tmp = tempfile::tempdir().expect("tmp");
    put_object(tmp.path(), "big/cut.bin", &noise(SIZE));
    put_object(tmp.path(), "small/whole.bin", &noise(5000));
    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(tmp.path())
        .args(["origin", "--listen", "127.0.0.1:0"])
        .env("KEYFRAME_LOG", "keyframe::access=info");
    let (node, stderr) = Running::start_with_stderr(cmd, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let access_line = |path: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no access line for {path}"));
            if line.contains(path) {
                return line;
            }
        }
    };
    let origin = node.url("origin").to_string();

    let mut resp = reqwest::get(format!("{origin}/v1/objects/big/cut.bin"))
        .await
        .expect("GET");
    let mut got = 0;
    while got < 1 << 20 {
        got += resp.chunk().await.expect("body").expect("more").len();
    }
    drop(resp);
    let line = access_line("big/cut.bin");
    let bytes: u64 = field(&line, "bytes").parse().expect("bytes=");
    assert!(
        bytes >= 1 << 20 && bytes < SIZE as u64 / 2,
        "logged {bytes} bytes for a download cut after {got}: {line}"
    );
    assert_eq!(field(&line, "complete"), "false", "{line}");

    let body = reqwest::get(format!("{origin}/v1/objects/small/whole.bin"))
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 5000);
    let line = access_line("small/whole.bin");
    assert_eq!(field(&line, "bytes"), "5000", "{line}");
    assert_eq!(field(&line, "complete"), "true", "{line}");
    assert!(node.terminate().success());
}

/// The value of `name=` in a text log line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name}= in {line}"));
    line[at + name.len() + 2..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
}

/// `serve --tls-cert … --tls-key …`: the edge and the catalog speak HTTPS (and say
/// so), the origin behind the edge stays plain on loopback, and the catalog's links
/// (an avatar here) point at the edge's `https://` address and load from it.
#[test]
fn serve_with_tls_serves_the_edge_and_the_catalog_over_https() {
    if !have_tools(&["curl", "ffmpeg"], "serve HTTPS test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    let mut cmd = serve_node(&tmp.path().join("data"), &[]);
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    let node = Running::start(cmd, 3);
    assert!(node.url("origin").starts_with("http://127.0.0.1:"));
    for server in ["edge", "catalog"] {
        let url = node.url(server);
        assert!(url.starts_with("https://127.0.0.1:"), "{server}: {url}");
        let out = keyframe()
            .arg("healthcheck")
            .arg("--ca")
            .arg(&cert)
            .arg(format!("{url}/_keyframe/healthz"))
            .output()
            .expect("healthcheck");
        assert!(
            out.status.success(),
            "{server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // curl trusting the test certificate: the body, which must be a success.
    let curl = |args: &[&str]| {
        let o = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("run curl");
        assert!(
            o.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    let catalog = node.url("catalog").to_string();
    let json = ["-H", "content-type: application/json", "--data-binary"];
    curl(&[
        &json[..],
        &[
            r#"{"username":"tls","password":"a long tls passphrase","email":"tls@example.com","date_of_birth":"1990-05-17"}"#,
            &format!("{catalog}/api/users"),
        ],
    ]
    .concat());
    let session: Value = serde_json::from_slice(&curl(
        &[
            &json[..],
            &[
                r#"{"username":"tls","password":"a long tls passphrase"}"#,
                &format!("{catalog}/api/sessions"),
            ],
        ]
        .concat(),
    ))
    .expect("session json");
    let bearer = format!(
        "authorization: Bearer {}",
        session["token"].as_str().expect("token")
    );
    let png = tmp.path().join("avatar.png");
    let st = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1"])
        .arg(&png)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make a PNG");
    let me: Value = serde_json::from_slice(&curl(&[
        "-X",
        "PUT",
        "-H",
        &bearer,
        "-H",
        "content-type: application/octet-stream",
        "--data-binary",
        &format!("@{}", png.display()),
        &format!("{catalog}/api/users/me/avatar"),
    ]))
    .expect("user json");
    let avatar = me["avatar"]["url"].as_str().expect("an avatar URL");
    assert!(
        avatar.starts_with(&format!("{}/", node.url("edge"))),
        "the avatar is not on the HTTPS edge: {avatar}"
    );
    assert!(!curl(&[avatar]).is_empty(), "an empty avatar");
    assert!(node.terminate().success());
}
