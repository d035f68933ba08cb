//! Load and player benchmarks against any HTTP URL (HTTP only: it depends on no
//! other Keyframe crate), so Keyframe and its peers are measured by the same
//! tool in the same run.
//!
//! `keyframe bench WORKLOAD --url URL …` (or the standalone `keyframe-bench`
//! binary) parses into [`BenchArgs`] and calls [`run`]. The pieces:
//!
//! * [`args`]: the command line; [`units`]: `64KiB`, `2s`, `5Mbps`.
//! * [`targets`]: the server and objects from `--url`s or a manifest.
//! * [`workload`]: which object and bytes each request asks for (pure, seeded).
//! * [`load`]: closed- and open-loop connection tasks; [`players`]: the player
//!   simulation; [`abr`]: adaptive-bitrate players of an HLS ladder, whose
//!   playlists [`hls`] parses; [`client`]: the hyper HTTP/1.1 client side.
//! * [`verify`]: the byte check; [`stats`]: histograms, medians, ratios.
//! * [`report`]: the readable summary, `--json`, and `--compare`.
//! * [`conformance`]: `keyframe bench conformance`, the RFC 9111 suite that
//!   scores any caching proxy (a scripted origin and a table of cases).

pub mod abr;
pub mod args;
pub mod client;
pub mod conformance;
pub mod hls;
pub mod load;
pub mod players;
pub mod report;
pub mod stats;
pub mod targets;
pub mod units;
pub mod verify;
pub mod workload;

use std::sync::Arc;

use anyhow::{bail, Context};

pub use args::{BenchArgs, BenchCli, BenchCommand, CommonArgs, Workload};
use load::{Model, Spec};
use players::{PlayerSpec, PlayersReport};
pub use report::{CompareReport, RunReport};
use targets::{Object, Targets};
use workload::{Pick, Plan, Shape, Zipf};

/// What a benchmark produced: one run, or the rounds of a `--compare`.
#[derive(Debug, Clone)]
pub enum Outcome {
    Run(Box<RunReport>),
    Compare(CompareReport),
}

impl Outcome {
    /// Every run passed: no byte-check mismatch, some requests served, and
    /// errors within `max_error_rate` of the attempts.
    pub fn passed(&self, max_error_rate: f64) -> bool {
        match self {
            Outcome::Run(r) => report::passed(r, max_error_rate),
            Outcome::Compare(c) => c
                .rounds
                .iter()
                .flatten()
                .all(|r| report::passed(r, max_error_rate)),
        }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Outcome::Run(r) => serde_json::to_string_pretty(r),
            Outcome::Compare(c) => serde_json::to_string_pretty(c),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Outcome::Run(r) => report::text(r),
            Outcome::Compare(c) => report::compare_text(c),
        }
    }
}

/// Runs what `keyframe bench …` asks: a load workload ([`run`]) or the
/// conformance suite ([`conformance::run`]).
pub async fn dispatch(cli: BenchCli) -> anyhow::Result<bool> {
    match cli.command {
        BenchCommand::Load(workload) => run(BenchArgs { workload }).await,
        BenchCommand::Conformance(args) => conformance::run(&args).await,
    }
}

/// Runs the benchmark `args` describes, prints its report on stdout (text, or
/// JSON with `--json`), and says whether it passed (see [`Outcome::passed`]).
/// The binary maps `false` to exit status 1.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    let common = args.workload.common().clone();
    let outcome = measure(args).await?;
    if common.json {
        println!("{}", outcome.to_json()?);
    } else {
        print!("{}", outcome.to_text());
    }
    Ok(outcome.passed(common.max_error_rate))
}

/// The checks of the flags alone (no file read, nothing connected to): what fails
/// here is a usage error, which the command line reports as one (exit 2).
pub fn check(cli: &BenchCli) -> anyhow::Result<()> {
    let BenchCommand::Load(workload) = &cli.command else {
        return Ok(());
    };
    let common = workload.common();
    if common.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    validate(workload)?;
    for u in &common.urls {
        targets::check_url(u)?;
    }
    if let Workload::Players(args::PlayersArgs { abr: Some(u), .. }) = workload {
        targets::check_url(u).context("--abr")?;
    }
    if let Some(c) = &common.compare {
        targets::check_url(c).context("--compare")?;
    }
    Ok(())
}

