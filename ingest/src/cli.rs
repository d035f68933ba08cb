//! The command-line side of ingest, kept here so the `keyframe` binary stays thin:
//! the flags of `keyframe ingest` and `keyframe gc`, and the loops that run them
//! over several files with a progress bar (on a terminal only), one line or one
//! JSON object per file, and one error line per bad file while the others go on.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keyframe_catalog::meta::{Right, ANY_REGION};
use keyframe_catalog::Db;
use keyframe_core::duration::parse_duration;
use keyframe_core::size::human_bytes;
use keyframe_core::store::Store;
use serde_json::json;

use crate::error::IngestError;
use crate::gc::{gc, GcReport};
use crate::pipeline::{ingest, ingest_avatar, IngestOptions, Progress, Stage};
use crate::remote::{Remote, RemoteMeta};
use crate::source::Source;
use crate::uploads::ingested;
use keyframe_catalog::uploads::IngestedContent;

/// Flags of `keyframe ingest`.
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Files to ingest.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Title of the content [default: the file name without its extension].
    #[arg(long)]
    pub title: Option<String>,
    /// Description of the content.
    #[arg(long)]
    pub description: Option<String>,
    /// A category; repeat for several.
    #[arg(long = "category", value_name = "C")]
    pub categories: Vec<String>,
    /// Regions where the content may be watched, comma-separated [default: everywhere].
    #[arg(long, value_delimiter = ',', value_name = "R,…")]
    pub regions: Vec<String>,
    /// When the content becomes watchable: RFC 3339 (2030-01-31T12:00:00Z) or Unix seconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub available_from: Option<i64>,
    /// When the content stops being watchable: RFC 3339 or Unix seconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub available_until: Option<i64>,
    /// Rewrite MP4 files whose index (moov) is at the end so playback starts at once (needs ffmpeg).
    #[arg(long)]
    pub faststart: bool,
    /// Store a file that claims to be audio or video (by name or content) but does
    /// not decode as kind `other`, with a warning, instead of refusing it.
    #[arg(long)]
    pub allow_broken: bool,
    /// Make no new title for a file whose bytes already are a title: print that
    /// title instead.
    #[arg(long)]
    pub if_new: bool,
    /// Ingest a profile image for this user instead of content (one FILE).
    #[arg(
        long,
        value_name = "USERNAME",
        conflicts_with_all = ["title", "description", "categories", "regions", "available_from", "available_until", "faststart", "allow_broken", "if_new"]
    )]
    pub avatar: Option<String>,
    /// Print one JSON object per file on stdout.
    #[arg(long)]
    pub json: bool,
    /// Stream the files to this catalog's admin ingest endpoint instead of writing
    /// storage and the database directly.
    #[arg(long, value_name = "URL", conflicts_with_all = ["avatar", "faststart", "allow_broken", "if_new"])]
    pub server: Option<String>,
    /// The catalog's admin token, for --server.
    #[arg(
        long,
        value_name = "T",
        env = "KEYFRAME_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// Flags of `keyframe gc`.
