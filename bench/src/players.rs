//! Simulated video players. Each player has its own connection and reads one
//! object sequentially in `chunk`-sized ranges. Every chunk adds
//! `bytes * 8 / bitrate` seconds of media to its playout buffer, which drains
//! in real time once playing. A player:
//!
//! * starts playing when `start_buffer` of media is buffered (startup time is
//!   measured from its first request);
//! * rebuffers when the buffer runs dry while playing, and resumes once
//!   `start_buffer` is buffered again (the stall counts as rebuffer time);
//! * pauses fetching while a further chunk would overflow `buffer`;
//! * seeks now and then (exponential intervals of mean `seek_interval`) to a
//!   random chunk, emptying its buffer (the wait after a seek is reported
//!   apart, not as rebuffering);
//! * wraps around at the end of the object.
//!
//! `--ramp` runs steps of growing player counts and reports the largest with
//! no rebuffer at all.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use crate::client::{self, Sender};
use crate::load::{settle, Window};
use crate::stats::{median, quantile, Summary, TaskStats};
use crate::targets::{Object, Server};

/// The settings of a players run.
#[derive(Debug)]
pub struct PlayerSpec {
    pub server: Server,
    pub objects: Vec<Object>,
    pub bitrate: u64,
    pub chunk: u64,
    pub buffer: Duration,
    pub start_buffer: Duration,
    pub seek_interval: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    pub verify: bool,
    pub sample_every: u64,
    pub seed: u64,
}

/// What one step (a number of players for `duration`) showed.
#[derive(Debug, Clone, Serialize)]
pub struct PlayersStep {
    pub players: usize,
    /// Players that started playing.
    pub started: usize,
    pub startup_ms_p50: f64,
    pub startup_ms_p90: f64,
    pub startup_ms_max: f64,
    /// Stalls while playing (not counting waits after seeks).
    pub rebuffers: u64,
    /// Stalled time / (played time + stalled time), over all players.
    pub rebuffer_ratio: f64,
    pub players_without_rebuffer: usize,
    pub seeks: u64,
    pub seek_ms_p50: f64,
    /// Mean over players of bytes received * 8 / duration.
    pub achieved_bitrate_bps: f64,
    pub min_achieved_bitrate_bps: f64,
    pub target_bitrate_bps: u64,
}

/// The players section of a report.
#[derive(Debug, Clone, Serialize)]
pub struct PlayersReport {
    /// The last step run (the only one without --ramp).
    #[serde(flatten)]
    pub last: PlayersStep,
    /// Every step, with --ramp.
    pub steps: Vec<PlayersStep>,
    /// The largest player count of a step without any rebuffer (0 if none).
    pub max_players_without_rebuffer: usize,
}

#[derive(Debug, Clone, Copy)]
enum Wait {
    Startup(Instant),
    Stall(Instant),
    Seek(Instant),
}

/// The playout state of one player; pure bookkeeping over instants, so it is
/// tested without a network.
#[derive(Debug, Clone)]
pub struct Playout {
    start_buffer: f64,
    /// Seconds of media buffered as of `last`.
    buffered: f64,
    playing: bool,
    wait: Wait,
    last: Instant,
    pub startup: Option<Duration>,
    pub seek_waits: Vec<Duration>,
    pub rebuffers: u64,
    pub rebuffer_time: f64,
    pub play_time: f64,
    pub seeks: u64,
}

impl Playout {
    pub fn new(now: Instant, start_buffer: Duration) -> Playout {
        Playout {
            start_buffer: start_buffer.as_secs_f64(),
            buffered: 0.0,
            playing: false,
            wait: Wait::Startup(now),
            last: now,
            startup: None,
            seek_waits: Vec::new(),
            rebuffers: 0,
            rebuffer_time: 0.0,
            play_time: 0.0,
            seeks: 0,
        }
    }

    pub fn playing(&self) -> bool {
        self.playing
    }

    /// Media buffered as of the last update.
    pub fn buffered(&self) -> f64 {
        self.buffered
    }

