//! Ingest: streams content and profile images into object storage, content-addressed
//! by SHA-256, and commits their metadata in one transaction.
//!
//! [`ingest`] and [`ingest_avatar`] are the one entry point the CLI, the catalog's
//! upload endpoints and the tests share; [`gc`] collects what crashed or failed
//! ingests leave behind; [`run_cli`] and [`run_gc`] are `keyframe ingest` and
//! `keyframe gc` minus flag parsing.
//!
//! The guarantees: memory stays bounded whatever the input's size (parts of at most
//! a few MiB in flight); an object key names only complete, verified bytes; a
//! metadata row never points at a missing or partial object; and a crash at any
//! moment leaves at most unreferenced objects, which [`gc`] finds.

pub mod cli;
pub mod cmaf;
pub mod error;
pub mod gc;
pub mod images;
pub mod ladder;
pub mod manifest;
pub mod mp4;
pub mod objects;
pub mod pipeline;
pub mod probe;
pub mod remote;
pub mod sniff;
pub mod source;
pub mod uploads;

pub use cli::{run_cli, run_gc, GcArgs, IngestArgs};
pub use error::IngestError;
pub use gc::{gc, GcReport, Orphan};
pub use ladder::LadderSpec;
pub use pipeline::{ingest, ingest_avatar, IngestOptions, IngestReport, Progress, Stage};
pub use probe::{MediaInfo, Tools};
pub use source::Source;
pub use uploads::PipelineUploads;