#[derive(Clone, Debug, clap::Args)]
pub struct GcArgs {
    /// Only objects older than this are collected: seconds, or 90s, 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
    pub grace: Duration,
    /// Delete the unreferenced objects (without it, only list them).
    #[arg(long)]
    pub delete: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl IngestArgs {
    /// Usage mistakes the flags alone cannot express: one line each.
    pub fn check(&self) -> Result<(), String> {
        self.options()?;
        if self.avatar.is_some() && self.files.len() != 1 {
            return Err("--avatar takes exactly one FILE".into());
        }
        if self.server.is_some() && self.admin_token.as_deref().is_none_or(str::is_empty) {
            return Err("--server needs --admin-token (or KEYFRAME_ADMIN_TOKEN)".into());
        }
        Ok(())
    }

    /// The pipeline options these flags ask for (the tools are detected on `PATH`).
    pub fn options(&self) -> Result<IngestOptions, String> {
        if let (Some(f), Some(u)) = (self.available_from, self.available_until) {
            if f >= u {
                return Err("--available-from must be before --available-until".into());
            }
        }
        let mut regions: Vec<String> = self
            .regions
            .iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        regions.sort();
        regions.dedup();
        if regions.is_empty() && (self.available_from.is_some() || self.available_until.is_some()) {
            regions.push(ANY_REGION.to_string());
        }
        Ok(IngestOptions {
            title: self.title.clone(),
            description: self.description.clone().unwrap_or_default(),
            categories: self.categories.clone(),
            rights: regions
                .into_iter()
                .map(|region| Right {
                    region,
                    available_from: self.available_from,
                    available_until: self.available_until,
                })
                .collect(),
            faststart: self.faststart,
            allow_broken: self.allow_broken,
            if_new: self.if_new,
            ..IngestOptions::default()
        })
    }
}

/// Runs `keyframe ingest`: each file in turn, the others still ingesting when one
/// fails. True when every file was ingested.
pub async fn run_cli(args: IngestArgs, store: Store, db: Db) -> bool {
    if args.server.is_some() {
        return run_remote(&args).await;
    }
    let mut opts = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    if args.avatar.is_some() && args.files.len() != 1 {
        eprintln!("error: --avatar takes exactly one FILE");
        return false;
    }
    let terminal = std::io::stderr().is_terminal();
    let mut warned = HashSet::new();
    let mut all_ok = true;
    for file in &args.files {
        let bar = Bar::new(terminal, file);
        opts.progress = Some(bar.clone());
        let result = match &args.avatar {
            Some(user) => ingest_avatar(&store, &db, user, Source::file(file), &opts).await,
            None => ingest(&store, &db, Source::file(file), &opts).await,
        };
        bar.0.finish_and_clear();
        match result {
            Ok(report) => {
                let done = ingested(&report);
                warn(&mut warned, file, &done.warnings);
                all_ok &= print_result(
                    args.json,
                    || report_json(file, &done, report.user_id.as_deref()),
                    || report_line(file, &done, report.user_id.as_deref()),
                );
            }
            Err(e @ IngestError::Broken(_)) => {
                all_ok = false;
                eprintln!(
                    "error: {}: {e} (--allow-broken stores it as kind other)",
                    file.display()
                );
            }
            Err(e) => {
                all_ok = false;
                eprintln!("error: {}: {e}", file.display());
            }
        }
    }
    all_ok
}

/// `keyframe ingest --server`: each file streamed to the catalog in turn.
pub async fn run_remote(args: &IngestArgs) -> bool {
    let Some(server) = args.server.as_deref() else {
        return false;
    };
    let Some(token) = args.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        eprintln!("error: --server needs --admin-token (or KEYFRAME_ADMIN_TOKEN)");
        return false;
    };
    if let Err(e) = args.options() {
        eprintln!("error: {e}");
        return false;
    }
    let remote = match Remote::new(server, token) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --server: {e}");
            return false;
        }
    };
    let meta = RemoteMeta {
        title: args.title.clone(),
        description: args.description.clone(),
        categories: args.categories.clone(),
        regions: args.regions.clone(),
        available_from: args.available_from,
        available_until: args.available_until,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut all_ok = true;
    let mut warned = HashSet::new();
    for file in &args.files {
        let bar = Bar::new(terminal, file);
        let total = std::fs::metadata(file).ok().map(|m| m.len());
        bar.stage(Stage::Uploading { total });
        let b = bar.clone();
        let result = remote.upload(file, &meta, move |n| b.bytes(n)).await;
        bar.0.finish_and_clear();
        match result {
            Ok(c) => {
                warn(&mut warned, file, &c.warnings);
                all_ok &= print_result(
                    args.json,
                    || report_json(file, &c, None),
                    || report_line(file, &c, None),
                );
            }
            Err(e) => {
                all_ok = false;
                eprintln!("error: {}: {e}", file.display());
            }
        }
    }
    all_ok
}

/// Prints an ingest's warnings on stderr, one line each; a missing tool is said
/// once, not once per file.
fn warn(warned: &mut HashSet<String>, file: &Path, warnings: &[String]) {
    for w in warnings {
        let line = if w.contains("not on PATH") {
            format!("warning: {w}")
        } else {
            format!("warning: {}: {w}", file.display())
        };
        if warned.insert(line.clone()) {
            eprintln!("{line}");
        }
    }
}

/// Prints one ingested file on stdout: its JSON object or its line. False when
/// stdout cannot be written.
fn print_result(
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_line: impl FnOnce() -> String,
) -> bool {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", as_json()).is_ok()
    } else {
        writeln!(out, "{}", as_line()).is_ok()
    }
}

