//! The load loops. Each connection is one task that owns its hyper connection
//! (driven in the same task), its RNG and its [`TaskStats`]; nothing is shared
//! on the hot path and the stats are merged when the run ends.
//!
//! * Closed loop: every connection sends its next request when the previous
//!   one completes; latency is from send to last body byte.
//! * Open loop: each of C connections sends on a fixed schedule of rate/C per
//!   second; latency is from the *intended* send time, so a stall delays the
//!   schedule and shows in the latencies (no coordinated omission). Requests
//!   scheduled before the end but never sent are reported as `unsent`.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::client::{self, Failure, Response, Sender};
use crate::stats::{process_cpu_seconds, Summary, TaskStats};
use crate::targets::{Object, Server};
use crate::verify;
use crate::workload::Plan;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    Closed { connections: usize },
    Open { connections: usize, rate: f64 },
}

impl Model {
    pub fn connections(&self) -> usize {
        match *self {
            Model::Closed { connections } | Model::Open { connections, .. } => connections,
        }
    }
}

/// Everything one run needs; shared read-only by its tasks.
#[derive(Debug)]
pub struct Spec {
    pub server: Server,
    pub objects: Vec<Object>,
    pub sizes: Vec<u64>,
    pub plan: Plan,
    /// Every request gets a unique query (a new cache key).
    pub cold: bool,
    pub model: Model,
    pub keepalive: bool,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// Sampled responses are checked byte for byte.
    pub verify: bool,
    /// One response in this many is sampled (and the first of each task).
    pub sample_every: u64,
    pub seed: u64,
}

/// The time line of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    /// Measuring starts here (after the warm-up).
    pub measure: Instant,
    pub end: Instant,
    /// Requests still in flight here are given up as timeouts.
    pub hard: Instant,
}

impl Window {
    pub fn new(warmup: Duration, duration: Duration, timeout: Duration) -> Window {
        let start = Instant::now();
        let measure = start + warmup;
        let end = measure + duration;
        Window {
            start,
            measure,
            end,
            hard: end + timeout,
        }
    }

    /// Offset into the measured window, or `None` before it.
    pub fn at(&self, t: Instant) -> Option<Duration> {
        (t >= self.measure).then(|| t - self.measure)
    }

    pub fn seconds(&self) -> usize {
        (self.end - self.measure).as_secs_f64().ceil() as usize + 1
    }
}

/// Accounts one exchange: errors, the cheap length check on every response,
/// the full check on sampled ones, and the latency when `at` is in the
/// measured window. Returns whether the connection can be reused.
pub fn settle(
    stats: &mut TaskStats,
    object: &Object,
    range: Option<(u64, u64)>,
    result: Result<Response, Failure>,
    latency: Duration,
    at: Option<Duration>,
) -> bool {
    let resp = match result {
        Ok(resp) => resp,
        Err(failure) => {
            if let Some(at) = at {
                stats.error(failure.kind(), at);
            }
            return false;
        }
    };
    let want = if range.is_some() { 206 } else { 200 };
    if resp.status.as_u16() != want {
        if let Some(at) = at {
            stats.error(&format!("status {}", resp.status.as_u16()), at);
        }
        return true;
    }
    let checked = match &resp.body {
        Some(body) => {
            stats.verified += 1;
            verify::check_body(object, range, resp.content_range.as_ref(), body)
        }
        None => verify::check_length(object, range, resp.len),
    };
    if let Err(message) = checked {
        stats.verify_failure(message);
        if let Some(at) = at {
            stats.error("verify", at);
        }
        return true;
    }
    if let Some(at) = at {
        stats.record(latency, resp.len, at);
    }
    true
}

/// Runs `spec` once and returns what was measured.
pub async fn execute(spec: Arc<Spec>) -> Summary {
    let w = Window::new(spec.warmup, spec.duration, spec.timeout);
    let cpu = tokio::spawn(cpu_between(w.measure, w.end));
    let connections = spec.model.connections();
    let tasks: Vec<_> = (0..connections)
        .map(|id| tokio::spawn(worker(Arc::clone(&spec), w, id)))
        .collect();
    let mut total = TaskStats::new(w.seconds());
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(&stats),
            Err(e) => tracing::warn!(error = %e, "bench task failed"),
        }
    }
    let cpu = cpu.await.unwrap_or(f64::NAN);
    total.summary(spec.duration, cpu)
}

