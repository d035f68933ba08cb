//! The edge: a chunked, coalescing RFC 9111 caching proxy in front of any HTTP origin.
//!
//! * [`policy`] — RFC 9111 shared-cache rules as pure functions.
//! * [`entry`] — a cached representation's metadata; whether an answer is storable.
//! * [`chunks`] — the chunk store (memory tiers) and per-chunk fetch coalescing.
//! * [`upstream`] — rendezvous hashing, failover and circuit breaking.
//! * [`server`] — building the server, routing, tokens and regions.
//! * `proxy` — the cache state machine; `fetch` — object and chunk fetches,
//!   coalescing, the body pump; `respond` — answers from stored entries; `pass` —
//!   pass-through; `purge` — purge and invalidation; `variants` — each URL's
//!   stored variants; `metrics` — the metrics.
//! * [`probe`] — `keyframe healthcheck`: one GET of a health endpoint.

pub mod chunks;
pub mod config;
pub mod disk;
pub mod entry;
mod fetch;
mod metrics;
mod pass;
pub mod policy;
pub mod probe;
mod proxy;
mod purge;
mod respond;
pub mod server;
pub mod upstream;
mod variants;

pub use config::Config;
pub use server::Server;
