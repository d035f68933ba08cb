//! The command line of `keyframe bench` (and of the standalone `keyframe-bench`
//! binary): one subcommand per workload, each with the common load options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use keyframe_core::duration::parse_duration;
use keyframe_core::size::parse_size;

use crate::units::parse_bitrate;

/// One `--header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: http::HeaderName,
    pub value: http::HeaderValue,
}

/// Parses `Name: value` (curl's `-H` form).
pub fn parse_header(s: &str) -> Result<Header, String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': expected NAME: VALUE"))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("'{}': not a header name", name.trim()))?;
    let value = http::HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} has characters a header cannot hold"))?;
    Ok(Header { name, value })
}

/// `keyframe bench …`: a load workload, or the cache conformance suite.
#[derive(Debug, Clone, Args)]
pub struct BenchCli {
    #[command(subcommand)]
    pub command: BenchCommand,
}

// Parsed once per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    #[command(flatten)]
    Load(Workload),
    /// RFC 9111 conformance of any caching proxy: a scripted origin behind it,
    /// 150+ cases through it, a pass/fail line per case and a score by level.
    Conformance(crate::conformance::ConformanceArgs),
}

/// `keyframe bench WORKLOAD [OPTIONS]`: load and player benchmarks against any
/// HTTP/1.1 endpoint.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
}

/// What each request asks for.
#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Byte ranges of a fixed size at random offsets over a set of objects.
    Range(RangeArgs),
    /// Entire objects, picked uniformly from the set.
    Whole(WholeArgs),
    /// Objects picked with Zipf popularity (a CDN-like mix); whole objects, or
    /// ranges with --size.
    Zipf(ZipfArgs),
    /// Every request a new cache key (a unique query string): all misses at a cache.
    Cold(ColdArgs),
    /// Simulated video players: sequential ranges at a bit rate with a playout
    /// buffer and seeks; reports startup, rebuffering and capacity.
    Players(PlayersArgs),
}

impl Workload {
    /// The options every workload shares.
    pub fn common(&self) -> &CommonArgs {
        match self {
            Workload::Range(a) => &a.common,
            Workload::Whole(a) => &a.common,
            Workload::Zipf(a) => &a.common,
            Workload::Cold(a) => &a.common,
            Workload::Players(a) => &a.common,
        }
    }

    /// Short name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Range(_) => "range",
            Workload::Whole(_) => "whole",
            Workload::Zipf(_) => "zipf",
            Workload::Cold(_) => "cold",
            Workload::Players(_) => "players",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Size of each range: 4KiB, 64KiB, 1MiB, …
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// Offsets are multiples of --size.
    #[arg(long)]
    pub aligned: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WholeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ZipfArgs {
    /// Number of distinct objects. At most the number of targets, they are the
    /// first N targets; more, and target i % T is requested with the query
    /// `kf-obj=i` (a distinct cache key for the same bytes).
    #[arg(long)]
    pub objects: Option<usize>,
    /// Zipf exponent: the object of popularity rank k is requested with weight 1/k^S.
    #[arg(long, default_value_t = 1.0)]
    pub exponent: f64,
    /// Request ranges of this size at random offsets instead of whole objects.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ColdArgs {
    /// Request ranges of this size at random offsets instead of whole objects.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PlayersArgs {
    /// Media bit rate each player consumes: 5Mbps, 800kbps, …
    #[arg(long, value_parser = parse_bitrate, default_value = "5Mbps")]
    pub bitrate: u64,
    /// Number of players (with --ramp, the most tried).
    #[arg(long, default_value_t = 16)]
    pub players: usize,
    /// Size of each range a player requests.
    #[arg(long, value_parser = parse_size, default_value = "1MiB")]
    pub chunk: u64,
    /// Playout buffer: a player stops fetching while this much media is buffered.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub buffer: Duration,
    /// Media buffered before playback starts (and resumes after a stall or seek).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub start_buffer: Duration,
    /// Mean time between seeks (exponentially distributed); 0 for none.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub seek_interval: Duration,
    /// Find the most players served without rebuffering: steps of --duration
    /// from --ramp-start players, doubling up to --players, stopping at the
    /// first step with a rebuffer.
    #[arg(long)]
    pub ramp: bool,
    /// Players in the first ramp step.
    #[arg(long, default_value_t = 1)]
    pub ramp_start: usize,
    /// Adaptive-bitrate players of the HLS ladder whose multivariant playlist is
    /// at URL (instead of --url): throughput-driven rendition choice per segment,
    /// separate audio, startup, rebuffering, bit rate and switches. --buffer,
    /// --start-buffer and --ramp apply; --bitrate, --chunk and --seek-interval do not.
    #[arg(long, value_name = "URL")]
    pub abr: Option<String>,
    /// Bandwidth caps of the ABR players, given round-robin (player i gets cap i
    /// mod n): `2Mbps,800kbps,none`.
    #[arg(long, value_delimiter = ',', value_parser = parse_cap, requires = "abr")]
    pub abr_caps: Vec<Cap>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A player's bandwidth cap in bits per second (`none`: uncapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub Option<u64>);

/// Parses a bit rate, or `none`.
pub fn parse_cap(s: &str) -> Result<Cap, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Cap(None));
    }
    parse_bitrate(s)
        .map(|b| Cap(Some(b)))
        .map_err(|e| e.to_string())
}

/// Options shared by every workload.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Object URL (repeat for a set of objects). With --manifest: the base URL
    /// the manifest's paths are appended to. Required, except for `players --abr`.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// JSON lines as printed by `keyframe ingest --json` (`path`, `size`,
    /// `sha256` per line): the objects to request, under the base --url.
    /// Whole-object responses are checked against `sha256`; range responses
    /// for status, length and Content-Range.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Directory of the served files, named as the last segment of each URL
    /// path: sampled responses are compared with them byte for byte.
    #[arg(long)]
    pub verify_dir: Option<PathBuf>,
    /// Fraction of responses checked byte for byte (the first response of every
    /// connection is always checked).
    #[arg(long, default_value_t = 0.01)]
    pub verify_sample: f64,
    /// Closed loop: this many connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop (fixed rate): this many requests per second in total, on
    /// --connections connections, whatever the answers take; latency is measured
    /// from each request's intended send time, so stalls are not hidden.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Connections (default: --concurrency). In a closed loop it must equal --concurrency.
    #[arg(long)]
    pub connections: Option<usize>,
    /// A header sent with every request, `Name: value` (repeatable): a session for
    /// signed-in endpoints (`Authorization: Bearer …`, `Cookie: …`), an `Accept`, …
    /// It replaces a header the bench would send (Host, Range).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<Header>,
    /// Open a new connection for every request (default: keep-alive).
    #[arg(long)]
    pub no_keepalive: bool,
    /// Load before measuring starts.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Measured time (per run; per step with `players --ramp`).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Grace after the end for requests still in flight; those still unfinished
    /// count as errors.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Also run the same workload against this server (its scheme, host and
    /// port replace each URL's; with one --url and a path, this URL as is),
    /// interleaved A B A B …, and print medians and B/A ratios.
    #[arg(long)]
    pub compare: Option<String>,
    /// Rounds of A and B with --compare.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of the load generator's runtime (default: all cores).
    /// Under `keyframe` this is also the global `--threads` (the same id and type:
    /// clap hands the value to both).
    #[arg(long)]
    pub threads: Option<u16>,
    /// Seed of the request generators (the same seed gives the same requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The run fails when more than this fraction of requests fail.
    #[arg(long, default_value_t = 0.01)]
    pub max_error_rate: f64,
}
