//! The origin: `read(key, offset)` over object storage, served as HTTP byte ranges.
//!
//! The origin knows nothing of the database. What it shares with the rest of the
//! byte path lives in `keyframe-core` (keys, sizes, tokens) and `keyframe-http`
//! (the accept loop, ranges, preconditions, metrics); this crate keeps the server,
//! the object-store wrapper that ingest and the catalog open stores with, and the
//! test stores (`testing`, behind the `testing` feature).

pub mod config;
pub mod server;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::Config;
pub use server::Server;
