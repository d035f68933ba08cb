//! Load and player benchmarks against any HTTP URL (HTTP only: it depends on no other Keyframe crate).
