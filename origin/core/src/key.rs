//! Object keys as the HTTP contract allows them.
//!
//! A key is an object-store path: `/`-separated segments of `[A-Za-z0-9._-]`, with
//! no empty, `.` or `..` segment, at most 1024 bytes. Validating here, before the
//! key reaches any store, is what keeps a request from escaping the store's root.

use object_store::path::Path;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Why a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the object key is empty")]
    Empty,
    #[error("the object key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
    #[error("the object key has an empty, '.' or '..' segment")]
    BadSegment,
    #[error("the object key has a character outside [A-Za-z0-9._-/]")]
    BadChar,
}

/// Checks a key against the contract and returns it as a store path.
pub fn parse_key(key: &str) -> Result<Path, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(KeyError::BadSegment);
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(KeyError::BadChar);
        }
    }
    Ok(Path::from_iter(key.split('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_keys() {
        for k in ["a", "sha256/ab/cd/abcdef.mp4", "A-b_c.9", "x/y/z"] {
            assert_eq!(parse_key(k).map(|p| p.to_string()), Ok(k.to_string()));
        }
        assert!(parse_key(&"a".repeat(1024)).is_ok());
    }

    #[test]
    fn refuses_the_rest() {
        assert_eq!(parse_key(""), Err(KeyError::Empty));
        assert_eq!(parse_key(&"a".repeat(1025)), Err(KeyError::TooLong));
        for k in ["a//b", "/a", "a/", ".", "..", "a/../b", "./a"] {
            assert_eq!(parse_key(k), Err(KeyError::BadSegment), "{k}");
        }
        for k in ["a b", "a%2f", "é", "a\\b", "a?b", "a\0"] {
            assert_eq!(parse_key(k), Err(KeyError::BadChar), "{k}");
        }
    }
}
