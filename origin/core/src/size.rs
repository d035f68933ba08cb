//! Byte sizes as people write them in flags and config files: `64KiB`, `1.5MiB`, `4GiB`.
//!
//! The one size grammar of every flag and option (origin, edge, catalog, bench):
//!
//! * a number, optionally with a fraction (`1.5`), then an optional unit, spaces
//!   allowed around both;
//! * binary units (`KiB`, `MiB`, `GiB`, `TiB`, and the short `K`, `M`, `G`, `T`)
//!   are powers of 1024; decimal units (`KB`, `MB`, `GB`, `TB`) are powers of
//!   1000; `B` or no unit is bytes; units are case-insensitive (`mb` is `MB`);
//! * the result must be a whole number of bytes (`1.5MiB` is, `0.3B` is not) and
//!   fit in 64 bits. Arithmetic is exact (integers, never floating point).

use std::fmt;
use std::str::FromStr;

/// A number of bytes that parses from and prints as a human-readable size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a size did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a size (expected a whole number of bytes, or a number with a unit such as 64KiB, 1.5MiB, 4GiB, 10MB)")]
pub struct SizeError(String);

/// Parses a size into bytes, for flags that keep a plain `u64` (clap's
/// `value_parser`).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    s.parse::<ByteSize>().map(ByteSize::bytes)
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SizeError(s.to_string());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let mult: u128 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let bytes = scaled(whole, frac, mult).ok_or_else(bad)?;
        if number.ends_with('.') || bytes.frac != 0 {
            return Err(bad());
        }
        u64::try_from(bytes.whole).map(ByteSize).map_err(|_| bad())
    }
}

/// `whole.frac × mult` split into its integer part and what is left over (in
/// units of `mult / 10^frac.len()`), exactly; `None` if either part is not
/// digits (the whole part must have one) or the number is absurdly long.
pub(crate) fn scaled(whole: &str, frac: &str, mult: u128) -> Option<Scaled> {
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 20 || frac.len() > 18 {
        return None;
    }
    let w: u128 = whole.parse().ok()?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let f = f.checked_mul(mult)?;
    Some(Scaled {
        whole: w.checked_mul(mult)?.checked_add(f / scale)?,
        frac: f % scale,
    })
}

/// A number times a unit: its integer part and the remainder that did not make
/// a whole unit.
pub(crate) struct Scaled {
    pub whole: u128,
    pub frac: u128,
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (mult, name) in UNITS {
            if self.0 >= mult && self.0 % mult == 0 {
                return write!(f, "{}{}", self.0 / mult, name);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 64KiB, 1MiB or 4GiB")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Formats a byte count (or a rate in bytes) for people: `512 B`, `4.0 KiB`,
/// `1.5 MiB`, with one decimal from KiB up.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("64KiB".parse(), Ok(ByteSize(64 * 1024)));
        assert_eq!("1MiB".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("4GiB".parse(), Ok(ByteSize(4 << 30)));
        assert_eq!("4G".parse(), Ok(ByteSize(4 << 30)));
        assert_eq!("10MB".parse(), Ok(ByteSize(10_000_000)));
        assert_eq!("512".parse(), Ok(ByteSize(512)));
        assert_eq!(" 2 MiB ".parse(), Ok(ByteSize(2 << 20)));
        // The cases the origin's and the load generator's parsers disagreed on
        // (the origin refused fractions and lowercase units; bench accepted them).
        assert_eq!("1.5MiB".parse(), Ok(ByteSize(3 << 19)));
        assert_eq!("1.5GiB".parse(), Ok(ByteSize(3 << 29)));
        assert_eq!("64kib".parse(), Ok(ByteSize(64 * 1024)));
        assert_eq!("2mb".parse(), Ok(ByteSize(2_000_000)));
        assert_eq!("0.5KB".parse(), Ok(ByteSize(500)));
        assert_eq!("18446744073709551615".parse(), Ok(ByteSize(u64::MAX)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "MiB",
            "-1",
            "0.3B",
            "1.5",
            "1.0000001KiB",
            ".5MiB",
            "1.MiB",
            "1.2.3MiB",
            "1e3",
            "NaN",
            "inf",
            "12 parsecs",
            "99999999999999999999",
            "18446744073709551615TiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn displays_round_trip() {
        for n in [0u64, 1, 1023, 1024, 65536, 1 << 20, 3 << 30, (1 << 20) + 1] {
            let s = ByteSize(n).to_string();
            assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(n)), "{s}");
        }
        assert_eq!(ByteSize(64 * 1024).to_string(), "64KiB");
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(4096.0), "4.0 KiB");
        assert_eq!(human_bytes((3 << 20) as f64), "3.0 MiB");
        assert_eq!(human_bytes(1.5 * 1048576.0), "1.5 MiB");
    }
}