/// Runs the benchmark and returns its reports without printing them.
///
/// The load runs on a runtime of its own (`--threads` workers) on a separate
/// thread, so the caller's runtime is neither blocked nor measured.
pub async fn measure(args: BenchArgs) -> anyhow::Result<Outcome> {
    let threads = match args.workload.common().threads {
        Some(n) if n > 0 => usize::from(n),
        Some(_) => bail!("--threads must be at least 1"),
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("keyframe-bench".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("keyframe-bench-worker")
                .enable_all()
                .build()
                .context("starting the bench runtime")
                .and_then(|rt| rt.block_on(measure_here(args)));
            let _ = tx.send(result);
        })
        .context("starting the bench thread")?;
    rx.await.context("the bench thread stopped")?
}

/// [`measure`] on the current runtime.
pub async fn measure_here(args: BenchArgs) -> anyhow::Result<Outcome> {
    let common = args.workload.common().clone();
    validate(&args.workload)?;
    if let Workload::Players(p @ args::PlayersArgs { abr: Some(url), .. }) = &args.workload {
        return Ok(Outcome::Run(Box::new(abr::run(p, url).await?)));
    }
    let mut a = Targets::from_args(
        &common.urls,
        common.manifest.as_deref(),
        common.verify_dir.as_deref(),
    )?;
    a.server.headers = common.headers.clone();
    a.probe().await?;
    let Some(compare) = &common.compare else {
        return Ok(Outcome::Run(Box::new(run_once(&args.workload, &a).await?)));
    };
    let single = common.urls.len() == 1 && common.manifest.is_none();
    let mut b = a.rebase(compare, single)?;
    b.probe().await?;
    let mut rounds = Vec::new();
    for round in 1..=common.rounds {
        let ra = run_once(&args.workload, &a).await?;
        eprintln!("{}", report::progress(round, common.rounds, "A", &ra));
        let rb = run_once(&args.workload, &b).await?;
        eprintln!("{}", report::progress(round, common.rounds, "B", &rb));
        rounds.push([ra, rb]);
    }
    Ok(Outcome::Compare(CompareReport::new(
        a.server.base.clone(),
        b.server.base.clone(),
        rounds,
    )))
}

