//! The range a fetch into the cache asks for: the client's, widened to chunk
//! boundaries, so that one upstream answer both fills whole chunks and, if it
//! may not be stored, still holds every byte the client asked for.

/// One byte-range-spec of a `Range` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last`, or `first-` (to the end).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

fn parse(value: &str) -> Option<Vec<Spec>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for part in set.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let num = |s: &str| {
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        if a.is_empty() {
            specs.push(Spec::Suffix(num(b)?));
        } else {
            let first = num(a)?;
            let last = if b.is_empty() { None } else { Some(num(b)?) };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            specs.push(Spec::From { first, last });
        }
    }
    (!specs.is_empty()).then_some(specs)
}

/// Several ranges whose hull spans more chunks than this are fetched by their
/// first range only (the others come as chunk fetches).
const HULL_CHUNKS: u64 = 16;

/// The `Range` value (`bytes=…`) to fetch for a client's `Range` header with
/// chunks of `chunk` bytes: the smallest chunk-aligned range holding every byte
/// asked for (open-ended if the client's is), or a suffix long enough to hold
/// the chunk its first byte lies in. None (fetch the whole representation) when
/// there is no `Range` or it does not parse, as a server ignores such a field.
pub fn fill_range(range: Option<&str>, chunk: u64) -> Option<String> {
    let specs = parse(range?)?;
    let chunk = chunk.max(1);
    let start = |first: u64| first / chunk * chunk;
    let end = |last: u64| last.saturating_add(1).div_ceil(chunk).saturating_mul(chunk) - 1;
    if let [Spec::Suffix(n)] = specs[..] {
        // Not aligned (the length is unknown yet), but it covers the chunk that
        // holds the first byte asked for: its start is within `chunk - 1` bytes.
        return Some(if n == 0 {
            "bytes=-0".to_string()
        } else {
            format!("bytes=-{}", n.saturating_add(chunk - 1))
        });
    }
    let mut first = u64::MAX;
    let mut last = Some(0u64);
    for s in &specs {
        match *s {
            Spec::Suffix(_) => return None,
            Spec::From { first: f, last: l } => {
                first = first.min(f);
                last = match (last, l) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
    }
    if specs.len() > 1 {
        let span = last.map_or(u64::MAX, |l| l - first) / chunk;
        if span > HULL_CHUNKS {
            let Spec::From { first, last } = specs[0] else {
                return None;
            };
            return Some(match last {
                Some(l) => format!("bytes={}-{}", start(first), end(l)),
                None => format!("bytes={}-", start(first)),
            });
        }
    }
    Some(match last {
        Some(l) => format!("bytes={}-{}", start(first), end(l)),
        None => format!("bytes={}-", start(first)),
    })
}

/// The last byte a `Range` value of [`fill_range`] asks for, if it names one.
pub fn fill_range_last(fill: &str) -> Option<u64> {
    match parse(fill)?.as_slice() {
        [Spec::From { last, .. }] => *last,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ranges_widen_to_chunk_boundaries() {
        let f = |r: &str| fill_range(Some(r), 100);
        assert_eq!(fill_range(None, 100), None);
        assert_eq!(f("bytes=0-0").as_deref(), Some("bytes=0-99"));
        assert_eq!(f("bytes=150-250").as_deref(), Some("bytes=100-299"));
        assert_eq!(f("bytes=200-299").as_deref(), Some("bytes=200-299"));
        assert_eq!(f("bytes=150-").as_deref(), Some("bytes=100-"));
        assert_eq!(f("BYTES = 5-6 , 310-320").as_deref(), Some("bytes=0-399"));
        assert_eq!(f("bytes=5-6, 400-").as_deref(), Some("bytes=0-99"));
        assert_eq!(f("bytes=150-, 5-6").as_deref(), Some("bytes=100-"));
        assert_eq!(f("bytes=-30").as_deref(), Some("bytes=-129"));
        assert_eq!(f("bytes=-0").as_deref(), Some("bytes=-0"));
        // A hull too wide: the first range only.
        assert_eq!(f("bytes=0-1, 90000-90001").as_deref(), Some("bytes=0-99"));
        // Whole representation for what a server would ignore.
        for r in [
            "items=0-1",
            "bytes=5-1",
            "bytes=x-",
            "bytes=",
            "bytes=-5, 0-1",
        ] {
            assert_eq!(f(r), None, "{r}");
        }
        assert_eq!(fill_range_last("bytes=100-299"), Some(299));
        assert_eq!(fill_range_last("bytes=100-"), None);
        assert_eq!(fill_range_last("bytes=-129"), None);
    }
}
