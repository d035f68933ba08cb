//! The last word of `cargo test --workspace`: one line that names the suites that
//! did not run on this machine and why, so that a skip is never taken for a pass.
//!
//! Suites whose prerequisites are missing skip (and report `ok`) outside CI; under
//! `CI=true` they fail instead. This file looks at the same prerequisites the
//! suites do: the `KEYFRAME_TEST_*` variables, PostgreSQL's port, and the tools.
//!
//! Why here and so named: cargo runs test binaries package by package (by name;
//! `keyframe-origin` comes last) and, within a package, in the order of their
//! names, so this binary, a `[[test]]` of its own beside the crate's one
//! `integration` binary (origin/Cargo.toml), runs last; the libraries turn doc
//! tests off (they have none), so nothing prints after it but its own `test
//! result` line. The line goes straight to stderr: libtest captures `eprintln!`
//! of a test that passes.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn runs(tool: &str) -> bool {
    ["--version", "-version"].iter().any(|flag| {
        Command::new(tool)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty())
}

/// Whether PostgreSQL answers on the host and port of `KEYFRAME_TEST_DATABASE_URL`
/// (the cluster test's server; 127.0.0.1:5432 without the variable).
fn postgres_reachable() -> bool {
    let url = std::env::var("KEYFRAME_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let Ok(u) = url::Url::parse(&url) else {
        return false;
    };
    let host = u.host_str().unwrap_or("127.0.0.1").to_string();
    let port = u.port().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        })
        .unwrap_or(false)
}

/// Where the cluster test finds `s3s-fs`.
fn have_s3s_fs() -> bool {
    if let Ok(p) = std::env::var("S3S_FS") {
        return PathBuf::from(p).is_file();
    }
    runs("s3s-fs")
        || std::env::var("KEYFRAME_CI_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/keyframe-ci")
            })
            .join("s3s/bin/s3s-fs")
            .is_file()
}

/// `(suite, why it did not run)` for every suite that skipped on this machine.
fn not_run() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let missing = |tools: &[&str]| -> Vec<String> {
        tools
            .iter()
            .filter(|t| !runs(t))
            .map(|t| (*t).to_string())
            .collect()
    };
    let say = |tools: Vec<String>| format!("{} not installed", tools.join(", "));
    if !set("KEYFRAME_TEST_DATABASE_URL") {
        v.push((
            "the PostgreSQL suites of catalog and ingest",
            "KEYFRAME_TEST_DATABASE_URL is not set".to_string(),
        ));
    }
    if !set("KEYFRAME_TEST_S3") {
        v.push((
            "the S3 suites of origin and ingest",
            "KEYFRAME_TEST_S3 is not set".to_string(),
        ));
    }
    let mut cluster = missing(&["psql", "ffmpeg"]);
    if !have_s3s_fs() {
        cluster.push("s3s-fs".into());
    }
    if !cluster.is_empty() {
        v.push(("the cluster test", say(cluster)));
    } else if !postgres_reachable() {
        v.push(("the cluster test", "PostgreSQL is unreachable".to_string()));
    }
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| runs(b));
    let mut b = missing(&["chromedriver", "ffmpeg"]);
    if !browser {
        b.insert(0, "chromium".into());
    }
    if !b.is_empty() {
        v.push(("the browser test", say(b)));
    }
    let players = missing(&["ffmpeg", "ffprobe", "aria2c"]);
    if !players.is_empty() {
        v.push(("the player tests", say(players)));
    }
    let media = missing(&["ffmpeg", "ffprobe"]);
    if !media.is_empty() {
        v.push(("the media checks of ingest and serve", say(media)));
    }
    let curl = missing(&["curl"]);
    if !curl.is_empty() {
        v.push(("the curl checks of the TLS tests", say(curl)));
    }
    v
}

#[test]
fn the_suites_that_did_not_run_are_named() {
    let skipped = not_run();
    let line = if skipped.is_empty() {
        "keyframe tests: every suite ran (PostgreSQL, S3, cluster, browser, players, media, curl)"
            .to_string()
    } else {
        let list: Vec<String> = skipped
            .iter()
            .map(|(suite, why)| format!("{suite}, as {why}"))
            .collect();
        format!(
            "keyframe tests NOT RUN (skipped, not passed): {}. README.md, \"Running the \
             PostgreSQL and S3 test suites\", says how to run them.",
            list.join("; ")
        )
    };
    // Never a failure: under `CI=true` the suites themselves fail when they cannot run.
    let _ = writeln!(std::io::stderr(), "\n{line}\n");
}
