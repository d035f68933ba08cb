//! The catalog: the metadata model and its database, the JSON API under `/api`,
//! accounts and sessions, rights per region, and the web page.
//!
//! The catalog sits beside the byte path: players fetch bytes from edges, and the
//! catalog tells them where (signed playback URLs).

pub mod api;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod events;
pub mod forwarded;
pub mod history;
pub mod ladder;
pub mod listing;
pub mod meta;
pub mod meta_ingest;
#[cfg(test)]
mod module_graph;
pub mod playback;
pub mod recommend;
pub mod server;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod uploads;
pub mod web;

pub use config::Config;
pub use db::{Backend, Db, DbError};
pub use uploads::{ByteStream, ContentUpload, IngestedContent, UploadError, Uploads};