/// CPU seconds this process used between two instants.
pub async fn cpu_between(from: Instant, to: Instant) -> f64 {
    tokio::time::sleep_until(from).await;
    let before = process_cpu_seconds();
    tokio::time::sleep_until(to).await;
    process_cpu_seconds() - before
}

struct State {
    rng: SmallRng,
    stats: TaskStats,
    /// Requests generated by this task.
    n: u64,
    /// Open loop: the next intended send time, and one taken but not sent.
    next: Instant,
    pending: Option<Instant>,
    interval: Duration,
}

enum End {
    Done,
    Reconnect,
}

async fn worker(spec: Arc<Spec>, w: Window, id: usize) -> TaskStats {
    let (interval, next) = match spec.model {
        Model::Closed { .. } => (Duration::ZERO, w.start),
        Model::Open { connections, rate } => {
            let interval = Duration::from_secs_f64(connections as f64 / rate);
            (
                interval,
                w.start + interval.mul_f64(id as f64 / connections as f64),
            )
        }
    };
    let open = matches!(spec.model, Model::Open { .. });
    let mut st = State {
        rng: SmallRng::seed_from_u64(
            spec.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(id as u64),
        ),
        stats: TaskStats::new(w.seconds()),
        n: 0,
        next,
        pending: None,
        interval,
    };
    loop {
        let now = Instant::now();
        let upcoming = st.pending.unwrap_or(st.next);
        if now >= w.hard || (!open && now >= w.end) || (open && upcoming >= w.end) {
            break;
        }
        let connected = tokio::time::timeout_at(w.hard, client::connect(&spec.server.addr)).await;
        let (sender, conn) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(_)) => {
                if let Some(at) = w.at(now) {
                    st.stats.error("connect", at);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => break,
        };
        let run = async { tokio::join!(conn, session(&spec, &w, id, &mut st, sender)).1 };
        match tokio::time::timeout_at(w.hard, run).await {
            Ok(End::Done) => break,
            Ok(End::Reconnect) => continue,
            Err(_) => {
                st.stats.error("timeout", w.end - w.measure);
                break;
            }
        }
    }
    if open {
        let upcoming = st.pending.unwrap_or(st.next).max(w.measure);
        if upcoming < w.end && !st.interval.is_zero() {
            let left = (w.end - upcoming).as_secs_f64() / st.interval.as_secs_f64();
            st.stats.unsent += left.ceil() as u64;
        }
    }
    st.stats
}

async fn session(spec: &Spec, w: &Window, id: usize, st: &mut State, mut sender: Sender) -> End {
    loop {
        let intended = match spec.model {
            Model::Closed { .. } => {
                if Instant::now() >= w.end {
                    return End::Done;
                }
                None
            }
            Model::Open { .. } => {
                let t = match st.pending.take() {
                    Some(t) => t,
                    None => {
                        let t = st.next;
                        st.next += st.interval;
                        t
                    }
                };
                if t >= w.end {
                    return End::Done;
                }
                if Instant::now() < t {
                    tokio::time::sleep_until(t).await;
                }
                Some(t)
            }
        };
        if sender.ready().await.is_err() {
            // Closed by the server between requests: not an error of this request.
            st.pending = intended;
            return End::Reconnect;
        }
        let planned = spec.plan.next(&mut st.rng, &spec.sizes);
        let object = &spec.objects[planned.object];
        let uri = if spec.cold {
            object.with_query(&format!("kf-cold={}-{id}-{}", spec.seed, st.n))
        } else {
            object.uri.clone()
        };
        let keep = (spec.verify && (st.n == 0 || st.n % spec.sample_every == 0)).then(|| {
            planned
                .range
                .map_or(object.size, |(s, e)| e - s + 1)
                .try_into()
                .unwrap_or(usize::MAX)
        });
        st.n += 1;
        let req = client::request(&spec.server, uri, planned.range, spec.keepalive);
        let sent = Instant::now();
        let result = client::exchange(&mut sender, req, keep).await;
        let done = Instant::now();
        if intended.is_none() && done > w.end {
            return End::Done; // in flight when the closed loop ended
        }
        let origin = intended.unwrap_or(sent);
        let at = w
            .at(origin)
            .map(|_| done.saturating_duration_since(w.measure));
        let reusable = settle(
            &mut st.stats,
            object,
            planned.range,
            result,
            done - origin,
            at,
        );
        if !reusable || !spec.keepalive {
            return End::Reconnect;
        }
    }
}
