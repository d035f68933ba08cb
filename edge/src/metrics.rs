//! The edge's metrics: their names and help texts in one place, and the
//! `/_keyframe/metrics` answer.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{header, HeaderValue, Response};
use keyframe_http::http_server::{full, Body};
use keyframe_http::metrics::{render, HttpMetrics};
use keyframe_http::shards::LabeledCounters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::chunks::ChunkStats;
use crate::server::Server;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    pub(crate) cache_status: &'static str,
}

/// What the cache did with a request: the `cache_status` label of
/// `keyframe_edge_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    Hit,
    Stale,
    Miss,
    Revalidated,
    Pass,
}

// `count` indexes the counters by discriminant: `ALL` must list them in order.
const _: () = {
    let mut i = 0;
    while i < Served::ALL.len() {
        assert!(Served::ALL[i] as usize == i);
        i += 1;
    }
};

impl Served {
    const ALL: [Served; 5] = [
        Served::Hit,
        Served::Stale,
        Served::Miss,
        Served::Revalidated,
        Served::Pass,
    ];

    fn label(self) -> &'static str {
        match self {
            Served::Hit => "hit",
            Served::Stale => "stale",
            Served::Miss => "miss",
            Served::Revalidated => "revalidated",
            Served::Pass => "pass",
        }
    }
}

/// The edge's metrics (names documented in `keyframe_http::metrics` style).
#[derive(Debug)]
pub(crate) struct EdgeMetrics {
    pub(crate) http: HttpMetrics,
    /// `keyframe_edge_requests_total{cache_status}`: hit, stale, miss, revalidated, pass.
    /// Indexed by [`Served`] (kept per thread: every request counts here).
    pub(crate) by_cache_status: LabeledCounters<CacheLabels>,
    /// `keyframe_edge_upstream_bytes_total`: body bytes fetched from upstreams;
    /// origin offload = this ÷ `keyframe_http_response_bytes_total`.
    pub(crate) upstream_bytes: Counter,
    pub(crate) upstream_requests: Counter,
    pub(crate) upstream_errors: Counter,
    pub(crate) upstream_latency: Histogram,
    pub(crate) memory_bytes: Gauge,
    pub(crate) entries: Gauge,
    /// `keyframe_edge_sendfile_bytes_total`: body bytes sent from sealed chunks
    /// with `sendfile` (no copy); brought up to date at each scrape from
    /// `zerocopy::sent_bytes`, whose value at the last scrape is `sendfile_seen`.
    pub(crate) sendfile_bytes: Counter,
    pub(crate) sendfile_seen: AtomicU64,
    /// `keyframe_edge_upstream_healthy{upstream}`: 1 in rotation, 0 out of it
    /// (see [`crate::upstream`] for what counts as alive); set by every probe
    /// and by requests that move an upstream in or out.
    pub(crate) upstream_healthy: Family<UpstreamLabels, Gauge>,
}

impl EdgeMetrics {
    /// The edge's metrics, registered in `registry` with the chunk store's counters.
    pub(crate) fn register(registry: &mut Registry, chunks: &ChunkStats) -> EdgeMetrics {
        let http = HttpMetrics::register(registry);

        let m = EdgeMetrics {
            http,
            by_cache_status: LabeledCounters::new(Served::ALL.map(|o| CacheLabels {
                cache_status: o.label(),
            })),
            upstream_bytes: Counter::default(),
            upstream_requests: Counter::default(),
            upstream_errors: Counter::default(),
            upstream_latency: keyframe_http::metrics::latency_histogram(),
            memory_bytes: Gauge::default(),
            sendfile_bytes: Counter::default(),
            sendfile_seen: AtomicU64::new(keyframe_http::zerocopy::sent_bytes()),
            entries: Gauge::default(),
            upstream_healthy: Family::default(),
        };
        registry.register(
            "keyframe_edge_requests",
            "Requests by cache status",
            m.by_cache_status.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_bytes",
            "Body bytes fetched from upstreams",
            m.upstream_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_requests",
            "Requests sent upstream",
            m.upstream_requests.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_errors",
            "Upstream requests that failed (connect, timeout, 5xx, cut body)",
            m.upstream_errors.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_duration_seconds",
            "Time to an upstream's response head",
            m.upstream_latency.clone(),
        );
        registry.register(
            "keyframe_edge_memory_bytes",
            "Bytes held by the memory tiers",
            m.memory_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_sendfile_bytes",
            "Response body bytes sent from cached chunks with sendfile, without a copy",
            m.sendfile_bytes.clone(),
        );
        registry.register(
            "keyframe_edge_upstream_healthy",
            "Whether an upstream is in rotation (1) or taken out by failures (0)",
            m.upstream_healthy.clone(),
        );
        registry.register(
            "keyframe_edge_entries",
            "Cached representations",
            m.entries.clone(),
        );
        registry.register(
            "keyframe_edge_chunk_hits",
            "Chunks served from memory",
            chunks.hits.clone(),
        );
        registry.register(
            "keyframe_edge_chunk_misses",
            "Chunks fetched from upstream",
            chunks.misses.clone(),
        );
        registry.register(
            "keyframe_edge_coalesced",
            "Chunk requests that joined a fetch already in flight",
            chunks.coalesced.clone(),
        );
        registry.register(
            "keyframe_edge_evictions",
            "Chunks evicted from memory",
            chunks.evictions.clone(),
        );
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    pub(crate) upstream: String,
}

impl Server {
    pub(crate) fn metrics_response(&self) -> Response<Body> {
        let i = &self.inner;
        i.metrics
            .memory_bytes
            .set(i64::try_from(i.chunks.memory_bytes()).unwrap_or(i64::MAX));
        i.metrics
            .entries
            .set(i64::try_from(i.entries.entry_count()).unwrap_or(i64::MAX));
        let sent = keyframe_http::zerocopy::sent_bytes();
        let seen = i.metrics.sendfile_seen.swap(sent, Ordering::Relaxed);
        i.metrics.sendfile_bytes.inc_by(sent.saturating_sub(seen));
        let mut r = Response::new(full(render(&i.registry)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(keyframe_http::metrics::CONTENT_TYPE),
        );
        r
    }

    pub(crate) fn count(&self, outcome: Served) {
        self.inner.metrics.by_cache_status.inc(outcome as usize);
    }
}
