//! Parsing of the human units used on the command line: sizes (`64KiB`),
//! durations (`2s`, `500ms`) and bit rates (`5Mbps`).

use std::time::Duration;

/// A value that does not parse; the message names what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

fn split_number(s: &str) -> Result<(f64, &str), UnitError> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let value: f64 = num
        .parse()
        .map_err(|_| UnitError(format!("`{s}`: expected a number followed by a unit")))?;
    if !value.is_finite() {
        return Err(UnitError(format!("`{s}`: not a finite number")));
    }
    Ok((value, unit.trim()))
}

/// Parses a byte size: `4096`, `4KiB`, `64KiB`, `1MiB`, `4GiB`, `1TiB`, and the
/// decimal `KB`, `MB`, `GB` (powers of 1000). Units are case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(s)?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(UnitError(format!(
                "`{s}`: unknown size unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB)"
            )))
        }
    };
    let bytes = value * scale as f64;
    if bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
        return Err(UnitError(format!("`{s}`: not a whole number of bytes")));
    }
    Ok(bytes as u64)
}

/// Parses a duration: `500ms`, `2s`, `1.5s`, `3m`, `1h`, `250us`; a bare
/// number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let (value, unit) = split_number(s)?;
    let secs = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(UnitError(format!(
                "`{s}`: unknown duration unit (use us, ms, s, m, h)"
            )))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| UnitError(format!("`{s}`: out of range")))
}

/// Parses a bit rate in bits per second: `5Mbps`, `800kbps`, `2.5M`, `1Gbit/s`;
/// decimal prefixes (k = 1000), as bit rates are always quoted.
pub fn parse_bitrate(s: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(s)?;
    let lower = unit.to_ascii_lowercase();
    let prefix = lower
        .strip_suffix("bps")
        .or_else(|| lower.strip_suffix("bit/s"))
        .or_else(|| lower.strip_suffix("b/s"))
        .unwrap_or(&lower);
    let scale = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => {
            return Err(UnitError(format!(
                "`{s}`: unknown bit rate unit (use bps, kbps, Mbps, Gbps)"
            )))
        }
    };
    let bits = value * scale;
    if bits < 1.0 || bits > u64::MAX as f64 {
        return Err(UnitError(format!("`{s}`: bit rate out of range")));
    }
    Ok(bits.round() as u64)
}

/// Formats a byte count for people: `4.0 KiB`, `1.5 MiB`.
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
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert!(parse_size("").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("0.3B").is_err());
        assert!(parse_size("-1KiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("2 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("5Mbps"), Ok(5_000_000));
        assert_eq!(parse_bitrate("800kbps"), Ok(800_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_bitrate("1Gbit/s"), Ok(1_000_000_000));
        assert_eq!(parse_bitrate("9600"), Ok(9600));
        assert!(parse_bitrate("5MiBps").is_err());
        assert!(parse_bitrate("0bps").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(4096.0), "4.0 KiB");
        assert_eq!(human_bytes(1.5 * 1048576.0), "1.5 MiB");
    }
}