    /// Plays out until `now`; a dry buffer starts a stall when it ran out.
    pub fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        if !self.playing {
            return;
        }
        if self.buffered >= dt {
            self.buffered -= dt;
            self.play_time += dt;
        } else {
            self.play_time += self.buffered;
            let dry = now - Duration::from_secs_f64(dt - self.buffered);
            self.buffered = 0.0;
            self.playing = false;
            self.rebuffers += 1;
            self.wait = Wait::Stall(dry);
        }
    }

    /// A chunk of `media` seconds arrived at `now`.
    pub fn add(&mut self, now: Instant, media: f64) {
        self.advance(now);
        self.buffered += media;
        if !self.playing && self.buffered + 1e-9 >= self.start_buffer {
            self.playing = true;
            match self.wait {
                Wait::Startup(since) => self.startup = Some(now - since),
                Wait::Stall(since) => self.rebuffer_time += (now - since).as_secs_f64(),
                Wait::Seek(since) => self.seek_waits.push(now - since),
            }
        }
    }

    /// A seek at `now`: the buffer is dropped.
    pub fn seek(&mut self, now: Instant) {
        self.advance(now);
        if !self.playing {
            if let Wait::Stall(since) = self.wait {
                self.rebuffer_time += (now - since).as_secs_f64();
            }
        }
        self.buffered = 0.0;
        self.playing = false;
        self.seeks += 1;
        self.wait = Wait::Seek(now);
    }

    /// Closes the books at the end of the run.
    pub fn finish(&mut self, end: Instant) {
        self.advance(end);
        if !self.playing {
            if let Wait::Stall(since) = self.wait {
                self.rebuffer_time += end.saturating_duration_since(since).as_secs_f64();
            }
        }
    }
}

struct Player {
    rng: SmallRng,
    stats: TaskStats,
    playout: Playout,
    object: usize,
    offset: u64,
    bytes: u64,
    n: u64,
    next_seek: Option<Instant>,
}

impl Player {
    fn schedule_seek(&mut self, now: Instant, mean: Duration) {
        self.next_seek = (!mean.is_zero()).then(|| {
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            now + mean.mul_f64(-u.ln()).min(Duration::from_secs(86_400))
        });
    }
}

/// Runs `players` players for `spec.duration`.
pub async fn step(spec: Arc<PlayerSpec>, players: usize) -> (Summary, PlayersStep) {
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
            Err(e) => tracing::warn!(error = %e, "player task failed"),
        }
    }
    let cpu = cpu.await.unwrap_or(f64::NAN);
    let summary = total.summary(spec.duration, cpu);
    let secs = spec.duration.as_secs_f64().max(1e-9);
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let startups: Vec<f64> = done
        .iter()
        .filter_map(|(p, _)| p.startup.as_ref().map(ms))
        .collect();
    let seeks: Vec<f64> = done
        .iter()
        .flat_map(|(p, _)| p.seek_waits.iter().map(ms))
        .collect();
    let rates: Vec<f64> = done.iter().map(|(_, b)| *b as f64 * 8.0 / secs).collect();
    let stalled: f64 = done.iter().map(|(p, _)| p.rebuffer_time).sum();
    let played: f64 = done.iter().map(|(p, _)| p.play_time).sum();
    let report = PlayersStep {
        players,
        started: startups.len(),
        startup_ms_p50: median(&startups).unwrap_or(f64::NAN),
        startup_ms_p90: quantile(&startups, 0.9),
        startup_ms_max: startups.iter().copied().fold(f64::NAN, f64::max),
        rebuffers: done.iter().map(|(p, _)| p.rebuffers).sum(),
        rebuffer_ratio: if stalled + played > 0.0 {
            stalled / (stalled + played)
        } else {
            0.0
        },
        players_without_rebuffer: done
            .iter()
            .filter(|(p, _)| p.rebuffers == 0 && p.startup.is_some())
            .count(),
        seeks: done.iter().map(|(p, _)| p.seeks).sum(),
        seek_ms_p50: median(&seeks).unwrap_or(f64::NAN),
        achieved_bitrate_bps: rates.iter().sum::<f64>() / rates.len().max(1) as f64,
        min_achieved_bitrate_bps: rates.iter().copied().fold(f64::NAN, f64::min),
        target_bitrate_bps: spec.bitrate,
    };
    (summary, report)
}

async fn player(spec: Arc<PlayerSpec>, w: Window, id: usize) -> (TaskStats, (Playout, u64)) {
    let mut rng = SmallRng::seed_from_u64(
        spec.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(id as u64),
    );
    let object = rng.random_range(0..spec.objects.len());
    let mut p = Player {
        rng,
        stats: TaskStats::new(w.seconds()),
        playout: Playout::new(w.start, spec.start_buffer),
        object,
        offset: 0,
        bytes: 0,
        n: 0,
        next_seek: None,
    };
    p.schedule_seek(w.start, spec.seek_interval);
    loop {
        let now = Instant::now();
        if now >= w.end {
            break;
        }
        let connected = tokio::time::timeout_at(w.end, client::connect(&spec.server.addr)).await;
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
        // A player's experience ends with the run: whatever is in flight then
        // is simply not delivered in time.
        match tokio::time::timeout_at(w.end, run).await {
            Ok(true) => break,
            Ok(false) => continue,
            Err(_) => break,
        }
    }
    p.playout.finish(w.end);
    (p.stats, (p.playout, p.bytes))
}

