//! Prometheus metrics. Each server owns a registry (no global state but one: the
//! log lines the process dropped, see [`set_log_lines_dropped`]). The metrics
//! every HTTP server has are named here; a server's own are named in one place in
//! its crate: the edge's in `edge/src/metrics.rs`, the origin's two storage
//! metrics where its server registers them (`keyframe_origin::Server::new`).
//!
//! Labels stay low-cardinality: a status class or a cache status, never a key.

use std::sync::OnceLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::shards::{LabeledCounters, ShardedCounter, ShardedGauge, ShardedHistogram};

/// The content type of `/_keyframe/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The response status code, e.g. "206".
    pub status: u16,
}

/// Metrics every HTTP server has: `keyframe_http_requests_total{status}`,
/// `keyframe_http_response_bytes_total`, `keyframe_http_in_flight_requests`,
/// `keyframe_http_request_duration_seconds`, and the process's
/// `keyframe_log_lines_dropped_total`. Every request updates them, so they are
/// kept per thread ([`crate::shards`]).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// By status code, 100 to 999 (all `http::StatusCode` can hold).
    pub requests: LabeledCounters<StatusLabels>,
    pub response_bytes: ShardedCounter,
    pub in_flight: ShardedGauge,
    pub duration: ShardedHistogram,
}

/// The bounds of the latency buckets: 100 µs to about 50 s.
fn latency_bounds() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.5, 15)
}

/// A latency histogram: buckets from 100 µs to about 50 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_bounds())
}

impl HttpMetrics {
    /// Creates the metrics and registers them under `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpMetrics {
            requests: LabeledCounters::new((100..=999).map(|status| StatusLabels { status })),
            response_bytes: ShardedCounter::default(),
            in_flight: ShardedGauge::default(),
            duration: ShardedHistogram::new(latency_bounds()),
        };
        registry.register(
            "keyframe_http_requests",
            "HTTP requests answered, by status",
            m.requests.clone(),
        );
        registry.register(
            "keyframe_http_response_bytes",
            "Bytes of response bodies sent",
            m.response_bytes.clone(),
        );
        registry.register(
            "keyframe_http_in_flight_requests",
            "Requests being served now",
            m.in_flight.clone(),
        );
        registry.register(
            "keyframe_http_request_duration_seconds",
            "Time to the response head",
            m.duration.clone(),
        );
        registry.register_collector(Box::new(LogLinesDropped));
        m
    }

    /// Counts a response with `status`.
    pub fn count(&self, status: http::StatusCode) {
        self.requests
            .inc(usize::from(status.as_u16().saturating_sub(100)));
    }
}

/// Where the process's count of dropped log lines comes from.
type DroppedSource = Box<dyn Fn() -> u64 + Send + Sync>;

/// The log writer is the process's (one stderr), so its count of dropped lines is
/// too: the binary sets the source once, every server's registry reads it.
static LOG_LINES_DROPPED: OnceLock<DroppedSource> = OnceLock::new();

/// Sets where `keyframe_log_lines_dropped_total` is read from: the log lines the
/// process's writer dropped because its sink was slow or gone. Only the first call
/// counts; without one the metric reads 0.
pub fn set_log_lines_dropped(source: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = LOG_LINES_DROPPED.set(Box::new(source));
}

/// The log lines dropped so far (see [`set_log_lines_dropped`]).
pub fn log_lines_dropped() -> u64 {
    LOG_LINES_DROPPED.get().map_or(0, |f| f())
}

/// `keyframe_log_lines_dropped_total`, read at every scrape.
#[derive(Debug)]
struct LogLinesDropped;

impl Collector for LogLinesDropped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(log_lines_dropped());
        let metric = encoder.encode_descriptor(
            "keyframe_log_lines_dropped",
            "Log lines dropped because the log's sink (stderr) was slow or gone",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// Renders a registry in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_exports_the_dropped_log_lines() {
        let mut registry = Registry::default();
        let _m = HttpMetrics::register(&mut registry);
        let text = render(&registry);
        assert!(
            text.lines()
                .any(|l| l.starts_with("keyframe_log_lines_dropped_total ")),
            "{text}"
        );
        assert!(
            text.contains("# TYPE keyframe_log_lines_dropped counter"),
            "{text}"
        );
    }
}
