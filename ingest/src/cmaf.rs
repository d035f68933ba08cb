//! Reads the fragment index of one CMAF rendition (a fragmented MP4 with one track):
//! where its initialization segment ends, and the byte range, start time, duration
//! and first-sample flags of every fragment (`moof` + `mdat`). The manifests are
//! written from this alone.
//!
//! Only box headers and the small boxes that describe samples (`moov`, `moof`) are
//! read, so memory stays a few KiB per fragment whatever the file's size
//! (ISO/IEC 14496-12 §8.8: movie fragments; §8.16.2: `styp`).

use std::io::{self, Read, Seek, SeekFrom};

/// The largest `moov` or `moof` box read into memory; a rendition's are a few KiB.
const MAX_INDEX_BOX: u64 = 16 << 20;
/// The most top-level boxes walked (a 10-hour film at 2 s fragments has ~36 000).
const MAX_BOXES: usize = 1 << 20;

/// What a rendition's track carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackKind {
    Video { width: u32, height: u32 },
    Audio { channels: u32, sample_rate: u32 },
}

/// One fragment: the bytes of a media segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Where it starts in the file (its `styp`, else its `moof`).
    pub offset: u64,
    pub size: u64,
    /// Decode time of its first sample, in the track's timescale (`tfdt`).
    pub start: u64,
    /// The sum of its samples' durations, in the track's timescale.
    pub duration: u64,
    /// Whether its first sample is a sync sample (a keyframe).
    pub starts_with_sync: bool,
    /// How many samples (frames, for video) it holds.
    pub samples: u64,
}

/// The index of one fragmented MP4 rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendition {
    /// The file's length.
    pub len: u64,
    /// The initialization segment is bytes `0..init_size` (`ftyp` + `moov`).
    pub init_size: u64,
    pub kind: TrackKind,
    /// RFC 6381 codec string: `avc1.64001f`, `mp4a.40.2`.
    pub codecs: String,
    pub timescale: u32,
    pub fragments: Vec<Fragment>,
}

impl Rendition {
    /// The whole duration, in seconds.
    pub fn duration_secs(&self) -> f64 {
        let units: u64 = self.fragments.iter().map(|f| f.duration).sum();
        units as f64 / f64::from(self.timescale.max(1))
    }

    /// A fragment's duration in seconds.
    pub fn secs(&self, f: &Fragment) -> f64 {
        f.duration as f64 / f64::from(self.timescale.max(1))
    }

    /// The peak bit rate of its segments (RFC 8216 §4.3.4.2: `BANDWIDTH`), bits/s.
    pub fn peak_bandwidth(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| rate(f.size, self.secs(f)))
            .max()
            .unwrap_or(0)
    }

    /// The mean frame rate, frames per second, as a reduced fraction `(num, den)`:
    /// samples over duration, so `25/1`, `30000/1001`, or for a variable rate its
    /// average (to a thousandth of a frame when no small denominator is exact).
    /// None without samples or duration.
    pub fn frame_rate(&self) -> Option<(u64, u64)> {
        let samples: u64 = self.fragments.iter().map(|f| f.samples).sum();
        let units: u64 = self.fragments.iter().map(|f| f.duration).sum();
        if samples == 0 || units == 0 {
            return None;
        }
        let num = u128::from(samples) * u128::from(self.timescale.max(1));
        let den = u128::from(units);
        let exact = reduce(num, den);
        if exact.1 <= 1001 {
            return Some(exact);
        }
        let thousandths = (num * 1000 + den / 2) / den;
        Some(reduce(thousandths, 1000))
    }

    /// [`Rendition::frame_rate`] as HLS writes `FRAME-RATE` (RFC 8216 §4.4.6.2: a
    /// decimal rounded to three places).
    pub fn frame_rate_decimal(&self) -> Option<String> {
        self.frame_rate()
            .map(|(n, d)| format!("{:.3}", n as f64 / d as f64))
    }

    /// [`Rendition::frame_rate`] as DASH writes `@frameRate` (ISO/IEC 23009-1
    /// FrameRateType: `25`, or `30000/1001`).
    pub fn frame_rate_fraction(&self) -> Option<String> {
        self.frame_rate().map(|(n, d)| match d {
            1 => n.to_string(),
            _ => format!("{n}/{d}"),
        })
    }

    /// The average bit rate over all segments (`AVERAGE-BANDWIDTH`), bits/s.
    pub fn average_bandwidth(&self) -> u64 {
        let bytes: u64 = self.fragments.iter().map(|f| f.size).sum();
        rate(bytes, self.duration_secs())
    }
}

