//! Bit rates on the command line (`5Mbps`). Sizes and durations use the one
//! grammar of every Keyframe flag: `keyframe_core::size` and
//! `keyframe_core::duration`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
