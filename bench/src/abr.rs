//! Adaptive-bitrate players (`keyframe bench players --abr URL`): simulated
//! players of an HLS ladder, as hls.js plays one. The bench first reads the
//! multivariant playlist and every media playlist ([`crate::hls`]); then each
//! player, on a connection of its own:
//!
//! * fetches the multivariant playlist, each media playlist the first time it
//!   plays that rendition, each init section once, then segments in order
//!   (video, and the audio rendition's segments beside it, so the playable
//!   buffer is the shorter of the two), wrapping around at the end;
//! * chooses the video rendition of every segment from its throughput estimate
//!   ([`Estimator`], [`choose`]);
//! * plays out through the same [`Playout`] as the progressive players: startup
//!   once `--start-buffer` of media is buffered (measured from its first
//!   request, manifests included), a stall when the buffer runs dry, no fetching
//!   while `--buffer` is full;
//! * reads no faster than its bandwidth cap (`--abr-caps`, round-robin over the
//!   players), a token bucket on the reading side ([`client::Pace`]).
//!
//! Reported per run: startup (p50/p95/max), rebuffer ratio, the average bit rate
//! played (the renditions' `AVERAGE-BANDWIDTH`, weighted by the media seconds
//! fetched of each) and rendition switches, overall and per player.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use http::Uri;
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use crate::args::PlayersArgs;
use crate::client::{self, Pace, Sender};
use crate::hls::{self, MediaPlaylist};
use crate::load::{settle, Window};
use crate::players::Playout;
use crate::report::RunReport;
use crate::stats::{median, quantile, Summary, TaskStats};
use crate::targets::{self, Expected, Object, Server};

/// Half-lives, in seconds of download time, of the two throughput averages
/// (hls.js's `abrEwmaFastVoD` and `abrEwmaSlowVoD`); the estimate is the lower.
pub const FAST_HALF_LIFE: f64 = 3.0;
pub const SLOW_HALF_LIFE: f64 = 9.0;
/// The estimate before the first segment (hls.js's `abrEwmaDefaultEstimate`).
pub const DEFAULT_ESTIMATE_BPS: f64 = 500_000.0;
/// The share of the estimate a rendition may use to stay or go down
/// (`abrBandWidthFactor`) and to go up (`abrBandWidthUpFactor`).
pub const STAY_FACTOR: f64 = 0.95;
pub const UP_FACTOR: f64 = 0.7;
/// The burst of a bandwidth cap's token bucket: small, so that a small first
/// segment does not look like a fast link.
pub const CAP_BURST: u64 = 16 << 10;

/// An exponentially weighted moving average whose samples weigh their duration.
#[derive(Debug, Clone)]
struct Ewma {
    /// The weight left to the past after one second.
    alpha: f64,
    estimate: f64,
    weight: f64,
}

impl Ewma {
    fn new(half_life: f64) -> Ewma {
        Ewma {
            alpha: (0.5f64.ln() / half_life).exp(),
            estimate: 0.0,
            weight: 0.0,
        }
    }

    fn sample(&mut self, weight: f64, value: f64) {
        let a = self.alpha.powf(weight);
        self.estimate = value * (1.0 - a) + a * self.estimate;
        self.weight += weight;
    }

    /// The average, corrected for its start at zero.
    fn get(&self) -> f64 {
        let filled = 1.0 - self.alpha.powf(self.weight);
        if filled > 0.0 {
            self.estimate / filled
        } else {
            self.estimate
        }
    }
}

/// A player's throughput estimate from its segment downloads.
#[derive(Debug, Clone)]
pub struct Estimator {
    fast: Ewma,
    slow: Ewma,
}

impl Default for Estimator {
    fn default() -> Estimator {
        Estimator {
            fast: Ewma::new(FAST_HALF_LIFE),
            slow: Ewma::new(SLOW_HALF_LIFE),
        }
    }
}

impl Estimator {
    /// A segment of `bytes` took `elapsed` from request to last byte.
    pub fn sample(&mut self, elapsed: Duration, bytes: u64) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let bps = bytes as f64 * 8.0 / secs;
        self.fast.sample(secs, bps);
        self.slow.sample(secs, bps);
    }

    /// Bits per second.
    pub fn estimate(&self) -> f64 {
        if self.fast.weight < 1e-3 {
            DEFAULT_ESTIMATE_BPS
        } else {
            self.fast.get().min(self.slow.get())
        }
    }
}

