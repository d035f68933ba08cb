//! The integration tests of `keyframe-engine` as one test binary, each file a module
//! (see the root ARCHITECTURE.md): DataFusion in process against the local engine,
//! and the snapshots on local disk and S3.

mod snapshots;
