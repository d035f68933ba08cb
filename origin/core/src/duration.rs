//! Durations as people write them in flags: `500ms`, `90s`, `1h30m`, `7d`.
//!
//! The one duration grammar of every flag (bench's timings, ingest's `--grace`):
//!
//! * a bare number is seconds (`90`, `1.5`);
//! * otherwise one or more `<number><unit>` parts, added up (`1h30m`, `1h 30m`),
//!   each number optionally with a fraction (`1.5s`);
//! * units, case-insensitive: `us` (or `µs`), `ms`, `s` (`sec`), `m` (`min`),
//!   `h`, `d` (24 h) and `w` (7 d);
//! * no signs, no exponents; a result beyond `Duration`'s range is an error.
//!   Arithmetic is exact in nanoseconds (a fraction below 1 ns is dropped).

use std::time::Duration;

use crate::size::scaled;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration (expected seconds, or e.g. 500ms, 90s, 30m, 1h30m, 24h, 7d)")]
pub struct DurationError(String);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a duration (see the module documentation for the grammar).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let is_number = |t: &str| t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let mut nanos: u128 = 0;
    if is_number(rest) {
        nanos = part(rest, NANOS_PER_SEC).ok_or_else(bad)?;
    } else {
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (number, tail) = rest.split_at(n);
            let tail = tail.trim_start();
            let u = tail
                .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(u);
            let per: u128 = match unit.to_ascii_lowercase().as_str() {
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" | "sec" => NANOS_PER_SEC,
                "m" | "min" => 60 * NANOS_PER_SEC,
                "h" => 3_600 * NANOS_PER_SEC,
                "d" => 86_400 * NANOS_PER_SEC,
                "w" => 604_800 * NANOS_PER_SEC,
                _ => return Err(bad()),
            };
            let add = part(number, per).ok_or_else(bad)?;
            nanos = nanos.checked_add(add).ok_or_else(bad)?;
            rest = tail.trim_start();
        }
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| bad())?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| bad())?;
    Ok(Duration::new(secs, sub))
}

/// `number × per` nanoseconds, sub-nanosecond remainder dropped.
fn part(number: &str, per: u128) -> Option<u128> {
    if number.ends_with('.') {
        return None;
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    scaled(whole, frac, per).map(|v| v.whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_every_form_the_old_parsers_took() {
        // bench's timings.
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("3"), Duration::from_secs(3));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("2min"), Duration::from_secs(120));
        assert_eq!(ok("500MS"), Duration::from_millis(500));
        // ingest's --grace.
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("7d"), Duration::from_secs(604_800));
        assert_eq!(ok("2w"), Duration::from_secs(1_209_600));
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn the_union_combines_them() {
        // Combined parts with fractions and sub-second units, which neither parser
        // took alone (bench had no `1h30m`, ingest no `1.5h` or `ms`).
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("1h 30m"), Duration::from_secs(5400));
        // bench took a space before the unit, ingest did not.
        assert_eq!(ok("10 m"), Duration::from_secs(600));
        assert_eq!(ok("1m30s500ms"), Duration::from_millis(90_500));
        assert_eq!(ok(" 1.5 "), Duration::from_millis(1500));
        assert_eq!(ok("0.1ms"), Duration::from_micros(100));
        assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
        assert_eq!(ok("18446744073709551615"), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            " ",
            "s",
            "h30m",
            "1h30",
            "5m3",
            "-5",
            "1y",
            "2 fortnights",
            "5y",
            "-1s",
            "+1s",
            "1e3s",
            "1.s",
            ".5s",
            "1..5s",
            "1.2.3s",
            "99999999999999999999w",
            "18446744073709551616",
            "NaN",
            "inf",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
