//! Prometheus metrics. Each server owns a registry (no global state), and every
//! metric name Keyframe exports is written down here.
//!
//! Labels stay low-cardinality: a status class or a cache status, never a key.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
/// `keyframe_http_request_duration_seconds`.
#[derive(Debug)]
pub struct HttpMetrics {
    pub requests: Family<StatusLabels, Counter>,
    pub response_bytes: Counter,
    pub in_flight: Gauge,
    pub duration: Histogram,
}

/// Latency buckets from 100 µs to about 50 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 15))
}

impl HttpMetrics {
    /// Creates the metrics and registers them under `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpMetrics {
            requests: Family::default(),
            response_bytes: Counter::default(),
            in_flight: Gauge::default(),
            duration: latency_histogram(),
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
        m
    }
}

/// Renders a registry in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}