/// `num/den` in lowest terms (saturating into u64).
fn reduce(num: u128, den: u128) -> (u64, u64) {
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let g = a.max(1);
    let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    (clamp(num / g), clamp(den / g))
}

fn rate(bytes: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        return 0;
    }
    (bytes as f64 * 8.0 / secs).ceil() as u64
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Walks a fragmented MP4 of `len` bytes. Every byte belongs to the initialization
/// segment or to exactly one fragment; anything else (a `moof` without its `mdat`,
/// a box running past the end, a second track) is an error.
pub fn read<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Rendition> {
    let mut pos = 0u64;
    let mut init: Option<(u64, Moov)> = None;
    let mut fragments: Vec<Fragment> = Vec::new();
    // A fragment whose `moof` has been seen and whose `mdat` has not.
    let mut open: Option<Fragment> = None;
    // Where the current fragment started, when a `styp` came before its `moof`.
    let mut styp_at: Option<u64> = None;
    for _ in 0..MAX_BOXES {
        if pos == len {
            break;
        }
        let (kind, header, size) = box_header(r, pos, len)?;
        match &kind {
            b"ftyp" | b"free" | b"skip" | b"sidx" | b"prft" | b"emsg" | b"mfra" => {
                if &kind == b"mfra" {
                    // A trailer after the last fragment belongs to that fragment.
                    if let Some(last) = fragments.last_mut() {
                        last.size += size;
                    }
                }
            }
            b"moov" => {
                let body = read_body(r, pos, header, size)?;
                init = Some((pos + size, parse_moov(&body)?));
            }
            b"styp" => styp_at = Some(pos),
            b"moof" => {
                let Some((_, moov)) = &init else {
                    return Err(bad("a moof before the moov"));
                };
                if open.is_some() {
                    return Err(bad("a moof without its mdat"));
                }
                let body = read_body(r, pos, header, size)?;
                let (start, duration, sync, samples) = parse_moof(&body, moov)?;
                open = Some(Fragment {
                    offset: styp_at.take().unwrap_or(pos),
                    size: 0,
                    start,
                    duration,
                    starts_with_sync: sync,
                    samples,
                });
            }
            b"mdat" => {
                let Some(mut f) = open.take() else {
                    return Err(bad("an mdat outside a fragment"));
                };
                f.size = pos + size - f.offset;
                fragments.push(f);
            }
            other => {
                return Err(bad(format!(
                    "unexpected box '{}' at byte {pos}",
                    String::from_utf8_lossy(other)
                )))
            }
        }
        pos += size;
    }
    if pos != len {
        return Err(bad("too many boxes"));
    }
    if open.is_some() {
        return Err(bad("the last moof has no mdat"));
    }
    let Some((init_size, moov)) = init else {
        return Err(bad("no moov box"));
    };
    if fragments.is_empty() {
        return Err(bad("no fragments"));
    }
    if fragments[0].offset != init_size {
        return Err(bad("bytes between the moov and the first fragment"));
    }
    Ok(Rendition {
        len,
        init_size,
        kind: moov.kind,
        codecs: moov.codecs,
        timescale: moov.timescale,
        fragments,
    })
}

/// The type, header length and size of the box at `pos`.
fn box_header<R: Read + Seek>(r: &mut R, pos: u64, len: u64) -> io::Result<([u8; 4], u64, u64)> {
    if pos + 8 > len {
        return Err(bad("a partial box header at the end"));
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let kind = [h[4], h[5], h[6], h[7]];
    let (header, size) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
        0 => (8, len - pos),
        1 => {
            let mut large = [0u8; 8];
            r.read_exact(&mut large)?;
            (16, u64::from_be_bytes(large))
        }
        n => (8, u64::from(n)),
    };
    if size < header || pos.checked_add(size).is_none_or(|end| end > len) {
        return Err(bad(format!(
            "box '{}' at byte {pos} runs past the end",
            String::from_utf8_lossy(&kind)
        )));
    }
    Ok((kind, header, size))
}