/// The rendition of the next segment, from `bandwidths` (ascending): the highest
/// whose `BANDWIDTH` is at most the estimate times [`STAY_FACTOR`] (at or below
/// `current`) or [`UP_FACTOR`] (above it); the lowest when none fits.
pub fn choose(bandwidths: &[u64], estimate_bps: f64, current: Option<usize>) -> usize {
    let mut best = 0;
    for (i, &bw) in bandwidths.iter().enumerate() {
        let factor = if current.is_some_and(|c| i > c) {
            UP_FACTOR
        } else {
            STAY_FACTOR
        };
        if bw as f64 <= estimate_bps * factor {
            best = i;
        }
    }
    best
}

/// One request of a player: an object, whole or a range of it.
#[derive(Debug, Clone)]
struct Fetch {
    object: Object,
    range: Option<(u64, u64)>,
}

/// One rendition's requests: its playlist, init section and segments.
#[derive(Debug, Clone)]
struct Track {
    playlist: Fetch,
    init: Option<Fetch>,
    segments: Vec<(Fetch, f64)>,
}

/// A rendition as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Rendition {
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    pub segments: usize,
    pub seconds: f64,
    /// The size of its media playlist as served (tokens an edge wrote in included).
    pub playlist_bytes: u64,
}

/// The ladder as the bench read it.
#[derive(Debug, Clone)]
pub struct Ladder {
    server: Server,
    manifest: Fetch,
    pub renditions: Vec<Rendition>,
    video: Vec<Track>,
    audio: Option<Track>,
}

/// Whether `u` is on the server the run connects to.
fn same_server(base: &Url, u: &Url) -> bool {
    u.scheme() == base.scheme()
        && u.host_str() == base.host_str()
        && u.port_or_known_default() == base.port_or_known_default()
}

fn fetch_of(base: &Url, u: &Url, range: Option<(u64, u64)>) -> anyhow::Result<Fetch> {
    if !same_server(base, u) {
        bail!("{u}: on another server than {base} (a player here has one connection)");
    }
    let target = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    Ok(Fetch {
        object: Object {
            uri: Uri::try_from(target.as_str()).with_context(|| format!("{u}"))?,
            path: u.path().to_owned(),
            size: 0,
            expected: Expected::Unknown,
        },
        range,
    })
}

/// GETs a whole playlist; its length becomes the size later answers are checked against.
async fn get_text(
    sender: &mut Sender,
    server: &Server,
    base: &Url,
    u: &Url,
) -> anyhow::Result<(Fetch, String)> {
    let mut fetch = fetch_of(base, u, None)?;
    sender.ready().await.context("connection closed")?;
    let req = client::request(server, fetch.object.uri.clone(), None, true);
    let resp = client::exchange(sender, req, Some(64 << 10))
        .await
        .map_err(|f| anyhow::anyhow!("{u}: {} failed", f.kind()))?;
    let body = resp.body.unwrap_or_default();
    if resp.status != http::StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        bail!("{u}: status {}: {}", resp.status.as_u16(), text.trim());
    }
    fetch.object.size = body.len() as u64;
    let text = String::from_utf8(body).with_context(|| format!("{u}: not UTF-8 text"))?;
    Ok((fetch, text))
}

async fn track(
    sender: &mut Sender,
    server: &Server,
    base: &Url,
    u: &Url,
) -> anyhow::Result<(Track, MediaPlaylist)> {
    let (playlist, text) = get_text(sender, server, base, u).await?;
    let media = hls::parse_media(&text, u).with_context(|| format!("{u}"))?;
    let init = media
        .init
        .as_ref()
        .map(|i| fetch_of(base, &i.uri, i.range))
        .transpose()?;
    let segments = media
        .segments
        .iter()
        .map(|s| Ok((fetch_of(base, &s.part.uri, s.part.range)?, s.duration)))
        .collect::<anyhow::Result<_>>()?;
    Ok((
        Track {
            playlist,
            init,
            segments,
        },
        media,
    ))
}

