//! The command line as an admin meets it: help, bad input, and `keyframe serve`.

use crate::common;

use common::{keyframe, serve_node, Running};

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
            // Not a whole number of bytes (1.5MiB is one since issue 19).
            &[("KEYFRAME_CHUNK_SIZE", "0.3KiB")],
            "chunk-size",
        ),
        (
            &["origin"],
            &[("KEYFRAME_LISTEN", "not-an-address")],
            "listen",
        ),
        (&["edge", "--upstream", "ftp://x"], &[], "upstream"),
        // A missing required argument is named, not only announced.
        (
            &["bench", "range", "--url", "http://127.0.0.1:1/x"],
            &[],
            "--size",
        ),
        (
            &["bench", "range", "--url", "ftp://x/", "--size", "1KiB"],
            &[],
            "--url",
        ),
        (
            &[
                "bench",
                "range",
                "--url",
                "http://127.0.0.1:1/x",
                "--size",
                "0",
            ],
            &[],
            "--size",
        ),
        (&["serve", "--region", "e u"], &[], "region"),
        // A bad store URL is a configuration error, as a bad database URL is.
        (&["origin", "--store", "ftp://x"], &[], "store"),
        (&["gc", "--store", "s3://b?colour=red"], &[], "colour"),
        // Options the edge does not use are not its options.
        (&["edge", "--db", "sqlite://x.db"], &[], "--db"),
        (
            &[
                "ingest",
                "--available-from",
                "20",
                "--available-until",
                "10",
                "x",
            ],
            &[],
            "--available-from",
        ),
        (
            &["migrate", "--config", "/no/such/file.toml"],
            &[],
            "config",
        ),
        (&["migrate", "--db", "mysql://x"], &[], "db"),
        (&["frobnicate"], &[], "frobnicate"),
        (&["edge", "--tls-cert", "/no/such/cert.pem"], &[], "tls-key"),
        (
            &["catalog", "--tls-key", "/no/such/key.pem"],
            &[],
            "tls-cert",
        ),
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
    // Why, not only that the pool gave up.
    assert!(
        err.to_lowercase().contains("connection refused"),
        "does not say why: {err}"
    );
}

/// `--db` pointing into a directory that does not exist fails, and makes none:
/// only the data directory is created.
#[test]
fn migrate_creates_no_directory_outside_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("no/such/dir/k.db");
    let url = format!("sqlite://{}", db.display());
    let dd = tmp.path().join("data");
    let (code, out, err) = run(
        &[
            "migrate",
            "--data-dir",
            dd.to_str().expect("utf8"),
            "--db",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!out.contains("migrations applied"), "{out}");
    assert!(!tmp.path().join("no").exists(), "a directory was made");
}

/// A misspelt option in the config file is an error naming it, not ignored.
#[test]
fn unknown_config_file_keys_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("k.toml");
    std::fs::write(&file, "cache_memory = \"64MiB\"\ncache_memroy = \"1GiB\"\n").expect("write");
    let (code, out, err) = run(
        &[
            "--config",
            file.to_str().expect("utf8"),
            "edge",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("'cache_memroy'"), "{err}");
    assert!(err.contains("cache_memory"), "no suggestion: {err}");
    assert!(!out.contains("listening"), "{out}");
    // Every option of every command is allowed in the one file.
    std::fs::write(
        &file,
        "cache_memory = \"64MiB\"\nsession_ttl_secs = 60\norigin_listen = \"127.0.0.1:0\"\n\n[region_edges]\neu = \"http://eu\"\n",
    )
    .expect("write");
    let node = Running::start(
        {
            let mut c = keyframe();
            c.args([
                "--config",
                file.to_str().expect("utf8"),
                "edge",
                "--listen",
                "127.0.0.1:0",
            ]);
            c
        },
        1,
    );
    drop(node);
}