fn read_body<R: Read + Seek>(r: &mut R, pos: u64, header: u64, size: u64) -> io::Result<Vec<u8>> {
    if size > MAX_INDEX_BOX {
        return Err(bad("an index box larger than 16 MiB"));
    }
    r.seek(SeekFrom::Start(pos + header))?;
    let mut body = vec![0u8; usize::try_from(size - header).map_err(|_| bad("box too big"))?];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// The children of a box body: (type, body).
fn children(mut b: &[u8]) -> io::Result<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 8 {
            return Err(bad("a partial child box"));
        }
        let size32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let kind = [b[4], b[5], b[6], b[7]];
        let (header, size) = match size32 {
            0 => (8, b.len()),
            1 if b.len() >= 16 => (
                16,
                usize::try_from(u64::from_be_bytes([
                    b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
                ]))
                .map_err(|_| bad("child box too big"))?,
            ),
            n => (8, n as usize),
        };
        if size < header || size > b.len() {
            return Err(bad("a child box runs past its parent"));
        }
        out.push((kind, &b[header..size]));
        b = &b[size..];
    }
    Ok(out)
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> io::Result<Option<&'a [u8]>> {
    Ok(children(b)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, body)| body))
}

fn need<'a>(b: &'a [u8], kind: &[u8; 4]) -> io::Result<&'a [u8]> {
    child(b, kind)?.ok_or_else(|| bad(format!("no '{}' box", String::from_utf8_lossy(kind))))
}

/// Big-endian readers that fail instead of panicking on short input.
fn u8_at(b: &[u8], at: usize) -> io::Result<u8> {
    b.get(at).copied().ok_or_else(|| bad("box too short"))
}
fn u16_at(b: &[u8], at: usize) -> io::Result<u16> {
    Ok(u16::from_be_bytes([u8_at(b, at)?, u8_at(b, at + 1)?]))
}
fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    Ok(u32::from_be_bytes([
        u8_at(b, at)?,
        u8_at(b, at + 1)?,
        u8_at(b, at + 2)?,
        u8_at(b, at + 3)?,
    ]))
}
fn u64_at(b: &[u8], at: usize) -> io::Result<u64> {
    Ok((u64::from(u32_at(b, at)?) << 32) | u64::from(u32_at(b, at + 4)?))
}

/// What the `moov` says about the one track.
struct Moov {
    kind: TrackKind,
    codecs: String,
    timescale: u32,
    /// `trex` defaults (§8.8.3): sample duration and flags.
    default_duration: u32,
    default_flags: u32,
}

