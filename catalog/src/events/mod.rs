//! Watch events on NATS JetStream (`events = "nats://…"`): the intake path of a
//! catalog that is one of many.
//!
//! Without `events`, `POST /api/history` hands its events to the in-process
//! group-commit writer (`history::writer`) and answers after the database commit.
//! With it, the request path and the fold are split by a durable, replicated log:
//!
//! * [`publish`]: the handler appends each validated event to the
//!   `KEYFRAME_HISTORY` stream (subject `keyframe.history.<kind>`, file storage,
//!   `Nats-Msg-Id` = the event's idempotency key `user/session/seq`, so JetStream's
//!   duplicate window drops a resent event) and answers only once JetStream
//!   acknowledged every event: **durable once answered**. An event JetStream did not
//!   acknowledge in time is never answered as accepted (503 `events_unavailable`
//!   with `Retry-After`).
//! * [`consume`]: every catalog runs one pull consumer on the shared durable
//!   consumer `keyframe-catalog`, so any number of catalogs split the stream. Each
//!   folds what it pulls through the same store code as the in-process writer
//!   ([`crate::db::Db::record_history`]: log, watch state, counters, trending in one
//!   transaction, the event key deduplicating), announces the touched (viewer,
//!   title) pairs to the hot cache, and only then acks: delivery is at least once,
//!   the effect exactly once (a redelivered event is a duplicate in the log and
//!   changes nothing).
//!
//! Reads stay on the database: an event becomes visible once a consumer folded it
//! (append → visible is the `keyframe_events_visible_seconds` histogram).

pub mod consume;
pub mod publish;
pub mod stream;

pub use consume::{start_consumer, ConsumerConfig};
pub use publish::{AppendError, Events};
pub use stream::{Envelope, EventsMetrics};