impl Ladder {
    /// Reads the multivariant playlist at `url` and every media playlist it names.
    pub async fn load(url: &str, headers: &[crate::args::Header]) -> anyhow::Result<Ladder> {
        let base = targets::parse_url(url)?;
        let mut server = targets::server_of(&base)?;
        server.headers = headers.to_vec();
        let (mut sender, conn) = client::connect(&server.addr)
            .await
            .with_context(|| format!("connecting to {}", server.base))?;
        let driver = tokio::spawn(conn);
        let (manifest, text) = get_text(&mut sender, &server, &base, &base).await?;
        let mv = hls::parse_multivariant(&text, &base).with_context(|| url.to_owned())?;
        let mut video = Vec::new();
        let mut renditions = Vec::new();
        for v in &mv.variants {
            let (t, media) = track(&mut sender, &server, &base, &v.uri).await?;
            renditions.push(Rendition {
                bandwidth: v.bandwidth,
                average_bandwidth: v.average_bandwidth.unwrap_or(v.bandwidth),
                resolution: v.resolution.map(|(w, h)| format!("{w}x{h}")),
                segments: media.segments.len(),
                seconds: media.segments.iter().map(|s| s.duration).sum(),
                playlist_bytes: t.playlist.object.size,
            });
            video.push(t);
        }
        let audio = match mv.variants.last().and_then(|v| mv.audio_of(v)) {
            Some(u) => Some(track(&mut sender, &server, &base, u).await?.0),
            None => None,
        };
        drop(sender);
        driver.abort();
        Ok(Ladder {
            server,
            manifest,
            renditions,
            video,
            audio,
        })
    }

    fn bandwidths(&self) -> Vec<u64> {
        self.renditions.iter().map(|r| r.bandwidth).collect()
    }
}

/// The settings of an ABR run.
#[derive(Debug)]
pub struct AbrSpec {
    pub ladder: Ladder,
    /// Bits per second per player, round-robin; empty or `None`: uncapped.
    pub caps: Vec<Option<u64>>,
    pub buffer: Duration,
    pub start_buffer: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

/// One player's experience.
#[derive(Debug, Clone, Serialize)]
pub struct AbrPlayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<f64>,
    pub rebuffers: u64,
    pub rebuffer_s: f64,
    pub played_s: f64,
    /// Mean `AVERAGE-BANDWIDTH` of the video fetched, weighted by its seconds.
    pub avg_bitrate_bps: f64,
    /// Bytes received * 8 / run duration.
    pub received_bps: f64,
    pub switches: u64,
    /// Seconds of video fetched from each rendition (ascending bandwidth).
    pub media_s: Vec<f64>,
}

/// What one step (a number of ABR players for `--duration`) showed.
#[derive(Debug, Clone, Serialize)]
pub struct AbrStep {
    pub players: usize,
    pub started: usize,
    pub startup_ms_p50: f64,
    pub startup_ms_p95: f64,
    pub startup_ms_max: f64,
    pub rebuffers: u64,
    /// Stalled time / (played + stalled time), over all players.
    pub rebuffer_ratio: f64,
    pub players_without_rebuffer: usize,
    /// Mean over players of their average bit rate.
    pub avg_bitrate_bps: f64,
    pub min_avg_bitrate_bps: f64,
    pub switches: u64,
    pub switches_per_player: f64,
    pub max_switches: u64,
    pub per_player: Vec<AbrPlayer>,
}

/// The ABR section of a report.
#[derive(Debug, Clone, Serialize)]
pub struct AbrReport {
    pub manifest: String,
    pub renditions: Vec<Rendition>,
    pub separate_audio: bool,
    /// The last step run (the only one without --ramp).
    #[serde(flatten)]
    pub last: AbrStep,
    /// Every step, with --ramp.
    pub steps: Vec<AbrStep>,
    pub max_players_without_rebuffer: usize,
}

/// The state of one simulated player.
struct Player {
    stats: TaskStats,
    playout: Playout,
    estimator: Estimator,
    pace: Option<Pace>,
    cap: Option<u64>,
    manifest: bool,
    playlists: Vec<bool>,
    inits: Vec<bool>,
    audio_playlist: bool,
    audio_init: bool,
    /// The rendition of the last video segment, and the one chosen for the next.
    level: Option<usize>,
    target: Option<usize>,
    switches: u64,
    video_next: usize,
    audio_next: usize,
    /// Media time fetched, per track, and credited to the playout buffer.
    video_end: f64,
    audio_end: f64,
    credited: f64,
    media_s: Vec<f64>,
    bytes: u64,
}

