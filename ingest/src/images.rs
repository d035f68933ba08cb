//! Pictures derived from an image or a poster frame: resized variants (48, 120 and
//! 600 pixels wide, never upscaled), each stored as its own object, and a tiny
//! inline thumbnail (a `data:` URL of at most 2 KB) kept in the database row so
//! that listings show something before any image is fetched.
//!
//! Decoding happens in memory, so it runs under a limit ([`MAX_DECODE_BYTES`]):
//! a larger image is refused for an avatar and stored without variants as content.

use std::io::{BufReader, Cursor};
use std::path::Path;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

/// Widths of the stored variants, in pixels; each asset's role is `variant-<width>`.
pub const VARIANT_WIDTHS: [u32; 3] = [48, 120, 600];

/// The longest inline thumbnail, as a whole `data:` URL, in bytes.
pub const INLINE_MAX: usize = 2048;

/// The most memory one decoded image may take (about 22 megapixels of RGB).
pub const MAX_DECODE_BYTES: u64 = 64 << 20;

/// JPEG quality of the variants.
const VARIANT_QUALITY: u8 = 82;

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageFailure {
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unsupported(String),
}

impl From<ImageError> for ImageFailure {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Limits(l) => ImageFailure::TooLarge(format!(
                "{l} (the limit is {} MiB of pixels)",
                MAX_DECODE_BYTES >> 20
            )),
            ImageError::Unsupported(u) => ImageFailure::Unsupported(u.to_string()),
            other => ImageFailure::Corrupt(other.to_string()),
        }
    }
}

/// Whether images of this media type can be decoded here.
pub fn decodable(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/webp" | "image/gif"
    )
}

/// An encoded picture, ready to store.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Decodes an image file (its format from its content), upright per its EXIF
/// orientation, within [`MAX_DECODE_BYTES`].
pub fn decode_file(path: &Path) -> Result<DynamicImage, ImageFailure> {
    let file = std::fs::File::open(path).map_err(|e| ImageFailure::Corrupt(e.to_string()))?;
    decode(ImageReader::new(BufReader::new(file)))
}

/// Decodes an image held in memory, like [`decode_file`].
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, ImageFailure> {
    decode(ImageReader::new(Cursor::new(bytes)))
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
) -> Result<DynamicImage, ImageFailure> {
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| ImageFailure::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageFailure::Unsupported("not a known image format".into()));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation().ok();
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(ImageFailure::Corrupt("the image has no pixels".into()));
    }
    let mut img = DynamicImage::from_decoder(decoder)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// The size of `w`×`h` scaled to `width` pixels wide, never larger than it is.
pub fn scaled(w: u32, h: u32, width: u32) -> (u32, u32) {
    if width >= w {
        return (w, h);
    }
    let nh = (u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w);
    (width, u32::try_from(nh.max(1)).unwrap_or(u32::MAX))
}

/// One variant per width of `widths`, in that order: JPEG, or PNG when the image
/// has an alpha channel. Smaller variants are resized from larger ones, which is
/// faster and looks the same.
pub fn variants(img: &DynamicImage, widths: &[u32]) -> Result<Vec<(u32, Encoded)>, ImageFailure> {
    let mut order: Vec<u32> = widths.to_vec();
    order.sort_unstable_by(|a, b| b.cmp(a));
    order.dedup();
    let mut made = Vec::with_capacity(order.len());
    let mut from: Option<DynamicImage> = None;
    for &w in &order {
        let base = from.as_ref().unwrap_or(img);
        let (nw, nh) = scaled(img.width(), img.height(), w);
        let resized = if (nw, nh) == (base.width(), base.height()) {
            base.clone()
        } else {
            base.resize_exact(nw, nh, FilterType::Triangle)
        };
        made.push((w, encode(&resized, VARIANT_QUALITY)?));
        from = Some(resized);
    }
    Ok(widths
        .iter()
        .filter_map(|w| made.iter().find(|(mw, _)| mw == w).cloned())
        .collect())
}

/// Encodes as JPEG at `quality`, or as PNG when the image has an alpha channel.
pub fn encode(img: &DynamicImage, quality: u8) -> Result<Encoded, ImageFailure> {
    let mut bytes = Vec::new();
    let mime = if img.color().has_alpha() {
        img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)?;
        "image/png"
    } else {
        let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
        rgb.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, quality))?;
        "image/jpeg"
    };
    Ok(Encoded {
        bytes,
        mime,
        width: img.width(),
        height: img.height(),
    })
}

