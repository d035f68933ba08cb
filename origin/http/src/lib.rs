//! Serving HTTP, shared by the origin, the edge and the catalog: the accept loop
//! (limits, h1/h2c, TLS, graceful shutdown), body types and JSON errors, the
//! zero-copy (`sendfile`) connection, the metrics registry, and the RFC 9110 range
//! and conditional-request logic as pure functions.

pub mod access;
pub mod conditional;
pub mod cors;
pub mod frames;
pub mod http_server;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod range;
pub mod shards;
pub mod tls;
pub mod zerocopy;