impl Player {
    /// Credits the playout buffer with what both tracks now hold.
    fn credit(&mut self, now: Instant, audio: bool) {
        let end = if audio {
            self.video_end.min(self.audio_end)
        } else {
            self.video_end
        };
        if end > self.credited {
            self.playout.add(now, end - self.credited);
            self.credited = end;
        }
    }
}

/// What a request came to.
enum Got {
    Ok(u64, Duration, Instant),
    /// An error answer; the connection stays.
    Failed,
    /// The connection is gone.
    Reconnect,
}

async fn get(spec: &AbrSpec, w: &Window, p: &mut Player, sender: &mut Sender, f: &Fetch) -> Got {
    if sender.ready().await.is_err() {
        return Got::Reconnect;
    }
    let req = client::request(&spec.ladder.server, f.object.uri.clone(), f.range, true);
    let sent = Instant::now();
    let result = client::exchange_paced(sender, req, None, p.pace.as_mut()).await;
    let done = Instant::now();
    let len = result.as_ref().map(|r| r.len).unwrap_or(0);
    let ok = matches!(&result, Ok(r) if r.status.is_success());
    let errors = p.stats.errors;
    let at = w
        .at(sent)
        .map(|_| done.saturating_duration_since(w.measure));
    if !settle(&mut p.stats, &f.object, f.range, result, done - sent, at) {
        return Got::Reconnect;
    }
    if ok && p.stats.errors == errors {
        p.bytes += len;
        Got::Ok(len, done - sent, done)
    } else {
        Got::Failed
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy)]
enum What {
    Manifest,
    AudioPlaylist,
    AudioInit,
    /// Seconds.
    AudioSegment(f64),
    VideoPlaylist(usize),
    VideoInit(usize),
    /// Rendition, seconds.
    VideoSegment(usize, f64),
}

/// The next request of `p`.
fn next<'a>(ladder: &'a Ladder, bandwidths: &[u64], p: &mut Player) -> (&'a Fetch, What) {
    if !p.manifest {
        return (&ladder.manifest, What::Manifest);
    }
    if let Some(audio) = ladder.audio.as_ref().filter(|_| p.audio_end < p.video_end) {
        return match (&audio.init, p.audio_playlist, p.audio_init) {
            (_, false, _) => (&audio.playlist, What::AudioPlaylist),
            (Some(init), true, false) => (init, What::AudioInit),
            _ => {
                let (seg, secs) = &audio.segments[p.audio_next % audio.segments.len()];
                (seg, What::AudioSegment(*secs))
            }
        };
    }
    let level = *p
        .target
        .get_or_insert_with(|| choose(bandwidths, p.estimator.estimate(), p.level));
    let track = &ladder.video[level];
    match (&track.init, p.playlists[level], p.inits[level]) {
        (_, false, _) => (&track.playlist, What::VideoPlaylist(level)),
        (Some(init), true, false) => (init, What::VideoInit(level)),
        _ => {
            let (seg, secs) = &track.segments[p.video_next % track.segments.len()];
            (seg, What::VideoSegment(level, *secs))
        }
    }
}

impl Player {
    /// Notes that the request for `what` was answered.
    fn got(&mut self, ladder: &Ladder, what: What) {
        match what {
            What::Manifest => self.manifest = true,
            What::AudioPlaylist => self.audio_playlist = true,
            What::AudioInit => self.audio_init = true,
            What::AudioSegment(secs) => {
                self.audio_end += secs;
                let n = ladder.audio.as_ref().map_or(1, |a| a.segments.len());
                self.audio_next = (self.audio_next + 1) % n;
            }
            What::VideoPlaylist(level) => self.playlists[level] = true,
            What::VideoInit(level) => self.inits[level] = true,
            What::VideoSegment(level, secs) => {
                if self.level.is_some_and(|l| l != level) {
                    self.switches += 1;
                }
                self.level = Some(level);
                self.target = None;
                self.video_end += secs;
                self.media_s[level] += secs;
                self.video_next = (self.video_next + 1) % ladder.video[level].segments.len();
            }
        }
    }
}