/// Plays on one connection; true when the run is over, false to reconnect.
async fn play(spec: &PlayerSpec, w: &Window, p: &mut Player, mut sender: Sender) -> bool {
    let chunk_media = |bytes: u64| bytes as f64 * 8.0 / spec.bitrate as f64;
    let max_buffer = spec.buffer.as_secs_f64();
    loop {
        let now = Instant::now();
        if now >= w.end {
            return true;
        }
        p.playout.advance(now);
        let object = &spec.objects[p.object];
        if p.playout.playing() && p.next_seek.is_some_and(|t| now >= t) {
            let chunks = object.size.div_ceil(spec.chunk).max(1);
            p.offset = p.rng.random_range(0..chunks) * spec.chunk;
            p.playout.seek(now);
            p.schedule_seek(now, spec.seek_interval);
        }
        let want = chunk_media(spec.chunk.min(object.size.saturating_sub(p.offset).max(1)));
        let excess = p.playout.buffered() + want - max_buffer;
        if p.playout.playing() && excess > 0.0 {
            let wake = now + Duration::from_secs_f64(excess);
            tokio::time::sleep_until(wake.min(w.end)).await;
            continue;
        }
        if sender.ready().await.is_err() {
            return false;
        }
        let range = if object.size == 0 {
            None
        } else {
            Some((p.offset, (p.offset + spec.chunk).min(object.size) - 1))
        };
        let keep = (spec.verify && (p.n == 0 || p.n % spec.sample_every == 0))
            .then(|| range.map_or(0, |(s, e)| (e - s + 1) as usize));
        p.n += 1;
        let req = client::request(&spec.server, object.uri.clone(), range, true);
        let sent = Instant::now();
        let result = client::exchange(&mut sender, req, keep).await;
        let done = Instant::now();
        let len = result.as_ref().map(|r| r.len).unwrap_or(0);
        let ok = matches!(&result, Ok(r) if r.status.is_success());
        let errors = p.stats.errors;
        let reusable = settle(
            &mut p.stats,
            object,
            range,
            result,
            done - sent,
            w.at(sent)
                .map(|_| done.saturating_duration_since(w.measure)),
        );
        if ok && p.stats.errors == errors {
            p.bytes += len;
            p.playout.add(done, chunk_media(len));
            p.offset = range.map_or(0, |(_, e)| e + 1);
            if p.offset >= object.size {
                p.offset = 0;
            }
        }
        if !reusable {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn startup_stall_and_resume() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, secs(2.0));
        p.add(t0 + secs(0.5), 1.0);
        assert!(!p.playing());
        p.add(t0 + secs(1.0), 1.0);
        assert!(p.playing());
        assert_eq!(p.startup, Some(secs(1.0)));
        // 2 s of media; the next chunk arrives 3 s later: dry at t0+3, stall 1 s…
        p.add(t0 + secs(4.0), 1.0);
        assert_eq!(p.rebuffers, 1);
        assert!(!p.playing());
        p.add(t0 + secs(4.5), 1.0);
        assert!(p.playing());
        assert!((p.rebuffer_time - 1.5).abs() < 1e-6, "{}", p.rebuffer_time);
        assert!((p.play_time - 2.0).abs() < 1e-6, "{}", p.play_time);
        p.finish(t0 + secs(5.5));
        assert!((p.play_time - 3.0).abs() < 1e-6);
        assert_eq!(p.rebuffers, 1);
    }

    #[test]
    fn seeks_are_not_rebuffers() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, secs(1.0));
        p.add(t0 + secs(0.1), 5.0);
        p.seek(t0 + secs(1.0));
        assert!(!p.playing());
        p.add(t0 + secs(1.3), 1.0);
        assert_eq!(p.seek_waits, vec![secs(0.3)]);
        assert_eq!(p.rebuffers, 0);
        assert_eq!(p.seeks, 1);
        assert!((p.buffered() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_stall_at_the_end_is_counted() {
        let t0 = Instant::now();
        let mut p = Playout::new(t0, secs(1.0));
        p.add(t0, 1.0);
        p.finish(t0 + secs(3.0));
        assert_eq!(p.rebuffers, 1);
        assert!((p.rebuffer_time - 2.0).abs() < 1e-6);
    }
}
