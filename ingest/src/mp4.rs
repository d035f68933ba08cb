//! Where an MP4's `moov` box sits. Players need `moov` (the index) before they can
//! play; when it comes after `mdat` (the media data) a progressive download must
//! fetch the end of the file first. Walking the top-level box headers answers the
//! question by reading a few bytes per box, whatever the file's size.

use std::io::{self, Read, Seek, SeekFrom};

/// The most boxes looked at before giving up (a malformed file must not loop long).
const MAX_BOXES: usize = 4096;

/// What the top-level boxes of an ISO media file say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `Some(true)` when a complete `moov` precedes `mdat` (a "fast start" file),
    /// `Some(false)` when it follows it, `None` when there is no complete `moov` box
    /// or the boxes do not parse.
    pub moov_first: Option<bool>,
    /// A box runs past the end of the file: the file was cut short.
    pub truncated: bool,
}

/// Whether `moov` precedes `mdat` in an ISO media file of `len` bytes: `Some(true)`
/// for a "fast start" file, `Some(false)` when `moov` comes after `mdat`, `None`
/// when the file has no complete `moov` box or its boxes do not parse.
pub fn moov_before_mdat<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Option<bool>> {
    Ok(layout(r, len)?.moov_first)
}

/// Walks the top-level boxes of an ISO media file of `len` bytes (at most
/// `MAX_BOXES` of them).
pub fn layout<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Layout> {
    let mut out = Layout::default();
    let mut pos = 0u64;
    let mut seen_mdat = false;
    for _ in 0..MAX_BOXES {
        if pos == len {
            return Ok(out);
        }
        if pos + 8 > len {
            // A partial box header at the end.
            out.truncated = true;
            return Ok(out);
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 8];
        r.read_exact(&mut header)?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let size = match size32 {
            // The box runs to the end of the file.
            0 => len - pos,
            // A 64-bit size follows the type.
            1 => {
                if pos + 16 > len {
                    out.truncated = true;
                    return Ok(out);
                }
                let mut large = [0u8; 8];
                r.read_exact(&mut large)?;
                u64::from_be_bytes(large)
            }
            n => u64::from(n),
        };
        if size < 8 {
            out.moov_first = None;
            return Ok(out);
        }
        let Some(end) = pos.checked_add(size) else {
            out.moov_first = None;
            return Ok(out);
        };
        if end > len {
            // Cut short: a `moov` that does not fit is no index at all.
            out.truncated = true;
            return Ok(out);
        }
        match &kind {
            b"moov" if out.moov_first.is_none() => out.moov_first = Some(!seen_mdat),
            b"mdat" => seen_mdat = true,
            _ => {}
        }
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut v = u32::try_from(body + 8)
            .expect("small")
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(kind);
        v.resize(body + 8, 0xAB);
        v
    }

    fn check(bytes: &[u8]) -> Option<bool> {
        moov_before_mdat(&mut Cursor::new(bytes), bytes.len() as u64).expect("in memory")
    }

    #[test]
    fn moov_first_is_faststart() {
        let f = [
            boxed(b"ftyp", 16),
            boxed(b"moov", 100),
            boxed(b"mdat", 1000),
        ]
        .concat();
        assert_eq!(check(&f), Some(true));
    }

    #[test]
    fn moov_last_is_not() {
        let f = [
            boxed(b"ftyp", 16),
            boxed(b"free", 8),
            boxed(b"mdat", 1000),
            boxed(b"moov", 100),
        ]
        .concat();
        assert_eq!(check(&f), Some(false));
    }

    #[test]
    fn large_size_and_to_the_end_boxes() {
        let mut mdat = 1u32.to_be_bytes().to_vec();
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(&(16u64 + 64).to_be_bytes());
        mdat.resize(16 + 64, 0);
        let mut moov_to_end = 0u32.to_be_bytes().to_vec();
        moov_to_end.extend_from_slice(b"moov");
        moov_to_end.resize(40, 0);
        let f = [boxed(b"ftyp", 16), mdat, moov_to_end].concat();
        assert_eq!(check(&f), Some(false));
    }

    #[test]
    fn malformed_or_missing_moov_is_unknown() {
        assert_eq!(
            check(&[boxed(b"ftyp", 16), boxed(b"mdat", 10)].concat()),
            None
        );
        let mut bad = boxed(b"ftyp", 16);
        bad.extend_from_slice(&[0, 0, 0, 3, b'x', b'x', b'x', b'x']);
        assert_eq!(check(&bad), None);
        assert_eq!(check(b"abc"), None);
        // A size that runs past the end of the file.
        let mut past = 10_000u32.to_be_bytes().to_vec();
        past.extend_from_slice(b"mdat");
        assert_eq!(check(&past), None);
    }

    /// The first 100 bytes of a fast-start MP4: `ftyp`, then the start of a `moov`
    /// box that claims more bytes than the file has. Not an index, and cut short.
    #[test]
    fn a_truncated_moov_is_no_index() {
        let mut f = boxed(b"ftyp", 16);
        f.extend_from_slice(&5000u32.to_be_bytes());
        f.extend_from_slice(b"moov");
        f.resize(100, 0);
        assert_eq!(check(&f), None);
        let l = layout(&mut Cursor::new(&f), f.len() as u64).expect("layout");
        assert!(l.truncated);
        // Complete boxes, then a cut-short `mdat`: the index is there, the media is not.
        let mut g = [boxed(b"ftyp", 16), boxed(b"moov", 100)].concat();
        g.extend_from_slice(&100_000u32.to_be_bytes());
        g.extend_from_slice(b"mdat");
        g.resize(g.len() + 500, 0);
        let l = layout(&mut Cursor::new(&g), g.len() as u64).expect("layout");
        assert_eq!(
            l,
            Layout {
                moov_first: Some(true),
                truncated: true
            }
        );
        let whole = [boxed(b"ftyp", 16), boxed(b"moov", 100), boxed(b"mdat", 10)].concat();
        let l = layout(&mut Cursor::new(&whole), whole.len() as u64).expect("layout");
        assert_eq!(
            l,
            Layout {
                moov_first: Some(true),
                truncated: false
            }
        );
    }
}