/// Plays on one connection; true when the run is over, false to reconnect.
async fn play(spec: &AbrSpec, w: &Window, p: &mut Player, mut sender: Sender) -> bool {
    let ladder = &spec.ladder;
    let bandwidths = ladder.bandwidths();
    let max_buffer = spec.buffer.as_secs_f64();
    loop {
        let now = Instant::now();
        if now >= w.end {
            return true;
        }
        p.playout.advance(now);
        let (fetch, what) = next(ladder, &bandwidths, p);
        let segment = match what {
            What::AudioSegment(secs) | What::VideoSegment(_, secs) => Some(secs),
            _ => None,
        };
        if let Some(secs) = segment.filter(|_| p.playout.playing()) {
            // A full buffer: wait until this segment fits.
            let excess = p.playout.buffered() + secs - max_buffer;
            if excess > 0.0 {
                let wake = now + Duration::from_secs_f64(excess);
                tokio::time::sleep_until(wake.min(w.end)).await;
                continue;
            }
        }
        match get(spec, w, p, &mut sender, fetch).await {
            Got::Ok(len, elapsed, at) => {
                p.got(ladder, what);
                if segment.is_some() {
                    p.estimator.sample(elapsed, len);
                    p.credit(at, ladder.audio.is_some());
                }
            }
            Got::Failed => {
                // An error answer (a 401, a 5xx): try again shortly, not in a hot loop.
                let wake = now + Duration::from_millis(50);
                tokio::time::sleep_until(wake.min(w.end)).await;
            }
            Got::Reconnect => return false,
        }
    }
}

async fn player(spec: Arc<AbrSpec>, w: Window, id: usize) -> (TaskStats, AbrPlayer) {
    let levels = spec.ladder.video.len();
    let cap = spec
        .caps
        .get(id % spec.caps.len().max(1))
        .copied()
        .flatten();
    let mut p = Player {
        stats: TaskStats::new(w.seconds()),
        playout: Playout::new(w.start, spec.start_buffer),
        estimator: Estimator::default(),
        pace: cap.map(|c| Pace::new(c, CAP_BURST, w.start)),
        cap,
        manifest: false,
        playlists: vec![false; levels],
        inits: vec![false; levels],
        audio_playlist: false,
        audio_init: false,
        level: None,
        target: None,
        switches: 0,
        video_next: 0,
        audio_next: 0,
        video_end: 0.0,
        audio_end: 0.0,
        credited: 0.0,
        media_s: vec![0.0; levels],
        bytes: 0,
    };
    loop {
        let now = Instant::now();
        if now >= w.end {
            break;
        }
        let connected =
            tokio::time::timeout_at(w.end, client::connect(&spec.ladder.server.addr)).await;
        let (sender, conn) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(_)) => {
                p.stats.error("connect", now - w.measure);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => break,
        };
        let run = async { tokio::join!(conn, play(&spec, &w, &mut p, sender)).1 };
        // What is in flight at the end is not delivered in time.
        match tokio::time::timeout_at(w.end, run).await {
            Ok(false) => continue,
            Ok(true) | Err(_) => break,
        }
    }
    p.playout.finish(w.end);
    let secs = (w.end - w.measure).as_secs_f64().max(1e-9);
    let fetched: f64 = p.media_s.iter().sum();
    let weighted: f64 = p
        .media_s
        .iter()
        .zip(&spec.ladder.renditions)
        .map(|(s, r)| s * r.average_bandwidth as f64)
        .sum();
    let report = AbrPlayer {
        cap_bps: p.cap,
        startup_ms: p.playout.startup.map(|d| d.as_secs_f64() * 1e3),
        rebuffers: p.playout.rebuffers,
        rebuffer_s: p.playout.rebuffer_time,
        played_s: p.playout.play_time,
        avg_bitrate_bps: if fetched > 0.0 {
            weighted / fetched
        } else {
            f64::NAN
        },
        received_bps: p.bytes as f64 * 8.0 / secs,
        switches: p.switches,
        media_s: p.media_s,
    };
    (p.stats, report)
}