/// Runs `keyframe gc`. True when the listing worked and every deletion asked for
/// succeeded.
pub async fn run_gc(args: GcArgs, store: Store, db: Db) -> bool {
    let report = match gc(&store, &db, args.grace, args.delete).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: gc failed: {e}");
            return false;
        }
    };
    for e in &report.errors {
        eprintln!("error: could not delete {e}");
    }
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", gc_json(&report, &args))
    } else {
        write_gc_lines(&mut out, &report, &args)
    };
    written.is_ok() && report.errors.is_empty()
}

fn gc_json(report: &GcReport, args: &GcArgs) -> serde_json::Value {
    json!({
        "grace_seconds": args.grace.as_secs(),
        "delete": args.delete,
        "scanned": report.scanned,
        "orphans": report.orphans,
        "orphan_bytes": report.orphan_bytes,
        "deleted": report.deleted,
        "errors": report.errors,
    })
}

fn write_gc_lines(out: &mut impl Write, report: &GcReport, args: &GcArgs) -> std::io::Result<()> {
    let now = keyframe_catalog::db::now_ms();
    for o in &report.orphans {
        let age = Duration::from_millis(u64::try_from(now - o.last_modified).unwrap_or(0));
        writeln!(
            out,
            "{} {} {} old{}",
            o.key,
            human_bytes(o.size as f64),
            human_duration(age),
            if args.delete { " (deleted)" } else { "" }
        )?;
    }
    let what = if args.delete {
        format!("{} deleted", report.deleted)
    } else if report.orphans.is_empty() {
        "nothing to delete".to_string()
    } else {
        "run with --delete to remove them".to_string()
    };
    writeln!(
        out,
        "{} unreferenced object(s) older than {}, {} in all, among {} scanned; {what}",
        report.orphans.len(),
        human_duration(args.grace),
        human_bytes(report.orphan_bytes as f64),
        report.scanned
    )
}

/// The JSON object `--json` prints for one file, local or remote: the catalog's
/// answer with the file's name (and, for an avatar, the user's id).
pub fn report_json(file: &Path, c: &IngestedContent, user_id: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("file".into(), json!(file.display().to_string()));
        o.insert("user_id".into(), json!(user_id));
        if c.content_id.is_empty() {
            o.insert("content_id".into(), serde_json::Value::Null);
        }
    }
    v
}

/// The line printed for one file without `--json`, local or remote. Warnings are
/// not in it: they go to stderr, one line each, as they are in `--json`.
pub fn report_line(file: &Path, c: &IngestedContent, user_id: Option<&str>) -> String {
    let mut facts = vec![human_bytes(c.size as f64), c.mime.clone()];
    if let Some(d) = c.duration_ms {
        facts.push(format!("{:.1} s", d as f64 / 1000.0));
    }
    if let (Some(w), Some(h)) = (c.width, c.height) {
        facts.push(format!("{w}x{h}"));
    }
    let codecs: Vec<&str> = [c.video_codec.as_deref(), c.audio_codec.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !codecs.is_empty() {
        facts.push(codecs.join("/"));
    }
    if !c.assets.is_empty() {
        let roles: Vec<&str> = c.assets.iter().map(|d| d.role.as_str()).collect();
        facts.push(format!("+ {}", roles.join(", ")));
    }
    if c.already_stored {
        facts.push("bytes already stored".into());
    }
    let owner = match user_id {
        Some(user) => format!("avatar of user {user}"),
        None if c.skipped => format!("already content {} (skipped)", c.content_id),
        None => format!("content {}", c.content_id),
    };
    format!(
        "{}: {owner} at {} ({})",
        file.display(),
        c.path,
        facts.join(", ")
    )
}

/// A progress bar on stderr, drawn only on a terminal.
#[derive(Clone)]
struct Bar(ProgressBar);

impl Bar {
    fn new(terminal: bool, file: &Path) -> Arc<Bar> {
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        // Not the default style: its first frame would be an empty `0/0` bar.
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("opening");
        bar.set_prefix(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string()),
        );
        Arc::new(Bar(bar))
    }
}