fn validate(workload: &Workload) -> anyhow::Result<()> {
    let c = workload.common();
    match workload {
        Workload::Players(args::PlayersArgs { abr: Some(_), .. }) => {
            if !c.urls.is_empty() || c.manifest.is_some() || c.verify_dir.is_some() {
                bail!("--abr takes the playlist URL itself: no --url, --manifest or --verify-dir");
            }
            if c.compare.is_some() {
                bail!("--compare does not apply to --abr: run each server on its own");
            }
        }
        _ if c.urls.is_empty() => bail!("--url is required"),
        _ => {}
    }
    if c.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if c.connections == Some(0) {
        bail!("--connections must be at least 1");
    }
    if let Some(rate) = c.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of requests per second");
        }
        if c.connections.unwrap_or(c.concurrency) as f64 / rate < 1e-6 {
            bail!("--rate: more than a million requests per second per connection");
        }
    } else if let Some(n) = c.connections {
        if n != c.concurrency && !matches!(workload, Workload::Players(_)) {
            bail!("in a closed loop every connection has one request in flight: --connections must equal --concurrency");
        }
    }
    if !(0.0..=1.0).contains(&c.verify_sample) {
        bail!("--verify-sample is a fraction between 0 and 1");
    }
    if c.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    if c.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    match workload {
        Workload::Range(r) if r.size == 0 => bail!("--size must be more than 0"),
        Workload::Zipf(z) if !(z.exponent.is_finite() && z.exponent >= 0.0) => {
            bail!("--exponent must be a number ≥ 0")
        }
        Workload::Zipf(z) if z.objects == Some(0) => bail!("--objects must be at least 1"),
        Workload::Zipf(args::ZipfArgs { size: Some(0), .. })
        | Workload::Cold(args::ColdArgs { size: Some(0), .. }) => {
            bail!("--size must be more than 0")
        }
        Workload::Players(p) => {
            if p.players == 0 || p.ramp_start == 0 {
                bail!("--players and --ramp-start must be at least 1");
            }
            if p.abr.is_some() {
                if p.buffer <= p.start_buffer {
                    bail!("--buffer must be more than --start-buffer");
                }
                return Ok(());
            }
            if p.chunk == 0 {
                bail!("--chunk must be more than 0");
            }
            let chunk_media = p.chunk as f64 * 8.0 / p.bitrate as f64;
            if p.buffer.as_secs_f64() < p.start_buffer.as_secs_f64() + chunk_media {
                bail!(
                    "--buffer must hold --start-buffer plus one chunk ({chunk_media:.2} s of media at this bit rate)"
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn sample_every(fraction: f64) -> u64 {
    if fraction <= 0.0 {
        u64::MAX
    } else {
        ((1.0 / fraction).round() as u64).max(1)
    }
}

/// The objects of a Zipf run: the first `n` targets, or, for more than there
/// are, target `i % len` under the distinct cache key `kf-obj=i`.
pub fn zipf_objects(objects: &[Object], n: usize) -> Vec<Object> {
    if n <= objects.len() {
        return objects[..n].to_vec();
    }
    (0..n)
        .map(|i| {
            let base = &objects[i % objects.len()];
            Object {
                uri: base.with_query(&format!("kf-obj={i}")),
                ..base.clone()
            }
        })
        .collect()
}

async fn run_once(workload: &Workload, t: &Targets) -> anyhow::Result<RunReport> {
    let c = workload.common();
    let verify = c.manifest.is_some() || c.verify_dir.is_some();
    let (plan, objects, cold) = match workload {
        Workload::Players(p) => return run_players(p, t, verify).await,
        Workload::Range(r) => (
            Plan {
                pick: Pick::Uniform,
                shape: Shape::Range {
                    size: r.size,
                    aligned: r.aligned,
                },
            },
            t.objects.clone(),
            false,
        ),
        Workload::Whole(_) => (
            Plan {
                pick: Pick::Uniform,
                shape: Shape::Whole,
            },
            t.objects.clone(),
            false,
        ),
        Workload::Zipf(z) => {
            let n = z.objects.unwrap_or(t.objects.len());
            (
                Plan {
                    pick: Pick::Zipf(Zipf::new(n, z.exponent)),
                    shape: shape_of(z.size),
                },
                zipf_objects(&t.objects, n),
                false,
            )
        }
        Workload::Cold(cold) => (
            Plan {
                pick: Pick::Uniform,
                shape: shape_of(cold.size),
            },
            t.objects.clone(),
            true,
        ),
    };
    let model = match c.rate {
        Some(rate) => Model::Open {
            connections: c.connections.unwrap_or(c.concurrency),
            rate,
        },
        None => Model::Closed {
            connections: c.concurrency,
        },
    };
    let spec = Spec {
        server: t.server.clone(),
        sizes: objects.iter().map(|o| o.size).collect(),
        objects,
        plan,
        cold,
        model,
        keepalive: !c.no_keepalive,
        warmup: c.warmup,
        duration: c.duration,
        timeout: c.timeout,
        verify,
        sample_every: sample_every(c.verify_sample),
        seed: c.seed,
    };
    let load = match model {
        Model::Closed { connections } => format!("closed loop, {connections} connections"),
        Model::Open { connections, rate } => {
            format!("open loop, {rate} requests/s on {connections} connections")
        }
    };
    let summary = load::execute(Arc::new(spec)).await;
    Ok(RunReport {
        target: t.server.base.clone(),
        workload: describe(workload),
        load,
        summary,
        players: None,
        abr: None,
    })
}

fn shape_of(size: Option<u64>) -> Shape {
    match size {
        Some(size) => Shape::Range {
            size,
            aligned: false,
        },
        None => Shape::Whole,
    }
}

fn describe(workload: &Workload) -> String {
    let h = |n: u64| keyframe_core::size::human_bytes(n as f64);
    match workload {
        Workload::Range(r) => format!(
            "range {}{}",
            h(r.size),
            if r.aligned { " aligned" } else { "" }
        ),
        Workload::Whole(_) => "whole".into(),
        Workload::Zipf(z) => format!(
            "zipf s={} over {} objects{}",
            z.exponent,
            z.objects
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            z.size
                .map_or_else(String::new, |s| format!(", ranges of {}", h(s)))
        ),
        Workload::Cold(c) => format!(
            "cold{}",
            c.size
                .map_or_else(String::new, |s| format!(", ranges of {}", h(s)))
        ),
        Workload::Players(p) => format!(
            "players at {:.2} Mbps, chunks of {}",
            p.bitrate as f64 / 1e6,
            h(p.chunk)
        ),
    }
}

async fn run_players(
    p: &args::PlayersArgs,
    t: &Targets,
    verify: bool,
) -> anyhow::Result<RunReport> {
    let c = &p.common;
    let spec = Arc::new(PlayerSpec {
        server: t.server.clone(),
        objects: t.objects.clone(),
        bitrate: p.bitrate,
        chunk: p.chunk,
        buffer: p.buffer,
        start_buffer: p.start_buffer,
        seek_interval: p.seek_interval,
        duration: c.duration,
        timeout: c.timeout,
        verify,
        sample_every: sample_every(c.verify_sample),
        seed: c.seed,
    });
    let counts = if p.ramp {
        ramp_steps(p.ramp_start, p.players)
    } else {
        vec![p.players]
    };
    let mut steps = Vec::new();
    let mut last = None;
    let mut best = 0;
    for n in counts {
        let (summary, step) = players::step(Arc::clone(&spec), n).await;
        let clean = step.rebuffers == 0 && step.started == n && summary.verify_failures == 0;
        if p.ramp {
            eprintln!(
                "players {n}: {} rebuffers, startup p50 {:.0} ms, {:.2} Mbps each",
                step.rebuffers,
                step.startup_ms_p50,
                step.achieved_bitrate_bps / 1e6
            );
        }
        if clean {
            best = best.max(n);
        }
        steps.push(step);
        last = Some(summary);
        if !clean {
            break;
        }
    }
    let summary = last.context("no players step ran")?;
    let last_step = steps.last().cloned().context("no players step ran")?;
    Ok(RunReport {
        target: t.server.base.clone(),
        workload: describe(&Workload::Players(p.clone())),
        load: format!("{} players, one connection each", last_step.players),
        summary,
        abr: None,
        players: Some(PlayersReport {
            last: last_step,
            steps: if p.ramp { steps } else { Vec::new() },
            max_players_without_rebuffer: best,
        }),
    })
}

/// Player counts of a ramp: `start`, doubling, ending exactly at `max`.
pub fn ramp_steps(start: usize, max: usize) -> Vec<usize> {
    let mut steps = Vec::new();
    let mut n = start.max(1);
    while n < max {
        steps.push(n);
        n = n.saturating_mul(2);
    }
    steps.push(max);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_doubles_to_the_maximum() {
        assert_eq!(ramp_steps(1, 10), vec![1, 2, 4, 8, 10]);
        assert_eq!(ramp_steps(4, 16), vec![4, 8, 16]);
        assert_eq!(ramp_steps(5, 3), vec![3]);
    }

    #[test]
    fn sampling_rates() {
        assert_eq!(sample_every(1.0), 1);
        assert_eq!(sample_every(0.01), 100);
        assert_eq!(sample_every(0.3), 3);
        assert_eq!(sample_every(0.0), u64::MAX);
    }

    #[test]
    fn zipf_objects_beyond_the_targets_get_distinct_keys() {
        let t = Targets::from_args(
            &["http://127.0.0.1:1/a".into(), "http://127.0.0.1:1/b".into()],
            None,
            None,
        )
        .expect("targets");
        assert_eq!(zipf_objects(&t.objects, 1).len(), 1);
        let many = zipf_objects(&t.objects, 5);
        assert_eq!(many.len(), 5);
        assert_eq!(many[3].uri, "/b?kf-obj=3");
        assert_eq!(many[3].path, "/b");
    }

    #[test]
    fn bad_options_are_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let parse = |line: &str| {
            Cli::try_parse_from(line.split_whitespace())
                .map(|c| c.bench)
                .map_err(|e| e.to_string())
        };
        let ok = parse("x range --url http://h/a --size 4KiB --concurrency 4").expect("parse");
        assert!(validate(&ok.workload).is_ok());
        assert!(parse("x range --url http://h/a --size 4parsecs").is_err());
        for bad in [
            "x range --url http://h/a --size 4KiB --concurrency 4 --connections 2",
            "x range --url http://h/a --size 4KiB --rate 0",
            "x range --url http://h/a --size 4KiB --verify-sample 2",
            "x zipf --url http://h/a --exponent=-1",
            "x players --url http://h/a --buffer 1s --start-buffer 2s",
        ] {
            let args = parse(bad).expect("parse");
            assert!(validate(&args.workload).is_err(), "{bad}");
        }
        let open = parse("x cold --url http://h/a --rate 1000 --connections 8").expect("parse");
        assert!(validate(&open.workload).is_ok());
    }
}