/// Settings are checked before any server listens: under `serve` the edge's
/// too, which is made only once the origin is bound.
#[test]
fn serve_checks_every_setting_before_it_listens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, out, err) = run(
        &[
            "serve",
            "--data-dir",
            tmp.path().to_str().expect("utf8"),
            "--catalog-listen",
            "127.0.0.1:0",
            "--edge-listen",
            "127.0.0.1:0",
            "--origin-listen",
            "127.0.0.1:0",
            "--chunk-size",
            "0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("listening"), "listened first:\n{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("chunk"), "{err}");
}

/// Each command lists the options it uses, and only those.
#[test]
fn help_shows_only_the_options_a_command_uses() {
    for (cmd, has, lacks) in [
        ("edge", &[][..], &["--db", "--store", "--data-dir"][..]),
        ("bench", &[], &["--db", "--store", "--data-dir"]),
        ("origin", &["--store", "--data-dir"], &["--db"]),
        ("migrate", &["--db", "--data-dir"], &["--store"]),
        ("ingest", &["--db", "--store", "--data-dir"], &[]),
        ("serve", &["--db", "--store", "--data-dir", "--region"], &[]),
        ("user", &["--db", "--data-dir"], &["--store"]),
    ] {
        let (code, out, err) = run(&[cmd, "--help"], &[]);
        assert_eq!(code, 0, "{cmd}: {err}");
        for f in has {
            assert!(
                out.contains(&format!("{f} ")),
                "{cmd} --help lacks {f}:\n{out}"
            );
        }
        for f in lacks {
            assert!(
                !out.contains(&format!("{f} ")),
                "{cmd} --help lists {f}:\n{out}"
            );
        }
    }
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
    let node = Running::start(serve_node(tmp.path(), &[]), 3);
    let client = reqwest::Client::new();
    for name in ["catalog", "edge", "origin"] {
        for path in ["/_keyframe/healthz", "/_keyframe/metrics"] {
            let r = client
                .get(format!("{}{path}", node.url(name)))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "{name}{path}");
            // Every answer says what it is (issue 16, item 11: the edge's healthz had none).
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let want = if path.ends_with("healthz") {
                "text/plain"
            } else {
                "application/openmetrics-text"
            };
            assert!(ct.starts_with(want), "{name}{path}: content-type {ct:?}");
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

/// Runs `keyframe` with `stdin` as its standard input.
fn run_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut c = keyframe();
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn keyframe");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `keyframe user add|list|passwd|disable|enable|delete` on the catalog's
/// database, seen through a running catalog's sign-in.
#[tokio::test]
async fn users_are_managed_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dd = tmp.path().to_str().expect("utf8").to_string();
    let user = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["user".into()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v.extend(["--data-dir".to_string(), dd.clone()]);
        v
    };
    let call = |rest: &[&str], stdin: &str| {
        let v = user(rest);
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        run_with_stdin(&a, stdin)
    };
    let pw = "correct horse battery";
    let (code, out, err) = call(
        &[
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        &format!("{pw}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("added user alice"), "{out}");
    assert!(
        !out.contains(pw) && !err.contains(pw),
        "the password was echoed"
    );
    // Usage mistakes: exit 2, one line.
    for (rest, stdin, needle) in [
        (
            &["add", "bob", "--email", "bob@example.com"][..],
            "",
            "--password-stdin",
        ),
        (
            &[
                "add",
                "alice",
                "--email",
                "a@example.com",
                "--password-stdin",
            ],
            "another password\n",
            "already exists",
        ),
        (
            &[
                "add",
                "Bob",
                "--email",
                "bob@example.com",
                "--password-stdin",
            ],
            "another password\n",
            "username",
        ),
        (
            &[
                "add",
                "bob",
                "--email",
                "bob@example.com",
                "--password-stdin",
            ],
            "short\n",
            "password",
        ),
        (
            &["add", "bob", "--email", "nope", "--password-stdin"],
            "another password\n",
            "email",
        ),
        (
            &["passwd", "nobody", "--password-stdin"],
            "another password\n",
            "no user named",
        ),
        (&["delete", "nobody"], "", "no user named"),
    ] {
        let (code, _, err) = call(rest, stdin);
        assert_eq!(code, 2, "{rest:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{rest:?}: {err}");
        assert!(err.contains(needle), "{rest:?}: {err}");
    }
    let (code, out, err) = call(&["list", "--json"], "");
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["username"], "alice");
    assert!(listed[0]["disabled_at"].is_null());
    assert!(!out.contains("argon2"), "{out}");

    let mut cmd = keyframe();
    cmd.args(["catalog", "--listen", "127.0.0.1:0", "--data-dir", &dd]);
    let catalog = Running::start(cmd, 1);
    let http = reqwest::Client::new();
    let login = |password: &str| {
        let req = http
            .post(format!("{}/api/sessions", catalog.url("catalog")))
            .json(&serde_json::json!({"username": "alice", "password": password}));
        async move {
            let r = req.send().await.expect("login");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body["code"].as_str().unwrap_or("").to_string())
        }
    };
    assert_eq!(login(pw).await.0, 201);

    let new_pw = "a new password";
    let (code, out, err) = call(
        &["passwd", "alice", "--password-stdin"],
        &format!("{new_pw}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("session(s) ended"), "{out}");
    assert_eq!(login(pw).await.0, 401);
    assert_eq!(login(new_pw).await.0, 201);

    let (code, _, err) = call(&["disable", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(login(new_pw).await, (403, "account_disabled".to_string()));
    let (_, out, _) = call(&["list"], "");
    assert!(out.contains("disabled"), "{out}");
    let (code, _, err) = call(&["enable", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(login(new_pw).await.0, 201);

    let (code, out, err) = call(&["delete", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted alice"), "{out}");
    assert_eq!(login(new_pw).await.0, 401);
    let (_, out, _) = call(&["list"], "");
    assert!(out.trim().is_empty(), "{out}");
}

/// `keyframe catalog --tls-cert … --tls-key …` serves HTTPS only: it says so, a
/// sign-in over it sets a `Secure` session cookie and HSTS, and `healthcheck --ca`
/// reaches it.
#[test]
fn catalog_serves_https_with_tls_cert_and_key() {
    if !common::have_tools(&["curl"], "catalog HTTPS test") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    let path = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let dd = path(&tmp.path().join("data"));
    let mut cmd = keyframe();
    cmd.args(["catalog", "--listen", "127.0.0.1:0", "--data-dir", &dd])
        .args(["--tls-cert", &path(&cert), "--tls-key", &path(&key)]);
    let node = Running::start(cmd, 1);
    let base = node.url("catalog").to_string();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    // curl, trusting the test certificate: (status, response head, body).
    let curl = |method: &str, api: &str, body: &str| {
        let head = tmp.path().join("head");
        let o = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &path(&cert)])
            .args(["-X", method, "-H", "content-type: application/json"])
            .args(["--data-binary", body, "-D", &path(&head)])
            .args(["-w", "\n%{http_code}"])
            .arg(format!("{base}{api}"))
            .output()
            .expect("run curl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, status) = out.rsplit_once('\n').expect("status line");
        let head = std::fs::read_to_string(&head)
            .expect("head")
            .to_ascii_lowercase();
        (
            status.parse::<u16>().expect("status"),
            head,
            body.to_string(),
        )
    };
    let (status, _, body) = curl(
        "POST",
        "/api/users",
        r#"{"username":"tess","password":"a long tls passphrase","email":"tess@example.com","date_of_birth":"1990-05-17"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, head, body) = curl(
        "POST",
        "/api/sessions",
        r#"{"username":"tess","password":"a long tls passphrase"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {head}"));
    assert!(cookie.contains("kf_session="), "{cookie}");
    assert!(
        cookie.contains("; secure"),
        "not Secure over HTTPS: {cookie}"
    );
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );

    let (code, out, err) = run(
        &[
            "healthcheck",
            "--ca",
            &path(&cert),
            &format!("{base}/_keyframe/healthz"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(node.terminate().code(), Some(0));
}
