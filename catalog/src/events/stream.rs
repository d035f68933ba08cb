//! What travels and where: the stream's and the consumer's names and settings, the
//! subject and message id of an event, the message envelope, and the metrics of
//! the events path.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::history::Event;

/// The stream the events go to.
pub const STREAM: &str = "KEYFRAME_HISTORY";
/// The subjects of the stream: `keyframe.history.<kind>`.
pub const SUBJECTS: &str = "keyframe.history.*";
/// The durable consumer every catalog shares.
pub const CONSUMER: &str = "keyframe-catalog";
/// How long JetStream remembers a message id (drops a resent event).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long the stream keeps events (folded or not): a week.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// How long an append may wait for JetStream's acknowledgements before the request
/// is answered 503.
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(3);

/// The subject of an event kind.
pub fn subject(kind: crate::history::EventKind) -> String {
    format!("keyframe.history.{}", kind.as_str())
}

/// The message id of an event: its idempotency key.
pub fn message_id(user_id: &str, event: &Event) -> String {
    format!("{user_id}/{}/{}", event.session_id, event.seq)
}

/// One event as it travels in the stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub user_id: String,
    /// The region the request came from (`""` when unknown).
    pub region: String,
    pub event: Event,
    /// When the catalog appended it, Unix ms (for the append → visible latency).
    pub appended_at: i64,
}

/// The metrics of the events path, registered with the catalog's others.
#[derive(Clone, Debug)]
pub struct EventsMetrics {
    /// Messages of the consumer not yet acknowledged (pending + in flight).
    pub lag: Gauge,
    /// Seconds to append a request's events (until every publish ack).
    pub append: Histogram,
    /// Seconds of one fold (one database transaction of pulled events).
    pub fold: Histogram,
    /// Seconds from append to visible (folded and the cache told).
    pub visible: Histogram,
    /// Events folded (new to the log).
    pub folded: Counter,
    /// Events delivered again or sent twice and ignored by the fold.
    pub duplicates: Counter,
}

impl EventsMetrics {
    /// Creates the metrics and registers them under `registry`.
    pub fn register(registry: &mut Registry) -> EventsMetrics {
        let m = EventsMetrics {
            lag: Gauge::default(),
            append: keyframe_http::metrics::latency_histogram(),
            fold: keyframe_http::metrics::latency_histogram(),
            visible: keyframe_http::metrics::latency_histogram(),
            folded: Counter::default(),
            duplicates: Counter::default(),
        };
        registry.register(
            "keyframe_events_consumer_lag_messages",
            "Watch events in the stream this catalog's consumer group has not acknowledged",
            m.lag.clone(),
        );
        registry.register(
            "keyframe_events_append_seconds",
            "Time to append a request's watch events to JetStream (every publish acknowledged)",
            m.append.clone(),
        );
        registry.register(
            "keyframe_events_fold_seconds",
            "Time of one fold transaction of pulled watch events",
            m.fold.clone(),
        );
        registry.register(
            "keyframe_events_visible_seconds",
            "Time from a watch event's append to its fold being visible in the API",
            m.visible.clone(),
        );
        registry.register(
            "keyframe_events_folded",
            "Watch events folded from the stream",
            m.folded.clone(),
        );
        registry.register(
            "keyframe_events_duplicates",
            "Watch events from the stream the fold found already folded",
            m.duplicates.clone(),
        );
        m
    }
}
