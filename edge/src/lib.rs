//! The edge: a chunked, coalescing RFC 9111 caching proxy in front of any HTTP origin.
//!
//! * [`policy`] — RFC 9111 shared-cache rules as pure functions.
//! * [`entry`] — a cached representation's metadata; whether an answer is storable.
//! * [`chunks`] — the chunk store (memory tiers) and per-chunk fetch coalescing.
//! * [`upstream`] — rendezvous hashing, failover and circuit breaking.
//! * [`server`] — routing, the cache state machine, purge, tokens and regions.
//! * [`probe`] — `keyframe healthcheck`: one GET of a health endpoint.

pub mod chunks;
pub mod config;
pub mod disk;
pub mod entry;
pub mod policy;
pub mod probe;
pub mod server;
pub mod upstream;

pub use config::Config;
pub use server::Server;
