//! The dependency-light core that every Keyframe crate may share: object keys,
//! sizes and durations, playback tokens, regions, media types, the error codes of
//! every JSON error, configuration helpers and the one-line error chain.
//!
//! No HTTP server, no network I/O, no memfd: the load generator (`bench`) and the
//! catalog link this without linking the byte path's serving code.

pub mod config;
pub mod duration;
pub mod error_code;
pub mod key;
pub mod mime;
pub mod region;
pub mod secret;
pub mod size;
pub mod store;
pub mod token;

pub use error_code::ErrorCode;

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
