//! Helpers for end-to-end tests: start the real `keyframe` binary on port 0 and
//! find where it listens.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The built binary.
pub fn keyframe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyframe"));
    // Tests must not pick up a developer's configuration.
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYFRAME_") {
            c.env_remove(k);
        }
    }
    c.env("KEYFRAME_LOG", "warn");
    c
}

/// A running `keyframe` process, killed on drop.
pub struct Running {
    pub child: Child,
    /// Server name (`origin`, `edge`, `catalog`) → base URL.
    pub urls: HashMap<String, String>,
}

impl Running {
    /// Starts `cmd` and waits until it has printed `expect` listen lines.
    pub fn start(mut cmd: Command, expect: usize) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn keyframe");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut urls = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while urls.len() < expect {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("keyframe did not report {expect} listeners in time");
            });
            if let Some((name, url)) = line.split_once(" listening on ") {
                urls.insert(name.trim().to_string(), url.trim().to_string());
            }
        }
        Running { child, urls }
    }

    /// The base URL of a server.
    pub fn url(&self, name: &str) -> &str {
        &self.urls[name]
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keyframe did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `tool` runs on this machine (`-version` or `--version` succeeds).
pub fn runs(tool: &str) -> bool {
    ["-version", "--version"].iter().any(|flag| {
        Command::new(tool)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A prerequisite of `suite` is missing: the test is skipped with a message, except
/// under `CI=true`, where it fails (the suite must run in CI). Returns true, so that
/// `if !runs(x) && missing(..) { return; }` reads as it does.
pub fn missing(what: &str, suite: &str) -> bool {
    assert!(
        std::env::var("CI").map(|v| v != "true").unwrap_or(true),
        "CI=true but {what}: the {suite} must run in CI"
    );
    eprintln!("skipping the {suite}: {what}");
    true
}

/// Whether every tool runs; each one that does not is [`missing`] for `suite`.
pub fn have_tools(tools: &[&str], suite: &str) -> bool {
    tools
        .iter()
        .all(|t| runs(t) || !missing(&format!("{t} is not installed"), suite))
}

/// A server's `/_keyframe/metrics` text.
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/_keyframe/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The sum of the samples whose line starts with `prefix`; `None` if there is none.
pub fn metric_sum(text: &str, prefix: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
