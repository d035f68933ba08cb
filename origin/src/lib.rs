//! The origin: `read(key, offset)` over object storage, served as HTTP byte ranges.
//!
//! The origin knows nothing of the database. It is also the base crate of the byte
//! path: the pieces edge, ingest and catalog share (object keys, sizes, stores,
//! ranges, conditional requests, tokens, the HTTP server loop, metrics) live here.

pub mod conditional;
pub mod config;
pub mod http_server;
pub mod key;
pub mod metrics;
pub mod mime;
pub mod range;
pub mod region;
pub mod server;
pub mod size;
pub mod store;
pub mod testing;
pub mod tls;
pub mod token;
pub mod zerocopy;

pub use config::Config;
pub use server::Server;
