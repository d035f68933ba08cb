//! The fold side: one pull consumer per catalog on the shared durable consumer,
//! folding what it pulls with [`crate::db::Db::record_history`] and acking each
//! message only after the transaction holding it committed.
//!
//! A message is acked after its fold committed and the touched (viewer, title)
//! pairs were announced (so the hot cache never serves state older than an acked
//! event). A crash between commit and ack redelivers the message, which the fold
//! finds in the log (same `(user, session, seq)`) and ignores. A fold that fails
//! is retried message by message; a message whose title no longer exists is
//! terminated (logged), others are negatively acked and come back after a second.

use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::publish::{ensure_consumer, Events};
use super::stream::{Envelope, STREAM};
use crate::db::{now_ms, Db, DbError};
use crate::history::writer::announce_pairs;
use crate::history::{Announce, Thresholds, UserBatch};

/// Settings of a catalog's consumer.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerConfig {
    /// Messages one fold takes at most (`history_commit_events`).
    pub batch_events: usize,
    pub thresholds: Thresholds,
    pub half_life_ms: i64,
}

/// Starts this catalog's consumer; it runs until `stop` is cancelled (finishing
/// the fold in progress), reconnecting after any stream error.
pub fn start_consumer(
    events: Events,
    db: Db,
    cfg: ConsumerConfig,
    announce: Announce,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Err(e) = consume(&events, &db, cfg, &announce, &stop).await {
                tracing::warn!(error = %e, "watch-event consumer interrupted; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        tracing::debug!("watch-event consumer stopped");
    })
}

async fn consume(
    events: &Events,
    db: &Db,
    cfg: ConsumerConfig,
    announce: &Announce,
    stop: &CancellationToken,
) -> Result<(), String> {
    let stream = events
        .js
        .get_stream(STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let consumer = ensure_consumer(&stream, events.ack_wait).await?;
    let batch = cfg.batch_events.max(1);
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .expires(Duration::from_secs(5))
        .heartbeat(Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut chunks = messages.ready_chunks(batch);
    let mut lag_at: Option<Instant> = None;
    loop {
        if lag_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            lag_at = Some(Instant::now());
            if let (Some(m), Ok(info)) = (&events.metrics, consumer.get_info().await) {
                let lag = info.num_pending.saturating_add(info.num_ack_pending as u64);
                m.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = tokio::time::timeout(Duration::from_secs(1), chunks.next()) => next,
        };
        let Ok(next) = next else { continue };
        let Some(items) = next else {
            return Err("the message stream ended".into());
        };
        let mut pulled = Vec::with_capacity(items.len());
        let mut error = None;
        for item in items {
            match item {
                Ok(m) => pulled.push(m),
                Err(e) => error = Some(e.to_string()),
            }
        }
        fold(events, db, cfg, announce, pulled).await;
        if let Some(e) = error {
            return Err(e);
        }
    }
}

/// Folds pulled messages in one transaction (or, if it fails, one by one) and
/// acks them.
async fn fold(
    events: &Events,
    db: &Db,
    cfg: ConsumerConfig,
    announce: &Announce,
    messages: Vec<Message>,
) {
    let mut batches = Vec::with_capacity(messages.len());
    let mut kept = Vec::with_capacity(messages.len());
    let mut appended = Vec::with_capacity(messages.len());
    for m in messages {
        match serde_json::from_slice::<Envelope>(&m.payload) {
            Ok(env) => {
                appended.push(env.appended_at);
                batches.push(UserBatch {
                    user_id: env.user_id,
                    region: env.region,
                    events: vec![env.event],
                });
                kept.push(m);
            }
            Err(e) => {
                tracing::warn!(subject = %m.subject, error = %e, "dropping a watch-event message that is not an event");
                let _ = m.ack_with(AckKind::Term).await;
            }
        }
    }
    if kept.is_empty() {
        return;
    }
    let started = Instant::now();
    let result = db
        .record_history(&batches, cfg.thresholds, cfg.half_life_ms)
        .await;
    announce_pairs(announce, &batches.iter().collect::<Vec<_>>());
    match result {
        Ok(outcomes) => {
            done(events, started, &appended, &outcomes);
            ack_all(&kept).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, events = kept.len(), "watch-event fold failed; folding each alone");
            for ((m, b), at) in kept.iter().zip(&batches).zip(&appended) {
                let started = Instant::now();
                let r = db
                    .record_history(std::slice::from_ref(b), cfg.thresholds, cfg.half_life_ms)
                    .await;
                announce_pairs(announce, &[b]);
                let kind = match r {
                    Ok(outcomes) => {
                        done(events, started, std::slice::from_ref(at), &outcomes);
                        AckKind::Ack
                    }
                    Err(DbError::MissingReference(what)) => {
                        tracing::warn!(user = %b.user_id, what = %what, "dropping a watch event of a title that no longer exists");
                        AckKind::Term
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch event not folded; redelivery in 1 s");
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    }
                };
                let _ = m.ack_with(kind).await;
            }
        }
    }
}

fn done(events: &Events, started: Instant, appended: &[i64], outcomes: &[crate::history::Outcome]) {
    let Some(m) = &events.metrics else { return };
    m.fold.observe(started.elapsed().as_secs_f64());
    let now = now_ms();
    for (at, o) in appended.iter().zip(outcomes) {
        m.folded.inc_by(o.accepted as u64);
        m.duplicates.inc_by(o.duplicates as u64);
        if o.accepted > 0 {
            m.visible
                .observe(now.saturating_sub(*at).max(0) as f64 / 1000.0);
        }
    }
}

async fn ack_all(messages: &[Message]) {
    let acks = messages.iter().map(|m| m.ack());
    for r in futures::future::join_all(acks).await {
        if let Err(e) = r {
            // Not acked: JetStream redelivers it, and the fold ignores it then.
            tracing::debug!(error = %e, "watch-event ack not sent");
        }
    }
}