fn parse_moov(moov: &[u8]) -> io::Result<Moov> {
    let traks: Vec<&[u8]> = children(moov)?
        .into_iter()
        .filter(|(k, _)| k == b"trak")
        .map(|(_, b)| b)
        .collect();
    let [trak] = traks[..] else {
        return Err(bad(format!(
            "{} tracks: a rendition has exactly one",
            traks.len()
        )));
    };
    let mdia = need(trak, b"mdia")?;
    let mdhd = need(mdia, b"mdhd")?;
    let timescale = if u8_at(mdhd, 0)? == 1 {
        u32_at(mdhd, 20)?
    } else {
        u32_at(mdhd, 12)?
    };
    if timescale == 0 {
        return Err(bad("a timescale of 0"));
    }
    let stsd = need(need(need(mdia, b"minf")?, b"stbl")?, b"stsd")?;
    // stsd: version/flags, entry count, then the sample entries.
    let entries = children(stsd.get(8..).ok_or_else(|| bad("stsd too short"))?)?;
    let (format, entry) = entries.first().ok_or_else(|| bad("no sample entry"))?;
    let (kind, codecs) = match format {
        b"avc1" | b"avc3" => {
            // VisualSampleEntry: 6 reserved, data reference index, 16 bytes, width,
            // height, then 50 bytes before its child boxes (§12.1.3).
            let width = u32::from(u16_at(entry, 24)?);
            let height = u32::from(u16_at(entry, 26)?);
            let avcc = need(
                entry.get(78..).ok_or_else(|| bad("avc1 too short"))?,
                b"avcC",
            )?;
            // AVCDecoderConfigurationRecord: version, profile, compatibility, level
            // (ISO/IEC 14496-15 §5.3.3.1; RFC 6381 §3.3).
            let codecs = format!(
                "{}.{:02x}{:02x}{:02x}",
                String::from_utf8_lossy(format),
                u8_at(avcc, 1)?,
                u8_at(avcc, 2)?,
                u8_at(avcc, 3)?
            );
            (TrackKind::Video { width, height }, codecs)
        }
        b"mp4a" => {
            // AudioSampleEntry: 8 bytes, 8 reserved, channel count, sample size,
            // 4 bytes, sample rate 16.16, then its child boxes (§12.2.3).
            let channels = u32::from(u16_at(entry, 16)?);
            let sample_rate = u32_at(entry, 24)? >> 16;
            let esds = need(
                entry.get(28..).ok_or_else(|| bad("mp4a too short"))?,
                b"esds",
            )?;
            let codecs = mp4a_codecs(esds)?;
            (
                TrackKind::Audio {
                    channels,
                    sample_rate,
                },
                codecs,
            )
        }
        other => {
            return Err(bad(format!(
                "sample entry '{}': renditions are H.264 or AAC",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let (mut default_duration, mut default_flags) = (0, 0);
    if let Some(mvex) = child(moov, b"mvex")? {
        if let Some(trex) = child(mvex, b"trex")? {
            // version/flags, track id, description index, duration, size, flags.
            default_duration = u32_at(trex, 12)?;
            default_flags = u32_at(trex, 20)?;
        }
    }
    Ok(Moov {
        kind,
        codecs,
        timescale,
        default_duration,
        default_flags,
    })
}

/// `mp4a.<object type>.<audio object type>` from an `esds` box (ISO/IEC 14496-1
/// §7.2.6; RFC 6381 §3.3): `mp4a.40.2` for AAC-LC.
fn mp4a_codecs(esds: &[u8]) -> io::Result<String> {
    // Descriptors: a tag, a length in 1–4 bytes of 7 bits each, the body.
    fn descriptor(b: &[u8]) -> io::Result<(u8, &[u8], &[u8])> {
        let tag = u8_at(b, 0)?;
        let (mut len, mut i) = (0usize, 1);
        loop {
            let byte = u8_at(b, i)?;
            len = (len << 7) | usize::from(byte & 0x7f);
            i += 1;
            if byte & 0x80 == 0 || i > 4 {
                break;
            }
        }
        let body = b.get(i..i + len).ok_or_else(|| bad("esds too short"))?;
        Ok((tag, body, &b[i + len..]))
    }
    let (tag, es, _) = descriptor(esds.get(4..).ok_or_else(|| bad("esds too short"))?)?;
    if tag != 3 {
        return Err(bad("esds without an ES descriptor"));
    }
    let flags = u8_at(es, 2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(u8_at(es, at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, config, _) = descriptor(es.get(at..).ok_or_else(|| bad("esds too short"))?)?;
    if tag != 4 {
        return Err(bad("esds without a decoder config"));
    }
    let oti = u8_at(config, 0)?;
    let (tag, specific, _) = descriptor(config.get(13..).ok_or_else(|| bad("esds too short"))?)?;
    if oti == 0x40 && tag == 5 {
        let aot = u8_at(specific, 0)? >> 3;
        return Ok(format!("mp4a.40.{aot}"));
    }
    Ok(format!("mp4a.{oti:02x}"))
}

/// The start (`tfdt`), duration, first-sample sync flag and sample count of a
/// `moof`'s one track fragment (§8.8.7 `tfhd`, §8.8.8 `trun`, §8.8.12 `tfdt`).
fn parse_moof(moof: &[u8], moov: &Moov) -> io::Result<(u64, u64, bool, u64)> {
    let trafs: Vec<&[u8]> = children(moof)?
        .into_iter()
        .filter(|(k, _)| k == b"traf")
        .map(|(_, b)| b)
        .collect();
    let [traf] = trafs[..] else {
        return Err(bad("a moof with other than one traf"));
    };
    let tfhd = need(traf, b"tfhd")?;
    let tf_flags = u32_at(tfhd, 0)? & 0x00ff_ffff;
    let mut at = 8;
    if tf_flags & 0x1 != 0 {
        at += 8;
    }
    if tf_flags & 0x2 != 0 {
        at += 4;
    }
    let mut default_duration = moov.default_duration;
    if tf_flags & 0x8 != 0 {
        default_duration = u32_at(tfhd, at)?;
        at += 4;
    }
    if tf_flags & 0x10 != 0 {
        at += 4;
    }
    let mut default_flags = moov.default_flags;
    if tf_flags & 0x20 != 0 {
        default_flags = u32_at(tfhd, at)?;
    }
    let tfdt = need(traf, b"tfdt")?;
    let start = if u8_at(tfdt, 0)? == 1 {
        u64_at(tfdt, 4)?
    } else {
        u64::from(u32_at(tfdt, 4)?)
    };
    let (mut duration, mut first_flags, mut samples) = (0u64, None, 0u64);
    for (kind, trun) in children(traf)? {
        if &kind != b"trun" {
            continue;
        }
        let flags = u32_at(trun, 0)? & 0x00ff_ffff;
        let count = u32_at(trun, 4)?;
        samples += u64::from(count);
        let mut at = 8;
        if flags & 0x1 != 0 {
            at += 4;
        }
        let mut first_sample_flags = None;
        if flags & 0x4 != 0 {
            first_sample_flags = Some(u32_at(trun, at)?);
            at += 4;
        }
        for i in 0..count {
            let mut sample_duration = default_duration;
            let mut sample_flags = default_flags;
            if flags & 0x100 != 0 {
                sample_duration = u32_at(trun, at)?;
                at += 4;
            }
            if flags & 0x200 != 0 {
                at += 4;
            }
            if flags & 0x400 != 0 {
                sample_flags = u32_at(trun, at)?;
                at += 4;
            }
            if flags & 0x800 != 0 {
                at += 4;
            }
            if i == 0 {
                if let Some(f) = first_sample_flags {
                    sample_flags = f;
                }
                first_flags.get_or_insert(sample_flags);
            }
            duration += u64::from(sample_duration);
        }
    }
    let Some(first) = first_flags else {
        return Err(bad("a fragment without samples"));
    };
    // sample_is_non_sync_sample is bit 16 of the sample flags (§8.8.3.1).
    Ok((start, duration, first & 0x0001_0000 == 0, samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(body.len() + 8)
            .expect("small")
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn moov(timescale: u32) -> Vec<u8> {
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let mut avc1 = vec![0u8; 24];
        avc1.extend_from_slice(&320u16.to_be_bytes());
        avc1.extend_from_slice(&180u16.to_be_bytes());
        avc1.resize(78, 0);
        avc1.extend(boxed(b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff]));
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(boxed(b"avc1", &avc1));
        let stbl = boxed(b"stbl", &boxed(b"stsd", &stsd));
        let minf = boxed(b"minf", &stbl);
        let mdia = boxed(b"mdia", &[boxed(b"mdhd", &mdhd), minf].concat());
        let trak = boxed(b"trak", &mdia);
        let mut trex = vec![0u8; 12];
        trex.extend_from_slice(&512u32.to_be_bytes());
        trex.extend_from_slice(&0u32.to_be_bytes());
        trex.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let mvex = boxed(b"mvex", &boxed(b"trex", &trex));
        boxed(b"moov", &[trak, mvex].concat())
    }

    /// A fragment of `samples` samples of the trex default duration, the first
    /// flagged sync when `sync`.
    fn fragment(start: u64, samples: u32, sync: bool) -> Vec<u8> {
        let tfhd = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
        let mut tfdt = vec![1u8, 0, 0, 0];
        tfdt.extend_from_slice(&start.to_be_bytes());
        // flags: first_sample_flags present.
        let mut trun = vec![0u8, 0, 0, 4];
        trun.extend_from_slice(&samples.to_be_bytes());
        trun.extend_from_slice(&(if sync { 0u32 } else { 0x0001_0000 }).to_be_bytes());
        let traf = boxed(
            b"traf",
            &[
                boxed(b"tfhd", &tfhd),
                boxed(b"tfdt", &tfdt),
                boxed(b"trun", &trun),
            ]
            .concat(),
        );
        [boxed(b"moof", &traf), boxed(b"mdat", &[7u8; 100])].concat()
    }

    #[test]
    fn fragments_cover_the_file() {
        let init = [boxed(b"ftyp", b"iso6cmfc"), moov(12800)].concat();
        let f1 = fragment(0, 50, true);
        let f2 = fragment(25600, 25, true);
        let file = [init.clone(), f1.clone(), f2.clone()].concat();
        let r = read(&mut Cursor::new(&file), file.len() as u64).expect("parse");
        assert_eq!(r.init_size, init.len() as u64);
        assert_eq!(r.codecs, "avc1.64001f");
        assert_eq!(
            r.kind,
            TrackKind::Video {
                width: 320,
                height: 180
            }
        );
        assert_eq!(r.fragments.len(), 2);
        assert_eq!(r.fragments[0].offset, init.len() as u64);
        assert_eq!(r.fragments[0].duration, 50 * 512);
        assert_eq!(r.fragments[1].start, 25600);
        assert_eq!(
            r.fragments[1].offset + r.fragments[1].size,
            file.len() as u64
        );
        assert!(r.fragments.iter().all(|f| f.starts_with_sync));
        assert!((r.duration_secs() - 3.0).abs() < 1e-9);
        // 75 samples of 512 units at 12800 a second: 25 frames a second.
        assert_eq!(r.fragments[0].samples, 50);
        assert_eq!(r.frame_rate(), Some((25, 1)));
        assert_eq!(r.frame_rate_decimal().as_deref(), Some("25.000"));
        assert_eq!(r.frame_rate_fraction().as_deref(), Some("25"));
        assert_eq!(
            r.peak_bandwidth(),
            r.average_bandwidth().max(r.peak_bandwidth())
        );

        let not_sync = [init.clone(), fragment(0, 10, false)].concat();
        let r = read(&mut Cursor::new(&not_sync), not_sync.len() as u64).expect("parse");
        assert!(!r.fragments[0].starts_with_sync);
    }

    #[test]
    fn frame_rates_exact_ntsc_and_variable() {
        let with = |timescale: u32, parts: &[(u64, u64)]| Rendition {
            len: 0,
            init_size: 0,
            kind: TrackKind::Video {
                width: 2,
                height: 2,
            },
            codecs: String::new(),
            timescale,
            fragments: parts
                .iter()
                .map(|&(samples, duration)| Fragment {
                    offset: 0,
                    size: 1,
                    start: 0,
                    duration,
                    starts_with_sync: true,
                    samples,
                })
                .collect(),
        };
        // 29.97: 120 frames of 1001 units at 30000.
        let ntsc = with(30000, &[(60, 60 * 1001), (60, 60 * 1001)]);
        assert_eq!(ntsc.frame_rate(), Some((30000, 1001)));
        assert_eq!(ntsc.frame_rate_decimal().as_deref(), Some("29.970"));
        assert_eq!(ntsc.frame_rate_fraction().as_deref(), Some("30000/1001"));
        // A phone's variable rate: its average, to a thousandth.
        let vfr = with(90000, &[(119, 4 * 90000 + 77)]);
        assert_eq!(vfr.frame_rate_fraction().as_deref(), Some("3718/125"));
        assert_eq!(vfr.frame_rate_decimal().as_deref(), Some("29.744"));
        assert_eq!(with(1000, &[]).frame_rate(), None);
        assert_eq!(with(1000, &[(0, 10)]).frame_rate(), None);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let init = [boxed(b"ftyp", b"iso6cmfc"), moov(12800)].concat();
        let file = [init.clone(), fragment(0, 50, true)].concat();
        for cut in [1, 7, 9, init.len() - 3, init.len() + 20, file.len() - 1] {
            assert!(
                read(&mut Cursor::new(&file[..cut]), cut as u64).is_err(),
                "{cut}"
            );
        }
        // A moof without its mdat, and a file that is only an init segment.
        let frag = fragment(0, 5, true);
        let moof_only = [init.clone(), frag[..frag.len() - 108].to_vec()].concat();
        assert!(read(&mut Cursor::new(&moof_only), moof_only.len() as u64).is_err());
        assert!(read(&mut Cursor::new(&init), init.len() as u64).is_err());
        // Garbage in the middle of every box body.
        for i in (8..file.len()).step_by(5) {
            let mut f = file.clone();
            f[i] ^= 0xff;
            let _ = read(&mut Cursor::new(&f), f.len() as u64);
        }
    }
}