/// A `data:image/…;base64,` URL of at most [`INLINE_MAX`] bytes, as large and as
/// good as fits; `None` if even the smallest try does not fit.
pub fn inline_thumbnail(img: &DynamicImage) -> Option<String> {
    let mut base: Option<DynamicImage> = None;
    for width in [32u32, 24, 16, 8] {
        let (w, h) = scaled(img.width(), img.height(), width);
        // Very tall images would make a tall thumbnail; keep it at most 2:1.
        let h = h.min(w.saturating_mul(2)).max(1);
        let src = base.as_ref().unwrap_or(img);
        let small = src.resize_exact(w, h, FilterType::Triangle);
        for quality in [70u8, 50, 30] {
            let enc = encode(&small, quality).ok()?;
            let url = format!(
                "data:{};base64,{}",
                enc.mime,
                base64::engine::general_purpose::STANDARD.encode(&enc.bytes)
            );
            if url.len() <= INLINE_MAX {
                return Some(url);
            }
            if enc.mime == "image/png" {
                break;
            }
        }
        base = Some(small);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn noisy(w: u32, h: u32) -> DynamicImage {
        let mut seed = 0x2545_f491_u32;
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            Rgb([(x % 256) as u8, (y % 256) as u8, (seed & 0xff) as u8])
        }))
    }

    #[test]
    fn scaling_keeps_aspect_and_never_upscales() {
        assert_eq!(scaled(1200, 800, 600), (600, 400));
        assert_eq!(scaled(1000, 3, 48), (48, 1));
        assert_eq!(scaled(100, 50, 600), (100, 50));
        assert_eq!(scaled(600, 300, 600), (600, 300));
    }

    #[test]
    fn variants_have_the_right_sizes_and_decode() {
        let img = noisy(800, 400);
        let v = variants(&img, &VARIANT_WIDTHS).expect("variants");
        let sizes: Vec<_> = v
            .iter()
            .map(|(w, e)| (*w, e.width, e.height, e.mime))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (48, 48, 24, "image/jpeg"),
                (120, 120, 60, "image/jpeg"),
                (600, 600, 300, "image/jpeg")
            ]
        );
        for (_, e) in &v {
            let back = decode_bytes(&e.bytes).expect("decodes");
            assert_eq!((back.width(), back.height()), (e.width, e.height));
        }
    }

    #[test]
    fn small_images_are_not_upscaled() {
        let img = noisy(100, 80);
        let v = variants(&img, &VARIANT_WIDTHS).expect("variants");
        assert_eq!(v[0].1.width, 48);
        assert_eq!((v[1].1.width, v[1].1.height), (100, 80));
        assert_eq!((v[2].1.width, v[2].1.height), (100, 80));
        // Same pixels, same bytes: stored once under one content address.
        assert_eq!(v[1].1.bytes, v[2].1.bytes);
    }

    #[test]
    fn alpha_stays_png() {
        let img =
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(300, 300, Rgba([10, 20, 30, 128])));
        let v = variants(&img, &[120]).expect("variants");
        assert_eq!(v[0].1.mime, "image/png");
        let t = inline_thumbnail(&img).expect("thumbnail");
        assert!(t.starts_with("data:image/png;base64,"), "{t}");
    }

    #[test]
    fn inline_thumbnail_fits() {
        for img in [noisy(4000, 3000), noisy(10, 10), noisy(50, 2000)] {
            let t = inline_thumbnail(&img).expect("thumbnail");
            assert!(t.len() <= INLINE_MAX, "{}", t.len());
            assert!(t.starts_with("data:image/jpeg;base64,"));
            let b64 = t.split_once(',').expect("comma").1;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            decode_bytes(&bytes).expect("decodes");
        }
    }

    #[test]
    fn corrupt_and_unknown_images_are_told_apart() {
        let mut png = Vec::new();
        noisy(64, 64)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .expect("png");
        png.truncate(png.len() / 2);
        assert!(matches!(decode_bytes(&png), Err(ImageFailure::Corrupt(_))));
        assert!(matches!(
            decode_bytes(b"definitely not an image"),
            Err(ImageFailure::Unsupported(_))
        ));
        assert!(decodable("image/png") && !decodable("image/avif"));
    }

    #[test]
    fn huge_images_hit_the_limit() {
        // A PNG header claiming 20000×20000 RGBA pixels (1.6 GB decoded).
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(RgbaImage::new(1, 1))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .expect("png");
        // IHDR width and height live at bytes 16..24; the CRC no longer matches,
        // so the decoder may call it corrupt or too large, but never decode it.
        png[16..20].copy_from_slice(&20000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20000u32.to_be_bytes());
        assert!(decode_bytes(&png).is_err());
    }
}
