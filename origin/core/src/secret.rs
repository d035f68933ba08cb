//! Comparing secrets (the edge's purge token, the catalog's admin token) in time
//! that depends on neither their contents nor their lengths.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether two secrets are equal. Both are hashed first: the digests have one
/// length, so the comparison (`subtle`'s, which the optimiser does not turn back
/// into an early exit) reveals neither where the secrets differ nor how long the
/// expected one is, which comparing the raw bytes would on a length mismatch.
pub fn secrets_equal(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    let (a, b) = (Sha256::digest(a.as_ref()), Sha256::digest(b.as_ref()));
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(secrets_equal("a", "a"));
        assert!(secrets_equal(b"", b""));
        assert!(!secrets_equal("a", "b"));
        assert!(!secrets_equal("secret", "secret "));
        assert!(!secrets_equal("", "secret"));
        assert!(!secrets_equal("secret", "Secret"));
    }
}