/// Sums up the players of a step.
pub fn summarize(players: Vec<AbrPlayer>) -> AbrStep {
    let startups: Vec<f64> = players.iter().filter_map(|p| p.startup_ms).collect();
    let stalled: f64 = players.iter().map(|p| p.rebuffer_s).sum();
    let played: f64 = players.iter().map(|p| p.played_s).sum();
    let rates: Vec<f64> = players
        .iter()
        .map(|p| p.avg_bitrate_bps)
        .filter(|r| r.is_finite())
        .collect();
    let switches: u64 = players.iter().map(|p| p.switches).sum();
    AbrStep {
        players: players.len(),
        started: startups.len(),
        startup_ms_p50: median(&startups).unwrap_or(f64::NAN),
        startup_ms_p95: quantile(&startups, 0.95),
        startup_ms_max: startups.iter().copied().fold(f64::NAN, f64::max),
        rebuffers: players.iter().map(|p| p.rebuffers).sum(),
        rebuffer_ratio: if stalled + played > 0.0 {
            stalled / (stalled + played)
        } else {
            0.0
        },
        players_without_rebuffer: players
            .iter()
            .filter(|p| p.rebuffers == 0 && p.startup_ms.is_some())
            .count(),
        avg_bitrate_bps: if rates.is_empty() {
            f64::NAN
        } else {
            rates.iter().sum::<f64>() / rates.len() as f64
        },
        min_avg_bitrate_bps: rates.iter().copied().fold(f64::NAN, f64::min),
        switches,
        switches_per_player: switches as f64 / players.len().max(1) as f64,
        max_switches: players.iter().map(|p| p.switches).max().unwrap_or(0),
        per_player: players,
    }
}

/// Runs `players` ABR players for `spec.duration`.
pub async fn step(spec: Arc<AbrSpec>, players: usize) -> (Summary, AbrStep) {
    let w = Window::new(Duration::ZERO, spec.duration, spec.timeout);
    let cpu = tokio::spawn(crate::load::cpu_between(w.measure, w.end));
    let tasks: Vec<_> = (0..players)
        .map(|id| tokio::spawn(player(Arc::clone(&spec), w, id)))
        .collect();
    let mut total = TaskStats::new(w.seconds());
    let mut done = Vec::new();
    for task in tasks {
        match task.await {
            Ok((stats, p)) => {
                total.merge(&stats);
                done.push(p);
            }
            Err(e) => tracing::warn!(error = %e, "ABR player task failed"),
        }
    }
    let cpu = cpu.await.unwrap_or(f64::NAN);
    (total.summary(spec.duration, cpu), summarize(done))
}

