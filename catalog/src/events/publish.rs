//! The append side: connecting to NATS, ensuring the stream and the shared
//! consumer exist, and appending a request's events, answered only once JetStream
//! acknowledged each of them.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream as js_stream};
use futures::future::join_all;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};

use super::stream::{
    message_id, subject, Envelope, EventsMetrics, APPEND_TIMEOUT, CONSUMER, DUPLICATE_WINDOW,
    MAX_AGE, STREAM, SUBJECTS,
};
use crate::history::{Outcome, UserBatch};

/// Why events were not appended (the request is answered 503: none of them counts
/// as accepted, though some may have been; sending them again is safe).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the event stream did not acknowledge in time")]
    Timeout,
    #[error("the event stream refused an event: {0}")]
    Publish(String),
    #[error("an event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A connection to JetStream: appends events, and hands the consumer its
/// context.
#[derive(Clone)]
pub struct Events {
    pub(crate) js: jetstream::Context,
    pub(crate) metrics: Option<EventsMetrics>,
    pub(crate) ack_wait: Duration,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Connects to the NATS servers `servers` (reconnecting by itself after), and
    /// creates the stream and the shared consumer (redelivering what is not acked
    /// within `ack_wait`) unless they exist.
    pub async fn connect(servers: &[String], ack_wait: Duration) -> Result<Events, String> {
        let client = async_nats::ConnectOptions::new()
            .name("keyframe-catalog")
            .connection_timeout(Duration::from_secs(5))
            // Back within a quarter second of the server's return, at most 2 s.
            .reconnect_delay_callback(|n| Duration::from_millis((50 * n as u64).clamp(50, 2000)))
            .connect(servers)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", servers.join(",")))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(APPEND_TIMEOUT)
            .build(client.clone());
        let ev = Events {
            js,
            metrics: None,
            ack_wait,
        };
        ev.ensure(client.server_info().cluster.is_some())
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        Ok(ev)
    }

    /// The stream, created (three replicas in a cluster, one otherwise) when
    /// missing, and the shared durable consumer on it.
    async fn ensure(&self, clustered: bool) -> Result<(), String> {
        let stream = self
            .js
            .get_or_create_stream(js_stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECTS.into()],
                storage: js_stream::StorageType::File,
                retention: js_stream::RetentionPolicy::Limits,
                max_age: MAX_AGE,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: if clustered { 3 } else { 1 },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        ensure_consumer(&stream, self.ack_wait)
            .await
            .map_err(|e| format!("consumer {CONSUMER}: {e}"))?;
        Ok(())
    }

    /// This handle, recording into `metrics`.
    pub fn with_metrics(mut self, metrics: EventsMetrics) -> Events {
        self.metrics = Some(metrics);
        self
    }

    /// Appends `batch`'s events and waits for JetStream's acknowledgement of every
    /// one. An event JetStream already had (same key within the duplicate window)
    /// is a duplicate; the rest are accepted (the fold drops any older repeat).
    pub async fn append(&self, batch: &UserBatch, now_ms: i64) -> Result<Outcome, AppendError> {
        let started = Instant::now();
        let r = tokio::time::timeout(APPEND_TIMEOUT, self.append_all(batch, now_ms))
            .await
            .unwrap_or(Err(AppendError::Timeout));
        if let (Ok(_), Some(m)) = (&r, &self.metrics) {
            m.append.observe(started.elapsed().as_secs_f64());
        }
        r
    }

    async fn append_all(&self, batch: &UserBatch, now_ms: i64) -> Result<Outcome, AppendError> {
        let mut acks = Vec::with_capacity(batch.events.len());
        for e in &batch.events {
            let body = serde_json::to_vec(&Envelope {
                user_id: batch.user_id.clone(),
                region: batch.region.clone(),
                event: e.clone(),
                appended_at: now_ms,
            })?;
            let ack = self
                .js
                .send_publish(
                    subject(e.kind),
                    PublishMessage::build()
                        .payload(body.into())
                        .message_id(message_id(&batch.user_id, e)),
                )
                .await
                .map_err(|e| publish_error(&e))?;
            acks.push(ack.into_future());
        }
        let mut out = Outcome::default();
        for ack in join_all(acks).await {
            let ack = ack.map_err(|e| publish_error(&e))?;
            if ack.duplicate {
                out.duplicates += 1;
            } else {
                out.accepted += 1;
            }
        }
        Ok(out)
    }
}

/// The shared durable pull consumer on `stream`, created unless it exists (a
/// pulled message not acked within `ack_wait` is delivered again).
pub(crate) async fn ensure_consumer(
    stream: &js_stream::Stream,
    ack_wait: Duration,
) -> Result<PullConsumer, String> {
    stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait,
                filter_subject: SUBJECTS.into(),
                max_ack_pending: 50_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

fn publish_error(e: &jetstream::context::PublishError) -> AppendError {
    use jetstream::context::PublishErrorKind;
    match e.kind() {
        PublishErrorKind::TimedOut => AppendError::Timeout,
        _ => AppendError::Publish(e.to_string()),
    }
}
