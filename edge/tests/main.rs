//! The integration tests of `keyframe-edge` as one test binary, each file a module:
//! the crate's whole dependency tree is linked once, not once per file. A new
//! test file needs its `mod` line here (tests/docs.rs at the root fails for a
//! file nothing declares), and reaches the shared helpers as `crate::common`.

mod common;
// The scripted origin of the policy and health suites.
#[path = "support/scripted.rs"]
mod scripted;

mod cache;
mod generic_origin;
mod health;
mod logging;
mod policy;
mod tls;