/// `keyframe bench players --abr URL`: one step, or a ramp.
pub async fn run(args: &PlayersArgs, url: &str) -> anyhow::Result<RunReport> {
    let c = &args.common;
    let ladder = Ladder::load(url, &c.headers).await?;
    let spec = Arc::new(AbrSpec {
        ladder,
        caps: args.abr_caps.iter().map(|c| c.0).collect(),
        buffer: args.buffer,
        start_buffer: args.start_buffer,
        duration: c.duration,
        timeout: c.timeout,
    });
    let counts = if args.ramp {
        crate::ramp_steps(args.ramp_start, args.players)
    } else {
        vec![args.players]
    };
    let mut steps = Vec::new();
    let mut last = None;
    let mut best = 0;
    for n in counts {
        let (summary, step) = step(Arc::clone(&spec), n).await;
        let clean = step.rebuffers == 0 && step.started == n && summary.verify_failures == 0;
        if args.ramp {
            eprintln!(
                "abr players {n}: {} rebuffers, startup p50 {:.0} ms, {:.2} Mbps average, {:.1} switches each",
                step.rebuffers,
                step.startup_ms_p50,
                step.avg_bitrate_bps / 1e6,
                step.switches_per_player
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
    let summary = last.context("no ABR step ran")?;
    let last_step = steps.last().cloned().context("no ABR step ran")?;
    let caps = if spec.caps.iter().any(Option::is_some) {
        let caps: Vec<String> = spec
            .caps
            .iter()
            .map(|c| c.map_or("none".into(), |b| format!("{:.2} Mbps", b as f64 / 1e6)))
            .collect();
        format!(", caps {}", caps.join("/"))
    } else {
        String::new()
    };
    Ok(RunReport {
        target: spec.ladder.server.base.clone(),
        workload: format!(
            "abr players over {} renditions{}",
            spec.ladder.renditions.len(),
            if spec.ladder.audio.is_some() {
                " + audio"
            } else {
                ""
            }
        ),
        load: format!("{} players, one connection each{caps}", last_step.players),
        summary,
        players: None,
        abr: Some(AbrReport {
            manifest: url.to_owned(),
            renditions: spec.ladder.renditions.clone(),
            separate_audio: spec.ladder.audio.is_some(),
            last: last_step,
            steps: if args.ramp { steps } else { Vec::new() },
            max_players_without_rebuffer: best,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [u64; 3] = [400_000, 1_100_000, 3_000_000];

    #[test]
    fn the_first_choice_follows_the_default_estimate() {
        assert_eq!(Estimator::default().estimate(), DEFAULT_ESTIMATE_BPS);
        // 500 kbps × 0.95 holds 400 kbps, not 1.1 Mbps.
        assert_eq!(choose(&LADDER, DEFAULT_ESTIMATE_BPS, None), 0);
        // Nothing fits: the lowest.
        assert_eq!(choose(&LADDER, 100_000.0, Some(2)), 0);
        assert_eq!(choose(&LADDER, 1e12, None), 2);
    }

    #[test]
    fn going_up_needs_more_headroom_than_staying() {
        // 1.5 Mbps: 1.1 Mbps is 73% of it — above the 70% needed to go up, within
        // the 95% to stay.
        assert_eq!(choose(&LADDER, 1_500_000.0, Some(0)), 0);
        assert_eq!(choose(&LADDER, 1_500_000.0, Some(1)), 1);
        assert_eq!(choose(&LADDER, 1_500_000.0, Some(2)), 1);
        assert_eq!(choose(&LADDER, 1_600_000.0, Some(0)), 1);
        // Down as soon as the estimate falls below a rung / 0.95.
        assert_eq!(choose(&LADDER, 3_100_000.0, Some(2)), 1);
        assert_eq!(choose(&LADDER, 3_200_000.0, Some(2)), 2);
    }

    #[test]
    fn the_estimate_is_the_lower_of_a_fast_and_a_slow_average() {
        let mut e = Estimator::default();
        // 1 s downloads of 1 MB: 8 Mbps.
        for _ in 0..10 {
            e.sample(Duration::from_secs(1), 1_000_000);
        }
        assert!((e.estimate() - 8e6).abs() < 1.0, "{}", e.estimate());
        // The throughput drops to 1 Mbps: one 2 s sample moves the fast average
        // most of the way (half-life 3 s), and the estimate (the lower) with it.
        e.sample(Duration::from_secs(2), 250_000);
        let after_one = e.estimate();
        assert!(after_one < 5.5e6 && after_one > 5e6, "{after_one}");
        for _ in 0..5 {
            e.sample(Duration::from_secs(2), 250_000);
        }
        // 12 s at 1 Mbps: 1.4 Mbps, down to the middle rung.
        assert!((e.estimate() - 1.4e6).abs() < 0.05e6, "{}", e.estimate());
        assert_eq!(choose(&LADDER, e.estimate(), Some(2)), 1);
        // One fast segment does not bring the top rung back.
        e.sample(Duration::from_secs(1), 1_000_000);
        assert!(e.estimate() < 3e6, "{}", e.estimate());
        assert_eq!(choose(&LADDER, e.estimate(), Some(1)), 1);
    }

    #[test]
    fn a_step_sums_its_players() {
        let player = |startup: Option<f64>, rebuffers, stall, bitrate, switches| AbrPlayer {
            cap_bps: None,
            startup_ms: startup,
            rebuffers,
            rebuffer_s: stall,
            played_s: 9.0,
            avg_bitrate_bps: bitrate,
            received_bps: 0.0,
            switches,
            media_s: vec![],
        };
        let s = summarize(vec![
            player(Some(100.0), 0, 0.0, 1e6, 1),
            player(Some(300.0), 2, 1.0, 3e6, 3),
            player(None, 0, 0.0, f64::NAN, 0),
        ]);
        assert_eq!(s.players, 3);
        assert_eq!(s.started, 2);
        assert_eq!(s.startup_ms_p50, 200.0);
        assert_eq!(s.startup_ms_max, 300.0);
        assert_eq!(s.rebuffers, 2);
        assert!((s.rebuffer_ratio - 1.0 / 28.0).abs() < 1e-9);
        assert_eq!(s.players_without_rebuffer, 1);
        assert_eq!(s.avg_bitrate_bps, 2e6);
        assert_eq!(s.min_avg_bitrate_bps, 1e6);
        assert_eq!(s.switches, 4);
        assert!((s.switches_per_player - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.max_switches, 3);
    }
}
