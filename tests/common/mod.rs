//! Helpers for end-to-end tests: start the real `keyframe` binary on port 0 and
//! find where it listens.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, kill_process_group, Pid, Signal};

pub mod browser;
pub mod ladder;

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

/// `keyframe --data-dir DATA serve` with its catalog, edge and origin on
/// 127.0.0.1 port 0, then `extra` flags; start it with [`Running::start`] (3
/// listen lines).
pub fn serve_node(data: &Path, extra: &[&str]) -> Command {
    let mut cmd = keyframe();
    cmd.arg("--data-dir").arg(data).args([
        "serve",
        "--catalog-listen",
        "127.0.0.1:0",
        "--edge-listen",
        "127.0.0.1:0",
        "--origin-listen",
        "127.0.0.1:0",
    ]);
    cmd.args(extra);
    cmd
}

/// A running `keyframe` process in a process group of its own; the group is
/// killed on drop, so nothing it started outlives the test, failed or not.
pub struct Running {
    pub child: Child,
    /// Server name (`origin`, `edge`, `catalog`) → base URL.
    pub urls: HashMap<String, String>,
}

impl Running {
    /// Starts `cmd` and waits until it has printed `expect` listen lines.
    pub fn start(mut cmd: Command, expect: usize) -> Running {
        cmd.stderr(Stdio::inherit());
        Running::spawn(cmd, expect)
    }

    /// As [`Running::start`], with stderr a pipe the caller reads (or does not).
    pub fn start_with_stderr(mut cmd: Command, expect: usize) -> (Running, ChildStderr) {
        cmd.stderr(Stdio::piped());
        let mut node = Running::spawn(cmd, expect);
        let stderr = node.child.stderr.take().expect("stderr");
        (node, stderr)
    }

    fn spawn(mut cmd: Command, expect: usize) -> Running {
        cmd.stdout(Stdio::piped()).process_group(0);
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
        let mut node = Running {
            child,
            urls: HashMap::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while urls.len() < expect {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("keyframe did not report {expect} listeners in time");
            });
            if let Some((name, url)) = line.split_once(" listening on ") {
                urls.insert(name.trim().to_string(), url.trim().to_string());
            }
        }
        node.urls = urls;
        node
    }

    /// The base URL of a server.
    pub fn url(&self, name: &str) -> &str {
        &self.urls[name]
    }

    /// Sends SIGTERM, and leaves the process running.
    pub fn sigterm(&self) {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, Signal::TERM).expect("SIGTERM");
    }

    /// Waits up to `within` for the process to exit, and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keyframe did not stop within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill_group(&self.child);
        let _ = self.child.wait();
    }
}

/// Kills the process group that `child` leads (spawned with `process_group(0)`):
/// the child and whatever it started that stayed in its group.
pub fn kill_group(child: &Child) {
    let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
}

/// Makes this test process the reaper of its orphaned descendants: a process that
/// leaves its process group and is orphaned (Chromium's crashpad handler calls
/// `setsid` and double-forks) becomes this process's child, where
/// [`kill_children_named`] finds it, rather than init's, where nobody would.
pub fn become_subreaper() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .expect("PR_SET_CHILD_SUBREAPER");
}

/// Kills and reaps the children of this process whose command name contains one of
/// `names`, until none is left (or 10 s pass: then the test fails).
pub fn kill_children_named(names: &[&str]) {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = children_named(me, names);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            // Failing the test, but never a second panic while one unwinds (an abort).
            if std::thread::panicking() {
                eprintln!("could not reap {left:?}");
                return;
            }
            panic!("could not reap {left:?}");
        }
        for (pid, _) in &left {
            if let Some(pid) = Pid::from_raw(*pid) {
                let _ = kill_process(pid, Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(pid, command name)` of the children of `parent` whose name contains one of `names`.
fn children_named(parent: i32, names: &[&str]) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_string();
        let ppid: i32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && names.iter().any(|n| comm.contains(n))).then_some((pid, comm))
    })
    .collect()
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
