//! The history writer: one task per catalog that group-commits the events of many
//! requests in one transaction, behind a queue bounded in events.
//!
//! A request reserves room for its events (or is refused at once: [`QueueError::Full`],
//! which the API answers with 503 and `Retry-After`), hands them over, and waits for
//! the commit that holds them. The task takes every request waiting when it wakes, up
//! to `history_batch_events` events, and commits them together, so throughput grows
//! with load while a lone request waits for one small commit only. If a combined
//! commit fails, each request is retried alone, so one bad request cannot fail
//! another's.
//!
//! After a commit, and before any of its requests is answered, the writer announces
//! the (viewer, title) pairs it touched to the [`Announce`] it was started with (the
//! server passes one that invalidates the hot cache's resume points), so cached
//! state never outlives the write that changed it.
//!
//! Shutdown: when every [`Writer`] clone is dropped (the server stopped taking
//! requests), the task commits what is queued and ends; the join handle
//! [`Writer::start`] returns waits for that.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::fold::Thresholds;
use super::store::{Outcome, UserBatch};
use crate::db::{Db, DbError};

struct Job {
    batch: UserBatch,
    done: oneshot::Sender<Result<Outcome, DbError>>,
    _room: OwnedSemaphorePermit,
}

/// Called with each (viewer, title) pair a commit touched, before any of the
/// commit's requests is answered.
pub type Announce = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Why the writer did not take a request.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the history queue is full")]
    Full,
    #[error("the history writer has stopped")]
    Stopped,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A handle on the writer task.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    room: Arc<Semaphore>,
    capacity: usize,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Settings of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Events the queue holds at most (waiting or being written).
    pub queue_events: usize,
    /// Events one commit takes at most.
    pub batch_events: usize,
    pub thresholds: Thresholds,
    pub half_life_ms: i64,
}

impl Writer {
    /// Starts the writer task on `db`. The returned handle ends when the task has
    /// committed everything queued after the last `Writer` was dropped.
    pub fn start(
        db: Db,
        cfg: WriterConfig,
        announce: Announce,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = cfg.queue_events.clamp(1, Semaphore::MAX_PERMITS);
        let writer = Writer {
            jobs: tx,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
        };
        let task = tokio::spawn(run(db, cfg, announce, rx));
        (writer, task)
    }

    /// Queues one viewer's events and waits until they are committed.
    pub async fn submit(&self, batch: UserBatch) -> Result<Outcome, QueueError> {
        let n = u32::try_from(batch.events.len().max(1)).unwrap_or(u32::MAX);
        if n as usize > self.capacity {
            return Err(QueueError::Full);
        }
        let room = self
            .room
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| QueueError::Full)?;
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job {
                batch,
                done,
                _room: room,
            })
            .map_err(|_| QueueError::Stopped)?;
        Ok(wait.await.map_err(|_| QueueError::Stopped)??)
    }

    /// Events waiting or being written now.
    pub fn queued(&self) -> usize {
        self.capacity - self.room.available_permits()
    }
}

async fn run(db: Db, cfg: WriterConfig, announce: Announce, mut rx: mpsc::UnboundedReceiver<Job>) {
    let max = cfg.batch_events.max(1);
    while let Some(first) = rx.recv().await {
        let mut events = first.batch.events.len();
        let mut jobs = vec![first];
        while events < max {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.batch.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&db, &cfg, &announce, jobs).await;
    }
    tracing::debug!("history writer stopped");
}

/// Announces the (viewer, title) pairs of `batches` (each once).
pub(crate) fn announce_pairs(announce: &Announce, batches: &[&UserBatch]) {
    let mut seen = std::collections::HashSet::new();
    for b in batches {
        for e in &b.events {
            if seen.insert((b.user_id.as_str(), e.content_id.as_str())) {
                announce(&b.user_id, &e.content_id);
            }
        }
    }
}

async fn commit(db: &Db, cfg: &WriterConfig, announce: &Announce, jobs: Vec<Job>) {
    let batches: Vec<UserBatch> = jobs.iter().map(|j| j.batch.clone()).collect();
    let result = db
        .record_history(&batches, cfg.thresholds, cfg.half_life_ms)
        .await;
    // Even a failed commit may have raced a cache load: announcing is always safe.
    announce_pairs(announce, &batches.iter().collect::<Vec<_>>());
    match result {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.done.send(Ok(outcome));
            }
        }
        Err(e) if jobs.len() == 1 => {
            tracing::warn!(error = %e, "history batch failed");
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.done.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = jobs.len(), "history group commit failed; retrying each alone");
            for job in jobs {
                let r = db
                    .record_history(
                        std::slice::from_ref(&job.batch),
                        cfg.thresholds,
                        cfg.half_life_ms,
                    )
                    .await
                    .map(|mut o| o.pop().unwrap_or_default());
                announce_pairs(announce, &[&job.batch]);
                let _ = job.done.send(r);
            }
        }
    }
}

/// Per-viewer token buckets of watch events: `per_minute` tokens refill over a
/// minute, and a viewer may spend at most a minute's worth at once. In memory, per
/// process; a viewer idle for a minute is forgotten (their bucket is full again).
#[derive(Debug)]
pub struct EventBudget {
    per_minute: u32,
    buckets: moka::sync::Cache<String, Arc<std::sync::Mutex<(f64, tokio::time::Instant)>>>,
}

impl EventBudget {
    /// Buckets of `per_minute` events.
    pub fn new(per_minute: u32) -> EventBudget {
        EventBudget {
            per_minute: per_minute.max(1),
            buckets: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    /// Spends `n` of `user`'s events, or says how long until they are there.
    pub fn take(&self, user: &str, n: usize) -> Result<(), std::time::Duration> {
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let now = tokio::time::Instant::now();
        let bucket = self.buckets.get_with(user.to_string(), || {
            Arc::new(std::sync::Mutex::new((cap, now)))
        });
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(cap);
        let n = n as f64;
        if n > tokens {
            b.0 = tokens;
            b.1 = now;
            let wait = if n > cap { 60.0 } else { (n - tokens) / rate };
            return Err(std::time::Duration::from_secs_f64(wait));
        }
        b.0 = tokens - n;
        b.1 = now;
        Ok(())
    }
}
