//! The byte check: a response is compared with what the object holds, from a
//! local copy (`--verify-dir`), a manifest's SHA-256 (whole objects), or at
//! least its own length and Content-Range.

use std::os::unix::fs::FileExt;

use http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::targets::{Expected, Object};

/// The first offset where `got` differs from `want` (or where one ends).
pub fn first_difference(want: &[u8], got: &[u8]) -> Option<usize> {
    let common = want.len().min(got.len());
    match want[..common].iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if want.len() != got.len() => Some(common),
        None => None,
    }
}

/// Cheap checks on every response: the body has the requested length.
pub fn check_length(object: &Object, range: Option<(u64, u64)>, len: u64) -> Result<(), String> {
    let want = match range {
        Some((s, e)) => e - s + 1,
        None => object.size,
    };
    if len == want {
        Ok(())
    } else {
        Err(format!(
            "{}: {len} bytes received for {}, expected {want}",
            object.path,
            describe(range)
        ))
    }
}

fn describe(range: Option<(u64, u64)>) -> String {
    match range {
        Some((s, e)) => format!("bytes {s}-{e}"),
        None => "the whole object".to_owned(),
    }
}

/// The full check of a sampled response: Content-Range for ranges, then the
/// bytes against the local copy, or the SHA-256 of a whole object.
pub fn check_body(
    object: &Object,
    range: Option<(u64, u64)>,
    content_range: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(), String> {
    check_length(object, range, body.len() as u64)?;
    let (start, end) = match range {
        Some((s, e)) => {
            let want = format!("bytes {s}-{e}/{}", object.size);
            let got = content_range.and_then(|v| v.to_str().ok()).unwrap_or("");
            if got != want {
                return Err(format!(
                    "{}: Content-Range `{got}` for {}, expected `{want}`",
                    object.path,
                    describe(range)
                ));
            }
            (s, e)
        }
        None => (0, object.size.saturating_sub(1)),
    };
    match &object.expected {
        Expected::Unknown => Ok(()),
        Expected::File(file) => {
            if body.is_empty() {
                return Ok(()); // an empty object, length already checked
            }
            let mut want = vec![0u8; (end + 1 - start) as usize];
            file.read_exact_at(&mut want, start)
                .map_err(|e| format!("{}: reading the local copy: {e}", object.path))?;
            match first_difference(&want, body) {
                None => Ok(()),
                Some(i) => Err(format!(
                    "{}: byte {} differs ({:#04x} received, {:#04x} expected)",
                    object.path,
                    start + i as u64,
                    body.get(i).copied().unwrap_or(0),
                    want.get(i).copied().unwrap_or(0),
                )),
            }
        }
        Expected::Sha256(sum) => {
            if range.is_some() {
                return Ok(()); // a hash of the whole says nothing about a part
            }
            let got: [u8; 32] = Sha256::digest(body).into();
            if &got == sum {
                Ok(())
            } else {
                Err(format!(
                    "{}: sha256 {} received, {} expected",
                    object.path,
                    hex::encode(got),
                    hex::encode(sum)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn object(expected: Expected, size: u64) -> Object {
        Object {
            uri: http::Uri::from_static("/v1/objects/o.bin"),
            path: "/v1/objects/o.bin".into(),
            size,
            expected,
        }
    }

    fn data() -> Vec<u8> {
        (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn differences() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"ab"), Some(2));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }

    #[test]
    fn a_corrupted_range_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("o.bin");
        std::fs::write(&path, data()).expect("write");
        let file = Arc::new(std::fs::File::open(&path).expect("open"));
        let o = object(Expected::File(file), 10_000);
        let cr = HeaderValue::from_static("bytes 100-4195/10000");
        let mut body = data()[100..4196].to_vec();
        assert_eq!(check_body(&o, Some((100, 4195)), Some(&cr), &body), Ok(()));
        body[1234] ^= 0x01;
        let err = check_body(&o, Some((100, 4195)), Some(&cr), &body).expect_err("corrupt");
        assert!(err.contains("byte 1334 differs"), "{err}");
        // Wrong Content-Range, short body.
        let wrong = HeaderValue::from_static("bytes 0-4095/10000");
        assert!(check_body(&o, Some((100, 4195)), Some(&wrong), &data()[100..4196]).is_err());
        assert!(check_body(&o, Some((100, 4195)), Some(&cr), &data()[100..4195]).is_err());
        // Whole object.
        assert_eq!(check_body(&o, None, None, &data()), Ok(()));
        let mut whole = data();
        whole[9_999] = whole[9_999].wrapping_add(1);
        assert!(check_body(&o, None, None, &whole).is_err());
    }

    #[test]
    fn a_whole_object_is_checked_by_hash() {
        let sum: [u8; 32] = Sha256::digest(data()).into();
        let o = object(Expected::Sha256(sum), 10_000);
        assert_eq!(check_body(&o, None, None, &data()), Ok(()));
        let mut bad = data();
        bad[0] ^= 0x80;
        assert!(check_body(&o, None, None, &bad)
            .expect_err("corrupt")
            .contains("sha256"));
        // A range only gets the Content-Range and length checks.
        let cr = HeaderValue::from_static("bytes 0-9/10000");
        assert_eq!(check_body(&o, Some((0, 9)), Some(&cr), &bad[..10]), Ok(()));
    }
}