impl Progress for Bar {
    fn stage(&self, stage: Stage) {
        let spinner = || {
            ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
        };
        match stage {
            Stage::Uploading { total } => {
                if let Some(t) = total {
                    self.0.set_length(t);
                    self.0.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                } else {
                    self.0.set_style(spinner());
                    self.0.set_message("uploading");
                }
            }
            other => {
                self.0.set_style(spinner());
                self.0.set_message(match other {
                    Stage::Probing => "probing",
                    Stage::Pictures => "making pictures",
                    _ => "committing",
                });
                self.0.enable_steady_tick(Duration::from_millis(120));
            }
        }
    }

    fn bytes(&self, done: u64) {
        self.0.set_position(done);
    }
}

/// Parses a time as Unix seconds or RFC 3339 (`2030-01-31T12:00:00Z`, with an
/// optional fraction and a `Z` or `±HH:MM` offset; a bare date means midnight UTC),
/// into Unix milliseconds (a fraction below 1 ms is dropped, toward the past).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "'{s}' is not a time (expected RFC 3339 such as 2030-01-31T12:00:00Z, or Unix seconds)"
        )
    };
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s.parse().map_err(|_| bad())?;
        return secs.checked_mul(1000).ok_or_else(bad);
    }
    // RFC 3339 §5.6 `full-date` alone: midnight UTC.
    let midnight;
    let text = if s.len() == 10 {
        midnight = format!("{s}T00:00:00Z");
        &midnight
    } else {
        s
    };
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| bad())
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(subcommand)]
        sub: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    #[allow(clippy::large_enum_variant)] // parsed once per test
    enum Sub {
        Ingest(IngestArgs),
        Gc(GcArgs),
    }

    fn ingest_args(args: &[&str]) -> Result<IngestArgs, clap::Error> {
        let mut v = vec!["keyframe", "ingest"];
        v.extend_from_slice(args);
        match Cmd::try_parse_from(v)?.sub {
            Sub::Ingest(a) => Ok(a),
            Sub::Gc(_) => unreachable!("parsed ingest"),
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T21:13:20.5-01:00"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("2023-11-14t22:13:20.123456z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400_000));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1000));
        // Sub-millisecond digits are dropped toward the past, as before.
        assert_eq!(parse_time("1969-12-31T23:59:59.1234Z"), Ok(-877));
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-02-29",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+1",
            "2023-11-14T22:13Z",
            "12abc",
            "2023-11-14T22:13:20.Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse_into_options() {
        let a = ingest_args(&[
            "a.mp4",
            "b.mp4",
            "--title",
            "T",
            "--category",
            "x",
            "--category",
            "y",
            "--regions",
            "eu, us,eu",
            "--available-from",
            "2030-01-01",
            "--available-until",
            "1900000000",
            "--faststart",
            "--json",
        ])
        .expect("parse");
        assert_eq!(a.files.len(), 2);
        let o = a.options().expect("options");
        assert_eq!(o.title.as_deref(), Some("T"));
        assert_eq!(o.categories, vec!["x", "y"]);
        assert!(o.faststart);
        let regions: Vec<_> = o.rights.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(regions, vec!["eu", "us"]);
        assert!(o
            .rights
            .iter()
            .all(|r| r.available_from == Some(1_893_456_000_000)
                && r.available_until == Some(1_900_000_000_000)));

        let window = ingest_args(&["a", "--available-until", "1900000000"]).expect("parse");
        assert_eq!(window.options().expect("options").rights[0].region, "*");
        assert!(ingest_args(&["a"])
            .expect("parse")
            .options()
            .expect("o")
            .rights
            .is_empty());
        let backwards = ingest_args(&["a", "--available-from", "20", "--available-until", "10"])
            .expect("parse");
        assert!(backwards.options().is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(ingest_args(&[]).is_err(), "FILE is required");
        assert!(ingest_args(&["a", "--available-from", "soon"]).is_err());
        assert!(ingest_args(&["a", "--avatar", "u", "--title", "t"]).is_err());
        assert!(ingest_args(&["a", "--avatar", "u", "--json"]).is_ok());
        let gc = Cmd::try_parse_from(["keyframe", "gc"]).expect("parse");
        match gc.sub {
            Sub::Gc(g) => assert_eq!(
                (g.grace, g.delete, g.json),
                (Duration::from_secs(86_400), false, false)
            ),
            Sub::Ingest(_) => unreachable!("parsed gc"),
        }
        assert!(Cmd::try_parse_from(["keyframe", "gc", "--grace", "soon"]).is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_secs(86_400)), "24h");
        assert_eq!(human_duration(Duration::from_secs(30)), "30s");
    }
}
