//! Watch history: players report events, which are appended to a log and folded
//! into per-(viewer, title) state (resume point, played flag, play count, watch
//! time), per-(title, region) counters and time-decayed trending scores, all in the
//! same transaction, by the writer behind a bounded queue ([`writer`]).
//!
//! Nothing here scans the log to answer a read: the state, counters and trending
//! tables are materialized from the event stream as it arrives. The log is read
//! only to deduplicate (by key), to export, and to take back a deleted event's
//! contribution.
//!
//! **Durability.** `POST /api/history` answers only after the transaction that
//! holds its events (log rows, state, counters, trending) has committed. So an
//! accepted event is durable, and visible to every read, when the answer arrives:
//! on PostgreSQL as its `synchronous_commit` promises (by default: on disk); on
//! SQLite in WAL mode with `synchronous = NORMAL`, which survives a crash of the
//! process but may lose the last commits on power loss. Requests the queue cannot
//! take are refused with 503 and `Retry-After`, never silently dropped.

pub mod fold;
pub mod store;
pub mod trending;
pub mod writer;

pub use fold::{Event, EventKind, Thresholds, WatchState};
pub use store::{DeleteScope, Deleted, ExportedEvent, Outcome, UserBatch};
pub use writer::{Announce, EventBudget, QueueError, Writer};
