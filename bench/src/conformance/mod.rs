//! `keyframe bench conformance`: how well a caching proxy follows RFC 9111 (and
//! the caching parts of RFC 9110, RFC 5861 and RFC 9213), measured the same way
//! for any proxy.
//!
//! The suite starts a scriptable origin ([`origin`]) on `--origin`; the proxy
//! under test (`--proxy`) is configured by the user to forward there. Each case
//! ([`dsl`], table in [`cases`]) has a path of its own, scripts the answers the
//! origin gives, sends its requests through the proxy, and checks what the
//! client got and which requests reached the origin ([`runner`]). The cases run
//! at once; [`report`] prints a line per case and the score by level, JSON with
//! `--json`, or several saved JSON runs side by side with `--table`.

pub mod cases;
pub mod dsl;
pub mod origin;
pub mod report;
pub mod runner;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

pub use dsl::{Case, Level};
pub use origin::Origin;
pub use report::Report;
pub use runner::{Outcome, Target};

/// `keyframe bench conformance`.
#[derive(Debug, Clone, Args)]
pub struct ConformanceArgs {
    /// The proxy under test, e.g. http://127.0.0.1:8081. It must forward every
    /// path to the test origin at --origin.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Where the test origin listens (the proxy's upstream), e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR")]
    pub origin: Option<SocketAddr>,
    /// Only the cases whose id contains this (e.g. `vary.` or `range.`).
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
    /// The name the report gives the proxy (default: its URL).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// List the cases (id, level, RFC section, what is checked) and exit.
    #[arg(long)]
    pub list: bool,
    /// Only run the test origin on --origin, until interrupted.
    #[arg(long)]
    pub serve_origin: bool,
    /// Print saved `--json` reports side by side as Markdown, and exit.
    #[arg(long, value_name = "JSON", num_args = 1..)]
    pub table: Vec<PathBuf>,
}

/// The cases whose id contains `only` (all without it).
pub fn selected(only: Option<&str>) -> Vec<Case> {
    cases::all()
        .into_iter()
        .filter(|c| only.is_none_or(|o| c.id.contains(o)))
        .collect()
}

/// Runs `cases` against `proxy`, with the test origin already listening at
/// `origin` (and the proxy forwarding to it).
pub async fn check(proxy: &str, origin: &Origin, cases: Vec<Case>) -> anyhow::Result<Report> {
    let control = match origin.addr {
        a if a.ip().is_unspecified() => format!("http://127.0.0.1:{}", a.port()),
        a => format!("http://{a}"),
    };
    let target = Target::new(proxy, &control)?;
    target.reachable().await?;
    let started = Instant::now();
    let outcomes = runner::run_all(&target, cases).await;
    Ok(Report::new(
        proxy.to_owned(),
        proxy.to_owned(),
        started.elapsed().as_millis() as u64,
        outcomes,
    ))
}

/// Runs what `args` asks; prints on stdout. `Ok(true)` when it ran to the end
/// (a failing case is a result, not an error).
pub async fn run(args: &ConformanceArgs) -> anyhow::Result<bool> {
    if !args.table.is_empty() {
        let mut runs = Vec::new();
        for path in &args.table {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--table {}", path.display()))?;
            runs.push(serde_json::from_str::<Report>(&text).with_context(|| {
                format!("--table {}: not a conformance report", path.display())
            })?);
        }
        print!("{}", report::markdown(&runs));
        return Ok(true);
    }
    let cases = selected(args.only.as_deref());
    if args.list {
        for c in &cases {
            println!(
                "{:<44} {:<7} {:<20} {}",
                c.id,
                c.level.name(),
                c.rfc,
                c.title
            );
        }
        return Ok(true);
    }
    let Some(addr) = args.origin else {
        bail!("--origin ADDR is needed: where the test origin listens and the proxy forwards");
    };
    let origin = Origin::start(addr).await?;
    if args.serve_origin {
        eprintln!("test origin listening on {}", origin.url());
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        return Ok(true);
    }
    let Some(proxy) = &args.proxy else {
        bail!("--proxy URL is needed: the proxy under test");
    };
    if cases.is_empty() {
        bail!(
            "--only {}: no case matches",
            args.only.as_deref().unwrap_or("")
        );
    }
    let mut report = check(proxy, &origin, cases).await?;
    if let Some(name) = &args.name {
        report.name = name.clone();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(true)
}
