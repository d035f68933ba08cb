//! The command line as an admin meets it: help, bad input, and `keyframe serve`.

mod common;

use common::{keyframe, Running};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = keyframe();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run keyframe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for cmd in [
        "serve",
        "origin",
        "edge",
        "catalog",
        "ingest",
        "gc",
        "migrate",
        "recommend",
        "bench",
        "healthcheck",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    let (code, out, _) = run(&["edge", "--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--upstream",
        "--region",
        "--parent",
        "--cache-memory",
        "--chunk-size",
    ] {
        assert!(out.contains(flag), "edge --help lacks {flag}:\n{out}");
    }
}

/// `--threads` is both a global flag (the runtime) and the load generator's: given
/// before or after `bench`, it parses (a clash of the two once panicked in clap).
#[test]
fn bench_takes_threads_before_and_after_its_command() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/x", closed.local_addr().expect("addr"));
    drop(closed);
    let tail = [
        "--url",
        &url,
        "--size",
        "4KiB",
        "--concurrency",
        "1",
        "--warmup",
        "0s",
        "--duration",
        "200ms",
        "--timeout",
        "1s",
    ];
    for args in [
        [&["bench", "range", "--threads", "1"][..], &tail[..]].concat(),
        [&["--threads", "1", "bench", "range"][..], &tail[..]].concat(),
    ] {
        let (code, out, err) = run(&args, &[]);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // Nothing listens there: the run fails, as a failed run, not a usage error.
        assert_eq!(code, 1, "{args:?}: {out}{err}");
    }
}

/// Arguments, environment, and a word the error must name.
type BadCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_flags_and_values_are_one_line_and_exit_2() {
    let cases: &[BadCase] = &[
        (&["serve", "--no-such-flag"], &[], "--no-such-flag"),
        (&["edge", "--cache-memory", "lots"], &[], "--cache-memory"),
        (&["--threads", "0", "origin"], &[], "--threads"),
        (&["healthcheck", "ftp://x/"], &[], "http"),
        (&["healthcheck", "--timeout", "0", "8081"], &[], "--timeout"),
        (&["origin"], &[("KEYFRAME_THREADS", "many")], "--threads"),
        (
            &["edge"],
            &[("KEYFRAME_CHUNK_SIZE", "1.5MiB")],
            "chunk-size",
        ),
        (
            &["origin"],
            &[("KEYFRAME_LISTEN", "not-an-address")],
            "listen",
        ),
        (&["edge", "--upstream", "ftp://x"], &[], "upstream"),
        (
            &["migrate", "--config", "/no/such/file.toml"],
            &[],
            "config",
        ),
        (&["migrate", "--db", "mysql://x"], &[], "db"),
        (&["frobnicate"], &[], "frobnicate"),
        (&["edge", "--tls-cert", "/no/such/cert.pem"], &[], "tls-key"),
        (
            &["origin", "--tls-key", "/no/such/key.pem"],
            &[],
            "tls-cert",
        ),
    ];
    for (args, env, needle) in cases {
        let (code, _, err) = run(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}: exit {code}, stderr {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line:\n{err}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: {err} does not name {needle}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn unusable_data_dir_and_unreachable_database_fail_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let dd = file.join("data");
    let (code, _, err) = run(&["--data-dir", dd.to_str().expect("utf8"), "origin"], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("store"), "{err}");

    let (code, _, err) = run(
        &["migrate", "--db", "postgres://postgres@127.0.0.1:1/none"],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("database"), "{err}");
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dd = tmp.path().join("d");
    let (code, out, err) = run(&["--data-dir", dd.to_str().expect("utf8"), "migrate"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("migrations applied"), "{out}");
    assert!(dd.join("keyframe.db").is_file());
    // Twice is fine.
    let (code, _, err) = run(&["--data-dir", dd.to_str().expect("utf8"), "migrate"], &[]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn serve_answers_health_on_three_ports_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cmd = keyframe();
    cmd.arg("--data-dir").arg(tmp.path()).args([
        "serve",
        "--catalog-listen",
        "127.0.0.1:0",
        "--edge-listen",
        "127.0.0.1:0",
        "--origin-listen",
        "127.0.0.1:0",
    ]);
    let node = Running::start(cmd, 3);
    let client = reqwest::Client::new();
    for name in ["catalog", "edge", "origin"] {
        for path in ["/_keyframe/healthz", "/_keyframe/metrics"] {
            let r = client
                .get(format!("{}{path}", node.url(name)))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "{name}{path}");
        }
    }
    // Bytes put in the default store are served by the origin and through the edge.
    let objects = tmp.path().join("objects/demo");
    std::fs::create_dir_all(&objects).expect("mkdir");
    std::fs::write(objects.join("hello.txt"), b"hello, keyframe").expect("write");
    for name in ["origin", "edge"] {
        let r = client
            .get(format!("{}/v1/objects/demo/hello.txt", node.url(name)))
            .header("Range", "bytes=7-")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 206, "{name}");
        assert_eq!(r.text().await.expect("body"), "keyframe", "{name}");
    }
    assert!(tmp.path().join("keyframe.db").is_file());
    // `keyframe healthcheck` (for images without curl) on every server, by URL and
    // by HOST:PORT and port.
    for name in ["catalog", "edge", "origin"] {
        let base = node.url(name).to_string();
        let hostport = base.trim_start_matches("http://").to_string();
        let port = hostport.rsplit(':').next().expect("port").to_string();
        for target in [format!("{base}/_keyframe/healthz"), hostport, port] {
            let (code, out, err) = run(&["healthcheck", &target], &[]);
            assert_eq!(code, 0, "healthcheck {target}: {err}");
            assert!(out.contains("healthy"), "{out}");
        }
    }
    // An answer that is not 2xx, and a port nobody listens on: one line, exit 1.
    let (code, _, err) = run(
        &["healthcheck", &format!("{}/no/such/path", node.url("edge"))],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404") && err.lines().count() == 1, "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port().to_string();
    drop(closed);
    let (code, _, err) = run(&["healthcheck", "--timeout", "2", &closed_port], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn an_empty_token_key_means_none() {
    for server in ["edge", "origin"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut cmd = keyframe();
        cmd.arg("--data-dir")
            .arg(tmp.path())
            .args([server, "--listen", "127.0.0.1:0"])
            .env("KEYFRAME_TOKEN_KEY", "");
        let node = Running::start(cmd, 1);
        assert!(node.url(server).starts_with("http://127.0.0.1:"));
    }
}
