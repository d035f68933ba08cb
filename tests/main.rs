//! The integration tests of `keyframe` as one test binary, each file a module:
//! the crate's whole dependency tree is linked once, not once per file. A new
//! test file needs its `mod` line here (tests/docs.rs at the root fails for a
//! file nothing declares), and reaches the shared helpers as `crate::common`.

mod common;

mod browser;
mod browser_abr;
mod cli;
mod cluster;
mod conformance;
mod deploy;
mod docs;
mod edge_memory;
mod events;
mod ingest;
mod players;
mod recommend_engines;
mod serve;
