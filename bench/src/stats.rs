//! Measurements: one [`TaskStats`] per connection task (no sharing on the hot
//! path), merged at the end into a [`Summary`]; and the arithmetic of reports
//! (percentiles, medians, ratios).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to an hour, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

/// What one connection task measured.
#[derive(Debug, Clone)]
pub struct TaskStats {
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Open loop: requests scheduled before the end but never sent.
    pub unsent: u64,
    pub verified: u64,
    pub verify_failures: u64,
    pub first_verify_failure: Option<String>,
    pub timeline: Vec<Second>,
}

/// Counters of one second of the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub max_ms: f64,
}

impl TaskStats {
    pub fn new(seconds: usize) -> TaskStats {
        TaskStats {
            hist: Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .expect("constant histogram bounds are valid"),
            requests: 0,
            errors: 0,
            bytes: 0,
            error_kinds: BTreeMap::new(),
            unsent: 0,
            verified: 0,
            verify_failures: 0,
            first_verify_failure: None,
            timeline: (0..seconds as u64)
                .map(|second| Second {
                    second,
                    ..Second::default()
                })
                .collect(),
        }
    }

    fn second(&mut self, at: Duration) -> Option<&mut Second> {
        self.timeline.get_mut(at.as_secs() as usize)
    }

    /// A successful request that completed `at` after the measured window began.
    pub fn record(&mut self, latency: Duration, bytes: u64, at: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, HIST_MAX_US);
        self.hist.saturating_record(us);
        self.requests += 1;
        self.bytes += bytes;
        if let Some(s) = self.second(at) {
            s.requests += 1;
            s.bytes += bytes;
            s.max_ms = s.max_ms.max(us as f64 / 1e3);
        }
    }

    pub fn error(&mut self, kind: &str, at: Duration) {
        self.errors += 1;
        *self.error_kinds.entry(kind.to_owned()).or_default() += 1;
        if let Some(s) = self.second(at) {
            s.errors += 1;
        }
    }

    pub fn verify_failure(&mut self, message: String) {
        self.verify_failures += 1;
        self.first_verify_failure.get_or_insert(message);
    }

    pub fn merge(&mut self, other: &TaskStats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.requests += other.requests;
        self.errors += other.errors;
        self.bytes += other.bytes;
        for (k, v) in &other.error_kinds {
            *self.error_kinds.entry(k.clone()).or_default() += v;
        }
        self.unsent += other.unsent;
        self.verified += other.verified;
        self.verify_failures += other.verify_failures;
        if self.first_verify_failure.is_none() {
            self.first_verify_failure = other.first_verify_failure.clone();
        }
        if self.timeline.len() < other.timeline.len() {
            let from = self.timeline.len() as u64;
            self.timeline
                .extend((from..other.timeline.len() as u64).map(|second| Second {
                    second,
                    ..Second::default()
                }));
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.requests += theirs.requests;
            mine.errors += theirs.errors;
            mine.bytes += theirs.bytes;
            mine.max_ms = mine.max_ms.max(theirs.max_ms);
        }
    }

    /// Turns the merged counters into rates over `elapsed`.
    pub fn summary(&self, elapsed: Duration, client_cpu_s: f64) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            requests: self.requests,
            errors: self.errors,
            error_kinds: self.error_kinds.clone(),
            unsent: self.unsent,
            elapsed_s: elapsed.as_secs_f64(),
            requests_per_s: self.requests as f64 / secs,
            bytes: self.bytes,
            bytes_per_s: self.bytes as f64 / secs,
            latency_ms: Latency::of(&self.hist),
            client_cpu_s,
            verified: self.verified,
            verify_failures: self.verify_failures,
            first_verify_failure: self.first_verify_failure.clone(),
            timeline: self.timeline.clone(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(hist: &Histogram<u64>) -> Latency {
        if hist.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Latency {
            mean: hist.mean() / 1e3,
            p50: ms(hist.value_at_quantile(0.50)),
            p90: ms(hist.value_at_quantile(0.90)),
            p95: ms(hist.value_at_quantile(0.95)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
        }
    }
}

/// The result of one run against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub unsent: u64,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    pub bytes: u64,
    pub bytes_per_s: f64,
    pub latency_ms: Latency,
    pub client_cpu_s: f64,
    pub verified: u64,
    pub verify_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_verify_failure: Option<String>,
    pub timeline: Vec<Second>,
}

/// The median of some values (the mean of the middle two for an even count);
/// `None` when there are none. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The `q` quantile (0 to 1) of some values, nearest rank; NaN when there are none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// `b / a`, or `None` when `a` is zero or either is not finite.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    if a == 0.0 || !a.is_finite() || !b.is_finite() {
        None
    } else {
        Some(b / a)
    }
}

/// CPU time (user + system) this process has used so far, from getrusage(2).
pub fn process_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut t = TaskStats::new(2);
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            t.record(Duration::from_millis(ms), 10, Duration::from_millis(ms));
        }
        let l = Latency::of(&t.hist);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.001;
        assert!(close(l.p50, 500.0), "{l:?}");
        assert!(close(l.p90, 900.0), "{l:?}");
        assert!(close(l.p95, 950.0), "{l:?}");
        assert!(close(l.p99, 990.0), "{l:?}");
        assert!(close(l.p999, 999.0), "{l:?}");
        assert!(close(l.max, 1000.0), "{l:?}");
        assert!(close(l.mean, 500.5), "{l:?}");
        assert_eq!(t.timeline[0].requests, 999);
        assert_eq!(t.timeline[1].requests, 1);
        assert_eq!(t.bytes, 10_000);
    }

    #[test]
    fn merging_adds_everything() {
        let mut a = TaskStats::new(1);
        let mut b = TaskStats::new(3);
        for _ in 0..90 {
            a.record(Duration::from_micros(100), 1, Duration::ZERO);
        }
        for _ in 0..10 {
            b.record(Duration::from_secs(1), 2, Duration::from_secs(2));
        }
        b.error("status 500", Duration::from_secs(2));
        b.verify_failure("first".into());
        a.merge(&b);
        assert_eq!(a.requests, 100);
        assert_eq!(a.bytes, 110);
        assert_eq!(a.errors, 1);
        assert_eq!(a.error_kinds.get("status 500"), Some(&1));
        assert_eq!(a.first_verify_failure.as_deref(), Some("first"));
        assert_eq!(a.timeline.len(), 3);
        assert_eq!(a.timeline[2].requests, 10);
        assert_eq!(a.timeline[2].errors, 1);
        let l = Latency::of(&a.hist);
        assert!(l.p50 < 0.2 && l.p99 > 990.0, "{l:?}");
        let s = a.summary(Duration::from_secs(2), 0.5);
        assert!((s.requests_per_s - 50.0).abs() < 1e-9);
        assert!((s.bytes_per_s - 55.0).abs() < 1e-9);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[10.0, 1000.0, 11.0]), Some(11.0));
        assert_eq!(ratio(100.0, 80.0), Some(0.8));
        assert_eq!(ratio(0.0, 80.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }

    #[test]
    fn cpu_time_advances() {
        let before = process_cpu_seconds();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_cpu_seconds();
        assert!(after - before >= 0.02, "{before} -> {after}");
    }
}
