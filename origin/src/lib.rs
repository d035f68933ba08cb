//! The origin: `read(key, offset)` over object storage, served as HTTP byte ranges.
//!
//! The origin knows nothing of the database. It is also the base crate of the byte
//! path: the pieces edge, ingest and catalog share (object keys, sizes, stores,
//! ranges, conditional requests, tokens, the HTTP server loop, metrics) live here.

pub mod conditional;
pub mod config;
pub mod cors;
pub mod http_server;
pub mod key;
pub mod manifest;
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

/// An error and its causes on one line, each cause once (client libraries' own
/// messages are terse: "error sending request" says nothing of the refused port).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
pub use server::Server;
